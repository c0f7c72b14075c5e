"""Errors the database raises become clear 4xx answers in the reference's format, never a 500."""

from __future__ import annotations

import httpx
import psycopg.errors
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError

from api.errors import install_error_handlers


def app_raising(exc: Exception) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return app


async def test_a_deadlock_victim_gets_a_retryable_409() -> None:
    error = OperationalError("INSERT ...", {}, psycopg.errors.DeadlockDetected("deadlock detected"))
    transport = httpx.ASGITransport(app=app_raising(error))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        resp = await client.get("/boom")
    assert resp.status_code == 409
    assert resp.headers["retry-after"] == "1"
    assert resp.json() == {"detail": "The request collided with a concurrent change; retry it."}


async def test_a_serialization_failure_gets_a_retryable_409() -> None:
    error = OperationalError("UPDATE ...", {}, psycopg.errors.SerializationFailure("could not serialize"))
    transport = httpx.ASGITransport(app=app_raising(error))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        resp = await client.get("/boom")
    assert resp.status_code == 409
