"""One place that renders every error as the reference's `{"detail": ...}`."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout as ReadPoolTimeout
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.routing import Match

from core.database import violated_constraint
from core.errors import DomainError, ServiceUnavailable, Unprocessable

log = logging.getLogger(__name__)

# What a clash on each constraint means to the API's user. Database messages are never echoed:
# they quote the clashing values, which can be PHI.
CONSTRAINT_MESSAGES = {
    "uq_patients_tenant_mrn": "A patient with this MRN already exists.",
    "uq_practitioners_tenant_license": "A practitioner with this license number already exists.",
    "ex_appointments_practitioner_overlap": "The practitioner already has an appointment at that time.",
    "ck_time_slots_within_capacity": "The time slot is fully booked.",
    "uq_journey_stages_journey_order": "Another stage of this journey already has that order_index.",
    "fk_campaigns_cohort_id_cohorts": "A campaign was launched with this cohort; it is kept as its record.",
    # A concurrent import gave the same external identifier to another record first: a retry finds it.
    "uq_patient_identifiers_tenant_system_value": "Another patient already has this identifier; retry.",
    "uq_practitioner_identifiers_tenant_system_value": "Another practitioner has this identifier; retry.",
    "uq_appointment_identifiers_tenant_system_value": "Another appointment has this identifier; retry.",
}


RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected

# How long a client should wait before retrying a request that met an unreachable dependency.
RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE = "The database is unavailable; try again shortly."
INTERNAL_ERROR = "Internal error"


# ---- the bodies, as the OpenAPI schema declares them (`api.openapi.errors`) -------------------------


class ErrorDetail(BaseModel):
    """Every error but a 422 and a 500: `detail` says what went wrong, in words. Some errors add fields: a
    booking clash lists `conflicting_appointments`, a refused advance names the `current_stage`, a journey
    instance saved while Temporal was down gives its `instance_id`."""

    model_config = ConfigDict(extra="allow")
    detail: str = Field(examples=["Patient not found."])


class ValidationItem(BaseModel):
    """One problem with the request: where it is (`["body", "stages", 0, "name"]`), what, and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class UnprocessableDetail(BaseModel):
    """A 422, always this one shape: `detail` lists each problem (`loc`, `msg`, `type`), whether the
    request's shape is wrong (a missing field, a date out of range) or its content cannot be accepted (an
    unknown template, a missing template variable, an unusable date range: one item of type
    `value_error`)."""

    detail: list[ValidationItem]


def unprocessable_body(msg: str, loc: Sequence[str | int] = ("body",)) -> dict[str, list[dict[str, Any]]]:
    """The body of a 422 that is not a validation error: one item, in the shape validation errors have."""
    return {"detail": [{"loc": list(loc), "msg": msg, "type": "value_error"}]}


class InternalErrorDetail(BaseModel):
    """A 500: nothing of the failure, only the id the API's log names it by (also in `X-Request-ID`)."""

    detail: str = Field(examples=["Internal error"])
    request_id: str


def is_database_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database could not be reached or lost the connection, not that the request
    was wrong: refused or dropped connections, shutdowns, a pool with no connection to give in time."""
    if isinstance(exc, (PoolTimeout, ReadPoolTimeout)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if getattr(orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
        return False
    return isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError))


def unavailable_response(detail: str, extra: dict | None = None) -> JSONResponse:
    """A 503 that tells the client to retry shortly."""
    return JSONResponse(
        status_code=503,
        content={"detail": detail, **(extra or {})},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def internal_error_response(request_id: str) -> JSONResponse:
    """The answer to an unexpected exception: nothing of the exception, only the id to find it in the logs."""
    body = InternalErrorDetail(detail=INTERNAL_ERROR, request_id=request_id)
    return JSONResponse(status_code=500, content=body.model_dump())


def _validation_errors(exc: RequestValidationError) -> list[dict]:
    """Pydantic's error list without the submitted input (which may be PHI) and without raw contexts."""
    errors = []
    for err in exc.errors():
        item = {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        errors.append(item)
    return errors


# Renders an error (status, detail, headers) in another shape for the paths under a prefix (FHIR's
# OperationOutcome under /fhir/); `app.state.error_renderers` maps prefixes to renderers.
ErrorRenderer = Callable[[int, str, dict[str, str]], JSONResponse]


def renderer_for(app: Any, path: str) -> ErrorRenderer | None:
    """The renderer of errors under `path` (FHIR's OperationOutcome under /fhir/), or None for the API's
    own `{"detail": ...}`."""
    renderers: dict[str, ErrorRenderer] = getattr(app.state, "error_renderers", {})
    return next((render for prefix, render in renderers.items() if path.startswith(prefix)), None)


def _renderer_for(request: Request) -> ErrorRenderer | None:
    return renderer_for(request.app, request.url.path)


# The order `Allow` lists methods in (RFC 9110 sets none; a fixed one keeps answers comparable).
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: Any, scope: MutableMapping[str, Any]) -> list[str]:
    """Every method some route of `app` takes on the request's path, in `METHOD_ORDER`. (Starlette's own
    405 names only the methods of the first route matching the path, when a path's methods are spread over
    several routes: `GET /patients` and `POST /patients` are two.)"""
    path: dict[str, Any] = {key: scope[key] for key in ("type", "path", "root_path") if key in scope}

    def routed(method: str) -> bool:
        request = {**path, "method": method}
        return any(route.matches(request)[0] == Match.FULL for route in app.router.routes)

    return [method for method in METHOD_ORDER if method not in {"HEAD", "OPTIONS"} and routed(method)]


def release_answered_exceptions(app: FastAPI) -> None:
    """Make every exception handler of `app` (call it once they are all registered) drop the tracebacks of
    the exception it answered, and of the exceptions chained to it.

    An exception kept in a local variable of a frame its traceback holds is a reference cycle: that frame,
    its locals (the request, its body) and the frames around it then wait for the cyclic collector, which
    the serving API runs rarely (`core.process.tune_collector`). FastAPI builds a malformed JSON body's 422
    that way. Once answered, the traceback serves nobody, and without it the request's objects are freed
    when the answer is sent."""
    for key, handler in list(app.exception_handlers.items()):
        if inspect.iscoroutinefunction(handler):  # ours all are; Starlette runs a plain one in a thread
            app.exception_handlers[key] = _releasing(handler)


def _releasing(handler: Callable[[Request, Any], Awaitable[Any]]) -> Callable[[Request, Any], Awaitable[Any]]:
    @functools.wraps(handler)
    async def answer(request: Request, exc: BaseException) -> Any:
        try:
            return await handler(request, exc)
        finally:
            forget_tracebacks(exc)

    return answer


def forget_tracebacks(exc: BaseException) -> None:
    """Drop the tracebacks of `exc` and of the exceptions chained to it, once it is answered (and logged):
    what they hold is then freed by reference counting (`release_answered_exceptions`)."""
    seen: set[int] = set()  # a chain may loop back on itself
    chain: list[BaseException | None] = [exc]
    while chain:
        chained = chain.pop()
        if chained is not None and id(chained) not in seen:
            seen.add(id(chained))
            chained.__traceback__ = None
            chain += [chained.__cause__, chained.__context__]


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers for domain errors, validation errors, constraint violations and an unreachable
    database (503). Unexpected exceptions are answered by `api.middleware.RequestIdMiddleware`."""

    @app.exception_handler(DomainError)
    async def _domain_error(request: Request, exc: DomainError) -> JSONResponse:
        render = _renderer_for(request)
        if render is not None:
            retry = {"Retry-After": str(RETRY_AFTER_SECONDS)} if isinstance(exc, ServiceUnavailable) else {}
            auth = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
            return render(exc.status_code, exc.detail, {**auth, **retry, **exc.headers})
        if isinstance(exc, ServiceUnavailable):
            return unavailable_response(exc.detail, jsonable_encoder(exc.extra))
        if isinstance(exc, Unprocessable):
            body = {**unprocessable_body(exc.detail, exc.loc), **jsonable_encoder(exc.extra)}
        else:
            body = {"detail": exc.detail, **jsonable_encoder(exc.extra)}
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
        return JSONResponse(status_code=exc.status_code, content=body, headers={**headers, **exc.headers})

    @app.exception_handler(405)
    async def _method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
        allow = {"Allow": ", ".join(allowed_methods(request.app, request.scope))}
        detail = exc.detail if isinstance(exc, HTTPException) else "Method Not Allowed"
        render = _renderer_for(request)
        if render is not None:
            return render(405, detail, allow)
        return JSONResponse(status_code=405, content={"detail": detail}, headers=allow)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        render = _renderer_for(request)
        if render is not None:
            where = "; ".join(
                f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in _validation_errors(exc)
            )
            return render(422, f"The request is invalid: {where}", {})
        return JSONResponse(status_code=422, content={"detail": _validation_errors(exc)})

    @app.exception_handler(IntegrityError)
    async def _integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        constraint = violated_constraint(exc)
        detail = CONSTRAINT_MESSAGES.get(constraint or "", "The request conflicts with existing data.")
        if constraint not in CONSTRAINT_MESSAGES:
            log.warning("integrity error on constraint %s", constraint)
        render = _renderer_for(request)
        if render is not None:
            return render(409, detail, {})
        return JSONResponse(status_code=409, content={"detail": detail})

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(ReadPoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(psycopg.InterfaceError)
    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        # A deadlock or serialization failure lost a race with a concurrent request: nothing was stored,
        # and the same request can simply be retried.
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        if getattr(orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
            log.warning("transaction lost a race (sqlstate %s)", orig.sqlstate)  # type: ignore[union-attr]
            return JSONResponse(
                status_code=409,
                content={"detail": "The request collided with a concurrent change; retry it."},
                headers={"Retry-After": "1"},
            )
        if is_database_unavailable(exc):
            # The class names the failure; the message is left out of the log too: it can quote PHI.
            log.warning(
                "database unavailable (%s, sqlstate %s), request %s (%s %s)",
                type(orig).__name__,
                getattr(orig, "sqlstate", None),
                getattr(request.state, "request_id", None),
                request.method,
                request.url.path,
            )
            if _connection_lost(exc):
                await _retire_pooled_connections(request)
            return unavailable_response(DATABASE_UNAVAILABLE)
        raise exc  # anything else is a bug: the request id middleware answers a JSON 500


def _connection_lost(exc: Exception) -> bool:
    """Whether the failure means the connection itself is gone (a restart, an outage), rather than a busy
    pool or a cancelled statement."""
    if isinstance(exc, (PoolTimeout, ReadPoolTimeout)):
        return False
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig if isinstance(exc, DBAPIError) else exc, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in {"57P01", "57P02", "57P03"}


async def _retire_pooled_connections(request: Request) -> None:
    """There is no ping before each checkout (`core.database.make_engine`): a connection an outage killed
    fails only when used. Its failure retires every pooled connection at once (they all died with it), so
    this request pays for the outage and the next ones connect afresh."""
    engine = getattr(request.app.state, "engine", None)
    if engine is not None:
        await engine.dispose(close=False)
    read_pool = getattr(request.app.state, "read_pool", None)
    if read_pool is not None:
        await read_pool.check()  # `core.reads`' pool: its dead connections replaced
