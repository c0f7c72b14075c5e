"""Errors the database raises become clear answers in the reference's format: 4xx for the request's own
faults, 503 while the database is unreachable, and a JSON 500 that echoes nothing for anything else."""

from __future__ import annotations

import logging
import types

import httpx
import psycopg.errors
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.errors import install_error_handlers
from api.middleware import RequestIdMiddleware
from tests.garbage import left_for_the_collector
from tests.problems import unprocessable

API = "/api/v1/prm"

PHI = "Jane Doe 1980-04-12"  # what a database message can quote


def app_raising(exc: Exception) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)

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


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("SELECT ...", {}, psycopg.OperationalError(f"connection refused {PHI}")),
        OperationalError("SELECT ...", {}, psycopg.errors.AdminShutdown(f"terminating connection {PHI}")),
        OperationalError("SELECT ...", {}, psycopg.errors.CannotConnectNow("the database is starting")),
        InterfaceError("SELECT ...", {}, psycopg.InterfaceError(f"the connection is closed {PHI}")),
        OperationalError("SELECT ...", {}, Exception(PHI), connection_invalidated=True),
        PoolTimeout(f"QueuePool limit of size 10 overflow 10 reached {PHI}"),
        psycopg.OperationalError(f"server closed the connection unexpectedly {PHI}"),
    ],
    ids=["refused", "admin-shutdown", "starting", "closed", "invalidated", "pool-timeout", "raw-psycopg"],
)
async def test_an_unreachable_database_is_a_503_to_retry_that_echoes_nothing(error: Exception) -> None:
    transport = httpx.ASGITransport(app=app_raising(error))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        resp = await client.get("/boom")
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "5"
    assert resp.json() == {"detail": "The database is unavailable; try again shortly."}


async def test_any_other_database_error_is_a_json_500_that_echoes_nothing() -> None:
    error = ProgrammingError("SELECT ...", {}, psycopg.errors.UndefinedColumn(f"column {PHI} does not exist"))
    transport = httpx.ASGITransport(app=app_raising(error))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        resp = await client.get("/boom")
    assert resp.status_code == 500
    assert resp.json() == {"detail": "Internal error", "request_id": resp.headers["x-request-id"]}


async def test_every_422_has_the_shape_of_a_validation_error(client: httpx.AsyncClient, auth: dict) -> None:
    """A malformed body, content the domain refuses and a refusal at the door answer the same shape."""
    malformed = await client.post(f"{API}/patients", json={"first_name": "Ada"}, headers=auth)
    assert any(item["type"] == "missing" for item in malformed.json()["detail"]), malformed.text
    unprocessable(malformed)

    refused = await client.get(
        f"{API}/analytics/appointments",
        params={"time_period": "CUSTOM", "start_date": "2026-02-01", "end_date": "2026-01-01"},
        headers=auth,
    )
    assert unprocessable(refused) == "end_date must not be before start_date."
    assert refused.json()["detail"][0] | {"msg": ""} == {
        "loc": ["query", "end_date"],
        "msg": "",
        "type": "value_error",
    }

    at_the_door = await client.get(f"{API}/patients?search=Ada%00", headers=auth)
    assert at_the_door.json()["detail"][0]["loc"] == ["query"] and "NUL" in unprocessable(at_the_door)


async def test_an_answered_error_leaves_its_request_to_reference_counting(
    client: httpx.AsyncClient, auth: dict
) -> None:
    """A malformed JSON body (FastAPI keeps its 422 in a local of a frame the 422's traceback holds), an
    invalid one and a refused caller: once answered, no frame, exception or body of theirs is left for the
    cyclic collector (`api.errors.release_answered_exceptions`), which the serving API runs rarely."""
    big = "x" * 200_000
    requests = [
        ({"content": "{not json " + big, "headers": {**auth, "content-type": "application/json"}}, 422),
        ({"json": {"first_name": big}, "headers": auth}, 422),
        ({"json": {"first_name": big}, "headers": {}}, 401),
    ]
    for kwargs, status in requests:
        assert (await client.post("/api/v1/prm/patients", **kwargs)).status_code == status  # warm
        with left_for_the_collector() as garbage:
            assert (await client.post("/api/v1/prm/patients", **kwargs)).status_code == status
        left = [
            type(o).__name__
            for o in garbage
            if isinstance(o, BaseException | types.FrameType | types.TracebackType)
            or (isinstance(o, bytes | str) and len(o) >= len(big))
        ]
        assert left == [], status


async def test_an_unexpected_error_once_logged_and_answered_leaves_nothing_for_the_collector() -> None:
    """An exception kept in a local of a frame its traceback holds is a cycle with everything that frame
    holds; `RequestIdMiddleware` drops the tracebacks once it has logged and answered (500)."""

    async def boom() -> None:
        held = "x" * 200_000  # what the failing frame holds
        try:
            raise RuntimeError("boom")
        except RuntimeError as exc:
            kept = exc  # the cycle: this frame -> kept -> its traceback -> this frame
        assert held
        raise kept

    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/boom")).status_code == 500  # warm
        logging.disable(logging.ERROR)  # the test's log capture would keep the record, and its traceback
        try:
            with left_for_the_collector() as garbage:
                assert (await client.get("/boom")).status_code == 500
        finally:
            logging.disable(logging.NOTSET)
    left = [
        type(o).__name__
        for o in garbage
        if isinstance(o, BaseException | types.FrameType) or (isinstance(o, str) and len(o) >= 200_000)
    ]
    assert left == []
