"""The reference of the HTTP benchmark: a bare FastAPI app doing one psycopg point read of a patient row.

No auth, no tenancy, no audit, no ORM: what the framework and the driver cost on their own. Served by
`bench.http_load` with the same uvicorn flags as the real API (`cli.stack.uvicorn_argv`), from the same
venv, on the same database (`BENCH_DATABASE_URL`, a libpq URL):

    BENCH_DATABASE_URL=postgresql://... uvicorn --factory bench.bare_api:create_app
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

POINT_READ = (
    "SELECT id, tenant_id, mrn, first_name, middle_name, last_name, date_of_birth, gender, phone_primary,"
    " email_primary, city, status, preferred_channel, created_at, updated_at FROM patients WHERE id = %s"
)


def pooled_app() -> tuple[FastAPI, AsyncConnectionPool]:
    """A bare FastAPI app and psycopg's pool of 10 connections to `BENCH_DATABASE_URL`, opened and closed
    with the app."""
    pool = AsyncConnectionPool(os.environ["BENCH_DATABASE_URL"], min_size=10, max_size=10, open=False)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    return FastAPI(lifespan=lifespan), pool


def create_app() -> FastAPI:
    """The bare app: `GET /patients/{id}` answers the row as JSON (404 when there is none)."""
    app, pool = pooled_app()

    @app.get("/patients/{patient_id}")
    async def get_patient(patient_id: uuid.UUID) -> dict[str, Any]:
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(POINT_READ, (patient_id,))
            row = await cur.fetchone()
        if row is None:
            raise HTTPException(404, "No such patient")
        return row

    return app
