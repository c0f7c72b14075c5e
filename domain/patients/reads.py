"""The patient list's reads, straight on psycopg (`core.reads`): `GET /patients`, filtered and paged.

Each shape of the list (a search or not, a phone-like search or not, a status or not) is one statement
built with SQLAlchemy Core and compiled at import, with its count: what varies is a bound parameter, so
psycopg prepares each once per connection. The conditions and the order are those the trigram (GIN) and
name indexes answer, as `PatientRepository.filtered` describes for the ORM's searches; the tenant filter
is in every statement (tests/patients/test_patient_reads.py)."""

from __future__ import annotations

import itertools
from typing import Any

from psycopg.rows import DictRow
from sqlalchemy import ColumnElement, Select, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import UUID as PG_UUID

from core.database import TENANT_PARAMETER
from core.pagination import PageParams
from core.phones import digits_only
from core.reads import TenantRead, TenantReads
from domain.patients.models import Patient, full_name_expression
from domain.patients.repository import PHONE_LIKE
from domain.patients.schemas import PatientSimpleResponse

_P = Patient.__table__.c
_TENANT = bindparam(TENANT_PARAMETER, type_=PG_UUID(as_uuid=True))
ESCAPE = "/"  # SQLAlchemy's own for `autoescape`
LIST_COLUMNS = [getattr(_P, name) for name in PatientSimpleResponse.model_fields]


def _escaped(value: str) -> str:
    """`value` with LIKE's wildcards and the escape character escaped (as SQLAlchemy's autoescape does)."""
    return value.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")


def _list(*, search: bool, phone: bool, status: bool) -> tuple[TenantRead, TenantRead]:
    """One shape of the list: its page and its count."""
    stmt: Select[Any] = select(*LIST_COLUMNS).where(_P.tenant_id == _TENANT)
    if status:
        stmt = stmt.where(_P.status == bindparam("status"))
    order: list[Any] = []
    if search:
        full_name = full_name_expression(Patient)
        conditions: list[ColumnElement[bool]] = [
            full_name.contains(bindparam("lower"), escape=ESCAPE),
            func.lower(_P.email_primary).contains(bindparam("lower"), escape=ESCAPE),
            _P.mrn == bindparam("upper"),
        ]
        if phone:
            conditions.append(_P.phone_primary.contains(bindparam("digits"), escape=ESCAPE))
        stmt = stmt.where(or_(*conditions))
        order.append(func.similarity(full_name, bindparam("similar")).desc())
    count = select(func.count().label("total")).select_from(stmt.subquery())
    page = stmt.order_by(*order, _P.last_name, _P.first_name, _P.id)
    page = page.limit(bindparam("limit")).offset(bindparam("offset"))
    return TenantRead.of(page), TenantRead.of(count)


LISTS = {
    (search, phone, status): _list(search=search, phone=phone, status=status)
    for search, phone, status in itertools.product((False, True), repeat=3)
    if search or not phone
}


async def list_patients(
    reads: TenantReads, page: PageParams, *, search: str | None, status: str | None
) -> tuple[list[DictRow], int]:
    """One page of the tenant's patients (whose name or email contains the search, or whose phone or MRN
    matches, best first; else by name) and how many there are in all."""
    params: dict[str, Any] = {"limit": page.page_size, "offset": page.offset}
    phone = False
    if status:
        params["status"] = status
    if search:
        q = search.strip()
        digits = digits_only(q)
        phone = bool(PHONE_LIKE.match(q)) and len(digits) >= 3
        params.update(lower=_escaped(q.lower()), upper=q.upper(), similar=q.lower())
        if phone:
            params["digits"] = _escaped(digits)
    page_read, count_read = LISTS[(bool(search), phone, bool(status))]
    total = await reads.one(count_read, **params)
    rows = await reads.all(page_read, **params)
    return rows, int(total["total"] if total else 0)
