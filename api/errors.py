"""One place that renders every error as the reference's `{"detail": ...}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError

from core.errors import DomainError

log = logging.getLogger(__name__)

# What a clash on each constraint means to the API's user. Database messages are never echoed:
# they quote the clashing values, which can be PHI.
CONSTRAINT_MESSAGES = {
    "uq_patients_tenant_mrn": "A patient with this MRN already exists.",
    "uq_practitioners_tenant_license": "A practitioner with this license number already exists.",
    "ex_appointments_practitioner_overlap": "The practitioner already has an appointment at that time.",
    "ck_time_slots_within_capacity": "The time slot is fully booked.",
    "uq_journey_stages_journey_order": "Another stage of this journey already has that order_index.",
}


RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


def _validation_errors(exc: RequestValidationError) -> list[dict]:
    """Pydantic's error list without the submitted input (which may be PHI) and without raw contexts."""
    errors = []
    for err in exc.errors():
        item = {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        errors.append(item)
    return errors


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers for domain errors, validation errors and constraint violations."""

    @app.exception_handler(DomainError)
    async def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        body = {"detail": exc.detail, **jsonable_encoder(exc.extra)}
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(status_code=exc.status_code, content=body, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": _validation_errors(exc)})

    @app.exception_handler(IntegrityError)
    async def _integrity_error(_request: Request, exc: IntegrityError) -> JSONResponse:
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        if constraint in CONSTRAINT_MESSAGES:
            return JSONResponse(status_code=409, content={"detail": CONSTRAINT_MESSAGES[constraint]})
        log.warning("integrity error on constraint %s", constraint)
        return JSONResponse(status_code=409, content={"detail": "The request conflicts with existing data."})

    @app.exception_handler(DBAPIError)
    async def _concurrency_error(_request: Request, exc: DBAPIError) -> JSONResponse:
        # A deadlock or serialization failure lost a race with a concurrent request: nothing was stored,
        # and the same request can simply be retried.
        if getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
            log.warning("transaction lost a race (sqlstate %s)", exc.orig.sqlstate)  # type: ignore[union-attr]
            return JSONResponse(
                status_code=409,
                content={"detail": "The request collided with a concurrent change; retry it."},
                headers={"Retry-After": "1"},
            )
        raise exc
