"""The rungs of `bench.request_ladder`: apps between the bare point read and the service, each adding one
layer, served by uvicorn as app factories (`uvicorn --factory bench.ladder_apps:<name>`).

Every rung answers `GET /patients/{id}` for the tenant in `BENCH_TENANT_ID` (the rungs without auth have
no caller to take it from), from the database in `DATABASE_URL` (`BENCH_DATABASE_URL` for the rungs that
use psycopg's own pool). Only for measuring: the rungs below the service skip its tenancy checks, auth and
audit trail on purpose.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from psycopg.rows import dict_row
from sqlalchemy.dialects.postgresql import psycopg as psycopg_dialect
from sqlalchemy.ext.asyncio import AsyncEngine

from api.app import create_app_from_env
from bench.bare_api import pooled_app
from core.database import bind_tenant, make_engine, make_read_sessionmaker, resolve_database_url
from core.reads import TenantReads
from core.settings import get_settings
from domain.records import reads as record_reads
from domain.records.reads import PATIENT_DETAIL
from domain.records.schemas import PatientDetailResponse


def _tenant() -> uuid.UUID:
    return uuid.UUID(os.environ["BENCH_TENANT_ID"])


def _psycopg_app(*, response_model: bool) -> FastAPI:
    """The bare app's shape (psycopg's pool, no SQLAlchemy at run time) running the service's statement
    (the patient and their statistics, compiled once), answering the row as it is or through the
    service's response model."""
    compiled = PATIENT_DETAIL.compile(
        dialect=psycopg_dialect.dialect(), compile_kwargs={"render_postcompile": True}
    )
    sql, defaults, tenant = str(compiled), dict(compiled.params), _tenant()
    app, pool = pooled_app()

    async def read(patient_id: uuid.UUID) -> dict[str, Any]:
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql, {**defaults, "patient_id": patient_id, "tenant_id": tenant})
            row = await cur.fetchone()
        if row is None:
            raise HTTPException(404, "No such patient")
        return row

    if response_model:

        @app.get("/patients/{patient_id}", response_model=PatientDetailResponse)
        async def modelled(patient_id: uuid.UUID) -> PatientDetailResponse:
            return PatientDetailResponse.model_validate(await read(patient_id))

    else:

        @app.get("/patients/{patient_id}")
        async def plain(patient_id: uuid.UUID) -> dict[str, Any]:
            return await read(patient_id)

    return app


def statistics_psycopg() -> FastAPI:
    """Rung 2: the bare app running the service's statement."""
    return _psycopg_app(response_model=False)


def statistics_psycopg_model() -> FastAPI:
    """Rung 3: rung 2 answering through the service's response model (validation and serialisation)."""
    return _psycopg_app(response_model=True)


def _engine_app(route: Any) -> FastAPI:
    """An app holding the service's engine (`core.database.make_engine`, the service's settings), built at
    start-up with what the routes take from it: its statement-by-statement form and the read sessions."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        settings = get_settings()
        state["engine"] = make_engine(resolve_database_url(settings), settings)
        state["autocommit"] = state["engine"].execution_options(isolation_level="AUTOCOMMIT")
        state["read_sessions"] = make_read_sessionmaker(state["engine"])
        try:
            yield
        finally:
            await state["engine"].dispose()

    app = FastAPI(lifespan=lifespan)
    route(app, state)
    return app


def sqlalchemy_connection() -> FastAPI:
    """Rung 4: the statement on a SQLAlchemy async connection (Core, no session), row answered as is."""

    def route(app: FastAPI, state: dict[str, Any]) -> None:
        tenant = _tenant()

        @app.get("/patients/{patient_id}")
        async def read(patient_id: uuid.UUID) -> dict[str, Any]:
            engine: AsyncEngine = state["autocommit"]
            async with engine.connect() as conn:
                result = await conn.execute(PATIENT_DETAIL, {"patient_id": patient_id, "tenant_id": tenant})
                row = result.mappings().first()
            if row is None:
                raise HTTPException(404, "No such patient")
            return dict(row)

    return _engine_app(route)


def sqlalchemy_session() -> FastAPI:
    """Rung 5: through a read session of the service's (on its connection), row answered as is."""

    def route(app: FastAPI, state: dict[str, Any]) -> None:
        tenant = _tenant()

        @app.get("/patients/{patient_id}")
        async def read(patient_id: uuid.UUID) -> dict[str, Any]:
            async with state["read_sessions"]() as session:
                bind_tenant(session, tenant)
                conn = await session.connection()
                result = await conn.execute(PATIENT_DETAIL, {"patient_id": patient_id, "tenant_id": tenant})
                row = result.mappings().first()
            if row is None:
                raise HTTPException(404, "No such patient")
            return dict(row)

    return _engine_app(route)


def service_route_only() -> FastAPI:
    """Rung 6: the service's app with none of its middlewares and a route with the tenant's reads
    (`core.reads`, the app's read pool) as its only dependency (no auth, rate limits, tenant check or
    audit), answering the service's response model."""
    app = create_app_from_env()
    app.user_middleware = []

    def reads(request: Request) -> TenantReads:
        return TenantReads(request.app.state.read_pool, _tenant())

    @app.get("/lean/patients/{patient_id}", response_model=PatientDetailResponse)
    async def lean(patient_id: uuid.UUID, r: TenantReads = Depends(reads)) -> PatientDetailResponse:
        return PatientDetailResponse.model_validate(await record_reads.patient_detail(r, patient_id))

    app.router.routes.insert(0, app.router.routes.pop())  # before the API's own routes
    return app


def without(*names: str) -> Any:
    """The service without the middlewares of the classes named."""

    def factory() -> FastAPI:
        app = create_app_from_env()
        app.user_middleware = [m for m in app.user_middleware if getattr(m.cls, "__name__", "") not in names]
        return app

    return factory


def service_no_middleware() -> FastAPI:
    """Rung 7: the service's routes and every dependency, none of its middlewares."""
    app = create_app_from_env()
    app.user_middleware = []
    return app


service_no_audit = without("AuditMiddleware")
service_no_metrics = without("HttpMetricsMiddleware")  # the request metrics and the access log
service_no_request_id = without("RequestIdMiddleware")
service_no_input_guard = without("InputGuardMiddleware")
service_no_headers = without("SecurityHeadersMiddleware", "CORSOnlyUnder", "DeprecatedPrefixMiddleware")
