"""The patient list's reads, straight on psycopg (`core.reads`): `GET /patients`, filtered and paged, and the
quick search `GET /patients/search` (its name search is `domain.patients.name_search`).

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
from core.errors import Unprocessable
from core.pagination import PageParams
from core.phones import digits_only, to_e164
from core.reads import TenantRead, TenantReads
from domain.patients.models import Patient, full_name_expression
from domain.patients.name_search import search_names
from domain.patients.repository import PHONE_LIKE
from domain.patients.schemas import PatientSearchType, PatientSimpleResponse

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


def _quick(condition: ColumnElement[bool], *order: Any) -> TenantRead:
    """A quick search by one identifier: the best matches first, then by name."""
    return TenantRead.of(
        select(*LIST_COLUMNS)
        .where(_P.tenant_id == _TENANT, condition)
        .order_by(*order, _P.last_name, _P.first_name, _P.id)
        .limit(bindparam("limit"))
    )


_EMAIL = func.lower(_P.email_primary)
# A phone number's digits anywhere in it (the trigram index); typed as a full number that normalises, the
# number itself first.
PHONE_PART = _quick(_P.phone_primary.contains(bindparam("digits"), escape=ESCAPE))
PHONE_PART_OR_NUMBER = _quick(
    or_(_P.phone_primary.contains(bindparam("digits"), escape=ESCAPE), _P.phone_primary == bindparam("e164")),
    (_P.phone_primary == bindparam("e164")).desc(),
)
# MRNs are stored upper-case, so a plain prefix match can use ix_patients_tenant_mrn_pattern.
MRN = _quick(_P.mrn.startswith(bindparam("prefix"), escape=ESCAPE), (_P.mrn == bindparam("upper")).desc())
EMAIL = _quick(
    _EMAIL.contains(bindparam("part"), escape=ESCAPE),
    (_EMAIL == bindparam("lower")).desc(),
    func.similarity(_EMAIL, bindparam("lower")).desc(),
)


async def quick_search(
    reads: TenantReads, query: str, search_type: PatientSearchType, limit: int
) -> list[DictRow]:
    """Up to `limit` of the tenant's patients matching `query` by one kind of identifier, best first."""
    q = query.strip()
    if search_type is PatientSearchType.NAME:
        return await search_names(reads, q, limit)
    if search_type is PatientSearchType.PHONE:
        digits = digits_only(q)
        if len(digits) < 2:
            raise Unprocessable("A phone search needs at least 2 digits.", loc=("query", "query"))
        try:
            # A national number ("020 7946 0958") only matches once normalised like stored numbers.
            e164 = to_e164(q)
        except ValueError:
            return await reads.all(PHONE_PART, digits=_escaped(digits), limit=limit)
        return await reads.all(PHONE_PART_OR_NUMBER, digits=_escaped(digits), e164=e164, limit=limit)
    if search_type is PatientSearchType.MRN:
        upper = q.upper()
        return await reads.all(MRN, prefix=_escaped(upper), upper=upper, limit=limit)
    lower = q.lower()
    return await reads.all(EMAIL, part=_escaped(lower), lower=lower, limit=limit)
