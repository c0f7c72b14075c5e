"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from core.temporal import gateway_for_state

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)
PROBE_TIMEOUT_SECONDS = 3.0


class Readiness(BaseModel):
    """`ready` or `unavailable`, and each dependency's state (`database`, `temporal`: `ok` or `down`)."""

    status: str
    checks: dict[str, str]


@router.get("/health", summary="Liveness")
async def health() -> dict[str, str]:
    """Answers 200 whenever the process is up."""
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency is unreachable"}},
)
async def ready(request: Request) -> JSONResponse:
    """Answers 200 only when both the database and Temporal are reachable, 503 otherwise."""
    checks = {"database": await _database_ok(request), "temporal": await _temporal_ok(request)}
    healthy = all(checks.values())
    body = {
        "status": "ready" if healthy else "unavailable",
        "checks": {k: "ok" if v else "down" for k, v in checks.items()},
    }
    return JSONResponse(status_code=200 if healthy else 503, content=body)


async def _database_ok(request: Request) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            async with request.app.state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        log.warning("readiness: database unreachable", exc_info=True)
        return False


async def _temporal_ok(request: Request) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            healthy = await gateway_for_state(request.app.state).healthy()
    except TimeoutError:
        healthy = False
    if not healthy:
        log.warning("readiness: Temporal unreachable")
    return healthy
