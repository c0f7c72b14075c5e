"""Start-up checks of `prm run`: what "ready" means for PostgreSQL, Temporal, the worker and the API.

A probe asks its component once and answers a value when it is ready, None while it is not yet;
`wait_until` polls a probe until it answers, failing when the child it watches exits or its time is up.
Apart from the orchestration (`cli.stack`, which decides what starts in which order and stops it all)
because these checks are about each component's protocol (SQL, gRPC, HTTP), not about the stack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import text

from cli.processes import Child, StackError
from core.database import make_engine
from core.gateway import WorkflowGateway
from core.settings import Settings
from core.temporal import connect_gateway

log = logging.getLogger("prm.run")  # the stack's logger: these lines are part of its start-up story

Pause = Callable[[], Awaitable[None]]  # waits one poll interval; raises to abandon the wait


async def wait_until(what: str, child: Child | None, probe: Any, *, limit: float, pause: Pause) -> Any:
    """Poll `probe` until it returns a value; fail if `child` exits or `limit` seconds pass."""
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        if child is not None and (code := child.exited()) is not None:
            tail = child.log_tail()
            where = f" (log: {child.log_path})" if child.log_path else " (its output is above)"
            raise StackError(f"{what} exited with code {code} during start-up{where}\n{tail}".rstrip())
        result = await probe()
        if result is not None:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise StackError(f"{what} was not ready after {limit:.0f} s")
        await pause()


async def wait_for_database(database_url: str, settings: Settings, *, pause: Pause) -> None:
    """Wait (30 s at most) until PostgreSQL at `database_url` runs a query."""
    engine = make_engine(database_url, settings)
    deadline = asyncio.get_running_loop().time() + 30.0
    try:
        while True:
            try:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                return
            except Exception as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise StackError(f"PostgreSQL is unreachable: {exc}") from exc
            await pause()
    finally:
        await engine.dispose()


async def temporal_gateway(settings: Settings) -> WorkflowGateway | None:
    """A gateway to a Temporal that answers its health check, or None."""
    try:
        gateway = await connect_gateway(settings)
    except Exception:
        return None
    return gateway if await gateway.healthy() else None


async def temporal_ui_answers(settings: Settings) -> bool | None:
    """True once the Temporal UI serves its page."""
    url = f"http://127.0.0.1:{settings.temporal_ui_port}/"
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            resp = await http.get(url)
    except httpx.HTTPError:
        return None
    return True if resp.status_code < 500 else None


async def warn_missing_search_attributes(gateway: WorkflowGateway, settings: Settings) -> None:
    """Log the search attributes the workflows set that this Temporal has not registered."""
    try:
        missing = await gateway.missing_search_attributes(settings.temporal_namespace)
    except Exception:
        log.warning("could not list Temporal's search attributes", exc_info=True)
        return
    if missing:
        log.warning(
            "Temporal lacks the search attributes %s: register each as Keyword "
            "(temporal operator search-attribute create --name NAME --type Keyword)",
            ", ".join(missing),
        )


async def worker_polls(gateway: WorkflowGateway, settings: Settings, identity: str) -> bool | None:
    """True once the worker with `identity` polls the task queue (for workflows or activities)."""
    try:
        return True if await gateway.polled_by(settings.temporal_namespace, identity) else None
    except Exception:
        return None


async def api_answers(url: str, key: str) -> bool | None:
    """200 with our JSON body (not just anything that answers on that port)."""
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            resp = await http.get(url)
        body = resp.json()
    except (httpx.HTTPError, ValueError):
        return None
    return True if resp.status_code == 200 and isinstance(body, dict) and key in body else None
