"""FHIR search: the parameters each resource takes, turned into SQL over our tables (tenant-scoped by the
session), paged by keyset in a stable order (`_sort`, by default `_lastUpdated`, then id): a page's `next`
link carries `_cursor`, the sort keys of its last match, and the next page starts after them (no OFFSET,
so page 500 costs what page 1 does). Its `previous` link carries a reverse cursor, the sort keys of its
first match: that page is read backwards from there (the order reversed, then the page turned back), so
walking back gives the pages walking forward gave. `_count` is at most `MAX_COUNT`; `total` is counted
only when the client asks (`_total=accurate`), not on every page.

A parameter may repeat (every occurrence must match: `_lastUpdated=ge2026-01-01&_lastUpdated=lt2026-02-01`)
and a token or reference may list alternatives with commas (`identifier=a|1,b|2`). String parameters (`name`,
`family`, `given`) match the start of a name part in any case, or with `:exact` the whole part as written,
or with `:contains` any part of it in any case. `_sort` takes a comma-separated list of the resource's sort
keys, each `-` for descending.

Strict by default: an unknown parameter, modifier or sort key is refused (400, naming it) rather than
ignored, so a client never mistakes an unfiltered (or unsorted) answer for a filtered one. FHIR leaves the
default to the server and lets the client choose with `Prefer: handling=strict|lenient`: with `lenient`
they are ignored, and the searchset's links carry only the parameters that were applied, as FHIR asks.
A value this server cannot read (a bad date, an empty value) is a 400 either way, and so is a search past
its size (`MAX_PARAMETERS`, `MAX_REPEATS`, `MAX_ALTERNATIVES`).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, false, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import BadRequest
from domain.communications.models import Communication
from domain.enums import AppointmentStatus
from domain.fhir.render import (
    FHIR_TO_APPOINTMENT_STATUS,
    LICENSE_SYSTEM,
    MRN_SYSTEM,
    PROVIDER_MESSAGE_SYSTEM,
)
from domain.patients.models import Patient, PatientIdentifier
from domain.patients.repository import full_name
from domain.practitioners.models import Practitioner, PractitionerIdentifier
from domain.scheduling.models import Appointment, AppointmentIdentifier

DEFAULT_COUNT, MAX_COUNT = 20, 1000
CURSOR_PARAM, TOTAL_PARAM = "_cursor", "_total"
PAGING_PARAMS = frozenset({"_count", CURSOR_PARAM, TOTAL_PARAM})
TOTAL_VALUES = ("none", "estimate", "accurate")
MAX_CURSOR_LENGTH = 2000
SORT_PARAM = "_sort"
STRING_MODIFIERS = ("exact", "contains")
IGNORED_PARAMS = frozenset({"_format", "_pretty"})  # JSON is all this server speaks
DATE_VALUE = re.compile(
    r"^(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2})"
    r"(T(?P<hour>\d{2}):(?P<minute>\d{2})(:(?P<second>\d{2})(\.\d+)?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
DATE_PREFIXES = ("eq", "ne", "gt", "ge", "lt", "le", "sa", "eb")
MAX_VALUE_LENGTH = 255
# A search's size is bounded, so that no client's search holds the server for long: each condition costs
# building, planning and running. Ample for what FHIR searches say (a date range is two, `_id` of a page a
# few dozen alternatives).
MAX_PARAMETERS = 50  # in one search, paging and sorting included
MAX_REPEATS = 20  # of one parameter (every occurrence must match)
MAX_ALTERNATIVES = 100  # comma-separated values of one occurrence (any may match)

Condition = ColumnElement[bool]


@dataclass(frozen=True)
class Paging:
    """Which page of the matches to answer: `count` of them, after the `cursor` position (None: from the
    first), or before it when the cursor is a reverse one (`backward`); `total` whether to count all
    matches."""

    count: int
    cursor: str | None = None
    total: bool = False
    backward: bool = False


@dataclass(frozen=True)
class SearchResult:
    """One page of matching records, the cursors of the pages after and before it (None: there is none),
    and how many match in all (None: not counted)."""

    records: list[Any]
    total: int | None
    paging: Paging
    next_cursor: str | None = None
    previous_cursor: str | None = None


# ---- keyset cursors -------------------------------------------------------------------------------------


def _tagged(value: Any) -> Any:
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    raise TypeError(f"no cursor encoding for {type(value).__name__}")


def _untagged(value: Any) -> Any:
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, dict) and len(value) == 1:
        [(tag, raw)] = value.items()
        parsers: dict[str, Callable[[str], Any]] = {
            "t": datetime.fromisoformat,
            "d": date.fromisoformat,
            "u": uuid.UUID,
        }
        if tag in parsers and isinstance(raw, str):
            return parsers[tag](raw)
    raise ValueError("not a cursor value")


BACKWARD = "<"  # a reverse cursor is {"<": [sort keys]}: the page before that position


def encode_cursor(values: Sequence[Any], *, backward: bool = False) -> str:
    """The opaque `_cursor` of a position (the sort keys of a page's last match; with `backward`, of a
    page's first match, for the page before it)."""
    tagged: Any = [_tagged(v) for v in values]
    raw = json.dumps({BACKWARD: tagged} if backward else tagged, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, keys: int) -> tuple[list[Any], bool]:
    """The position a `_cursor` names and whether the page is before it; 400 when it is not one of this
    search's."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        backward = isinstance(raw, dict) and list(raw) == [BACKWARD]
        values = [_untagged(v) for v in (raw[BACKWARD] if backward else raw)]
    except (ValueError, TypeError, KeyError, binascii.Error) as exc:
        raise BadRequest(
            "_cursor is not a cursor this server gave (follow the searchset's next link)."
        ) from exc
    if len(values) != keys:
        raise BadRequest("_cursor belongs to a search with another _sort.")
    return values, backward


def _equal(expr: Any, value: Any) -> Condition:
    return expr.is_(None) if value is None else expr == value  # type: ignore[no-any-return]


def after(keys: Sequence[tuple[Any, bool]], values: Sequence[Any]) -> Condition:
    """Rows ordered after the position `values` by `keys` ((expression, descending), nulls last)."""
    options: list[Condition] = []
    for i, ((expr, descending), value) in enumerate(zip(keys, values, strict=True)):
        if value is None:
            continue  # nothing sorts after a null but other nulls: the next key decides among them
        beyond = expr < value if descending else expr > value
        ties = [_equal(e, v) for (e, _), v in zip(keys[:i], values[:i], strict=True)]
        options.append(and_(*ties, or_(beyond, expr.is_(None))))
    return or_(*options) if options else false()


def before(keys: Sequence[tuple[Any, bool]], values: Sequence[Any]) -> Condition:
    """Rows ordered before the position `values` by `keys` ((expression, descending), nulls last)."""
    options: list[Condition] = []
    for i, ((expr, descending), value) in enumerate(zip(keys, values, strict=True)):
        # Every value sorts before a null; a null sorts before nothing (a comparison with it is not true).
        earlier = expr.is_not(None) if value is None else (expr > value if descending else expr < value)
        ties = [_equal(e, v) for (e, _), v in zip(keys[:i], values[:i], strict=True)]
        options.append(and_(*ties, earlier))
    return or_(*options) if options else false()


# ---- parameter values ----------------------------------------------------------------------------------


def _date_range(raw: str) -> tuple[str, datetime, datetime]:
    """(prefix, start, end) of a date search value: the value stands for the interval [start, end)."""
    prefix = raw[:2] if raw[:2] in DATE_PREFIXES else "eq"
    value = raw[2:] if raw[:2] in DATE_PREFIXES else raw
    match = DATE_VALUE.match(value)
    if not match:
        raise BadRequest("A date parameter takes [prefix]YYYY[-MM[-DD[Thh:mm[:ss][Z|+hh:mm]]]].")
    parts = match.groupdict()
    try:
        year, month, day = int(parts["year"]), int(parts["month"] or 1), int(parts["day"] or 1)
        if parts["hour"] is None:
            start = datetime(year, month, day, tzinfo=UTC)
            if parts["day"]:
                end = start + timedelta(days=1)
            elif parts["month"]:
                end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            else:
                end = datetime(year + 1, 1, 1, tzinfo=UTC)
        else:
            stamp = value if parts["tz"] else value + "+00:00"  # no offset: read as UTC
            start = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            end = start + (timedelta(seconds=1) if parts["second"] else timedelta(minutes=1))
    except (ValueError, OverflowError) as exc:
        raise BadRequest("A date parameter names a day or time that does not exist.") from exc
    return prefix, start, end


def date_condition(column: Any, raw: str, *, as_date: bool = False) -> Condition:
    """The condition a date search value puts on `column` (a date column when `as_date`)."""
    prefix, start, end = _date_range(raw)
    lo: datetime | date = start.date() if as_date else start
    hi: datetime | date = end.date() if as_date else end
    if as_date and hi == lo:
        hi = lo + timedelta(days=1)
    within = and_(column >= lo, column < hi)
    conditions: dict[str, Condition] = {
        "eq": within,
        "ne": not_(within),
        "gt": column >= hi,
        "sa": column >= hi,
        "ge": column >= lo,
        "lt": column < lo,
        "eb": column < lo,
        "le": column < hi,
    }
    return conditions[prefix]


def _token(raw: str) -> tuple[str | None, str | None]:
    """(system, value) of a token: `system|value`, `system|` (any value), `|value` or `value` (any system)."""
    if "|" not in raw:
        return None, raw or None
    system, value = raw.split("|", 1)
    return system or None, value or None


def _alternatives(raw: str) -> list[str]:
    values = [v for v in raw.split(",") if v]
    if not values or any(len(v) > MAX_VALUE_LENGTH for v in values):
        raise BadRequest(f"A search value must be 1 to {MAX_VALUE_LENGTH} characters.")
    return values


def _ids(raw: str) -> list[uuid.UUID]:
    found = []
    for value in _alternatives(raw):
        try:
            found.append(uuid.UUID(value.rsplit("/", 1)[-1]))
        except ValueError:
            continue  # an id that is not ours matches nothing
    return found


def _id_condition(column: Any, raw: str) -> Condition:
    ids = _ids(raw)
    return column.in_(ids) if ids else false()


def _identifier_condition(
    raw: str, *, model: Any, owner_column: Any, owned_by: Any, own: dict[str, Any]
) -> Condition:
    """`identifier=`: our own identifiers (MRN, license number, ...) and those other systems gave."""
    options: list[Condition] = []
    for alternative in _alternatives(raw):
        system, value = _token(alternative)
        for own_system, column in own.items():
            if system in (None, own_system) and value is not None:
                options.append(column == (value.upper() if own_system == MRN_SYSTEM else value))
            elif system == own_system:
                options.append(column.is_not(None))
        if system not in own:
            conditions = [model.system == system] if system else []
            if value is not None:
                conditions.append(model.value == value)
            options.append(exists().where(owned_by == owner_column, *conditions))
    return or_(*options) if options else false()


def _string_condition(raw: str, modifier: str, parts: Sequence[Any], whole: Any | None = None) -> Condition:
    """FHIR string search over name parts (and the whole name, lower-cased, when given): by default a part
    starts with the value in any case; `exact`, a part is the value as written; `contains`, a part contains
    it in any case."""
    options: list[Condition] = []
    for alternative in _alternatives(raw):
        if modifier == "exact":
            options += [part == alternative for part in parts]
            continue
        q = alternative.strip().lower()
        columns = [func.lower(part) for part in parts] + ([whole] if whole is not None else [])
        if modifier == "contains":
            options += [column.contains(q, autoescape=True) for column in columns]
        else:
            options += [column.startswith(q, autoescape=True) for column in columns]
    return or_(*options)


# ---- the parameters of each resource -------------------------------------------------------------------

ParameterBuilder = Callable[[str], Condition]
StringBuilder = Callable[[str, str], Condition]  # (value, modifier: "", "exact" or "contains")
SortKey = tuple[Any, ...]  # the columns a `_sort` key orders by, ascending


def _name_parameters(model: Any, whole: Any) -> dict[str, StringBuilder]:
    """`name` (any part, or the whole name), `family` and `given` of a person."""
    return {
        "name": lambda v, m: _string_condition(
            v, m, (model.first_name, model.middle_name, model.last_name), whole
        ),
        "family": lambda v, m: _string_condition(v, m, (model.last_name,)),
        "given": lambda v, m: _string_condition(v, m, (model.first_name, model.middle_name)),
    }


def _patient_parameters() -> dict[str, ParameterBuilder]:
    return {
        "_id": lambda v: _id_condition(Patient.id, v),
        "identifier": lambda v: _identifier_condition(
            v,
            model=PatientIdentifier,
            owner_column=Patient.id,
            owned_by=PatientIdentifier.patient_id,
            own={MRN_SYSTEM: Patient.mrn},
        ),
        "birthdate": lambda v: date_condition(Patient.date_of_birth, v, as_date=True),
        "gender": lambda v: Patient.gender.in_(_alternatives(v)),
        "_lastUpdated": lambda v: date_condition(Patient.updated_at, v),
    }


def _practitioner_whole_name() -> Any:
    return func.lower(Practitioner.first_name + " " + Practitioner.last_name)


def _practitioner_parameters() -> dict[str, ParameterBuilder]:
    return {
        "_id": lambda v: _id_condition(Practitioner.id, v),
        "identifier": lambda v: _identifier_condition(
            v,
            model=PractitionerIdentifier,
            owner_column=Practitioner.id,
            owned_by=PractitionerIdentifier.practitioner_id,
            own={LICENSE_SYSTEM: Practitioner.license_number},
        ),
        "_lastUpdated": lambda v: date_condition(Practitioner.updated_at, v),
    }


def _appointment_status(raw: str) -> Condition:
    wanted: set[AppointmentStatus] = set()
    for value in _alternatives(raw):
        if value not in FHIR_TO_APPOINTMENT_STATUS:
            raise BadRequest("Unknown Appointment status.")
        wanted.add(FHIR_TO_APPOINTMENT_STATUS[value])
        if value == "booked":
            wanted.add(AppointmentStatus.CONFIRMED)
    return Appointment.status.in_([s.value for s in wanted])


def _appointment_parameters() -> dict[str, ParameterBuilder]:
    return {
        "_id": lambda v: _id_condition(Appointment.id, v),
        "identifier": lambda v: _identifier_condition(
            v,
            model=AppointmentIdentifier,
            owner_column=Appointment.id,
            owned_by=AppointmentIdentifier.appointment_id,
            own={},
        ),
        "patient": lambda v: _id_condition(Appointment.patient_id, v),
        "practitioner": lambda v: _id_condition(Appointment.practitioner_id, v),
        "date": lambda v: date_condition(Appointment.start_time, v),
        "status": _appointment_status,
        "_lastUpdated": lambda v: date_condition(Appointment.updated_at, v),
    }


def _communication_parameters() -> dict[str, ParameterBuilder]:
    return {
        "_id": lambda v: _id_condition(Communication.id, v),
        "identifier": lambda v: or_(
            *(
                Communication.provider_message_id == value
                for system, value in map(_token, _alternatives(v))
                if value is not None and system in (None, PROVIDER_MESSAGE_SYSTEM)
            ),
            false(),
        ),
        "patient": lambda v: _id_condition(Communication.patient_id, v),
        "subject": lambda v: _id_condition(Communication.patient_id, v),
        "sent": lambda v: date_condition(func.coalesce(Communication.sent_at, Communication.created_at), v),
        "_lastUpdated": lambda v: date_condition(Communication.updated_at, v),
    }


@dataclass(frozen=True)
class SearchableType:
    """A resource type this server searches: its table, its parameters (string ones take modifiers) and the
    keys `_sort` takes."""

    model: Any
    parameters: dict[str, ParameterBuilder]
    strings: dict[str, StringBuilder]
    sort_keys: dict[str, SortKey]

    @property
    def parameter_names(self) -> list[str]:
        """Every search parameter, sorted."""
        return sorted({*self.parameters, *self.strings})


def _person_sort_keys(model: Any, family: Any, given: Any) -> dict[str, SortKey]:
    return {
        "_lastUpdated": (model.updated_at,),
        "family": (family,),
        "given": (given,),
        "name": (family, given),
    }


SEARCHABLE: dict[str, SearchableType] = {
    "Patient": SearchableType(
        Patient,
        _patient_parameters(),
        _name_parameters(Patient, full_name()),
        {
            **_person_sort_keys(Patient, Patient.last_name_key, Patient.first_name_key),
            "birthdate": (Patient.date_of_birth,),
        },
    ),
    "Practitioner": SearchableType(
        Practitioner,
        _practitioner_parameters(),
        _name_parameters(Practitioner, _practitioner_whole_name()),
        _person_sort_keys(
            Practitioner, func.lower(Practitioner.last_name), func.lower(Practitioner.first_name)
        ),
    ),
    "Appointment": SearchableType(
        Appointment,
        _appointment_parameters(),
        {},
        {"_lastUpdated": (Appointment.updated_at,), "date": (Appointment.start_time,)},
    ),
    "Communication": SearchableType(
        Communication,
        _communication_parameters(),
        {},
        {
            "_lastUpdated": (Communication.updated_at,),
            "sent": (func.coalesce(Communication.sent_at, Communication.created_at),),
        },
    ),
}


@dataclass(frozen=True)
class Search:
    """A search as it will run: its statement, the page asked for and the parameters applied (what the
    searchset's links carry: under lenient handling, those ignored are left out)."""

    statement: Select[Any]
    paging: Paging
    applied: list[tuple[str, str]]
    includes: list[Include] = field(default_factory=list)


@dataclass(frozen=True)
class Include:
    """An `_include` a search resolves: the type it brings and the attribute of a match that names it."""

    value: str
    resource_type: str
    attribute: str


INCLUDE_PARAM = "_include"
# What `_include` resolves, per searched type (and what the CapabilityStatement's searchInclude says).
INCLUDES: dict[str, dict[str, Include]] = {
    "Appointment": {
        "Appointment:patient": Include("Appointment:patient", "Patient", "patient_id"),
        "Appointment:practitioner": Include("Appointment:practitioner", "Practitioner", "practitioner_id"),
    },
}


def _include(resource_type: str, value: str, *, lenient: bool) -> Include | None:
    found = INCLUDES.get(resource_type, {}).get(value)
    if found is None and not lenient:
        known = ", ".join(INCLUDES.get(resource_type, {})) or "none"
        raise BadRequest(f"_include: {value[:60]!r} is not resolved for {resource_type}; resolved: {known}.")
    return found


def _paging(params: Sequence[tuple[str, str]]) -> Paging:
    values = dict(params)
    try:
        count = int(values.get("_count", DEFAULT_COUNT))
    except ValueError as exc:
        raise BadRequest("_count takes a whole number.") from exc
    if count < 0:
        raise BadRequest("_count must be 0 or more.")
    total = values.get(TOTAL_PARAM, "none")
    if total not in TOTAL_VALUES:
        raise BadRequest(f"_total takes {', '.join(TOTAL_VALUES)}.")
    cursor = values.get(CURSOR_PARAM)
    if cursor is not None and not 0 < len(cursor) <= MAX_CURSOR_LENGTH:
        raise BadRequest("_cursor is not a cursor this server gave (follow the searchset's next link).")
    return Paging(count=min(count, MAX_COUNT), cursor=cursor, total=total == "accurate")


def _order(searchable: SearchableType, raw: str, *, lenient: bool) -> tuple[list[tuple[Any, bool]], str]:
    """The keys of a `_sort` value ((expression, descending), ordered nulls last either way) and the part
    of it applied."""
    order: list[tuple[Any, bool]] = []
    applied: list[str] = []
    for key in raw.split(","):
        name = key.strip().removeprefix("-")
        columns = searchable.sort_keys.get(name)
        if columns is None:
            if lenient:
                continue
            known = ", ".join(sorted(searchable.sort_keys))
            raise BadRequest(
                f"_sort: unknown sort key {name[:40]!r}; known: {known} (each may start with -)."
            )
        descending = key.strip().startswith("-")
        order += [(c, descending) for c in columns]
        applied.append(key.strip())
    return order, ",".join(applied)


def _check_size(params: Sequence[tuple[str, str]]) -> None:
    """400 for a search past `MAX_PARAMETERS`, `MAX_REPEATS` or `MAX_ALTERNATIVES`, naming the parameter."""
    repeats = Counter(param.partition(":")[0] for param, _ in params)
    for name, times in repeats.items():
        if times > MAX_REPEATS:
            raise BadRequest(f"The search parameter {name[:40]} may be given at most {MAX_REPEATS} times.")
    if len(params) > MAX_PARAMETERS:
        raise BadRequest(f"A search takes at most {MAX_PARAMETERS} parameters; this one has {len(params)}.")
    for param, value in params:
        if value.count(",") >= MAX_ALTERNATIVES:
            raise BadRequest(
                f"The search parameter {param.partition(':')[0][:40]} lists at most {MAX_ALTERNATIVES} "
                "comma-separated values."
            )


def build_search(resource_type: str, params: Sequence[tuple[str, str]], *, lenient: bool = False) -> Search:
    """The statement matching a search (ordered by `_sort`, else `_lastUpdated`, then id), the page asked for
    and the parameters applied. `lenient`: unknown parameters, modifiers and sort keys are ignored."""
    _check_size(params)
    searchable = SEARCHABLE[resource_type]
    conditions: list[Condition] = []
    order: list[tuple[Any, bool]] = []
    applied: list[tuple[str, str]] = []
    includes: list[Include] = []
    for param, value in params:
        name, _, modifier = param.partition(":")
        if param == INCLUDE_PARAM:
            include = _include(resource_type, value, lenient=lenient)
            if include is not None and include not in includes:
                includes.append(include)
                applied.append((param, value))
            continue
        if param in PAGING_PARAMS or param in IGNORED_PARAMS:
            applied.append((param, value))
            continue
        if name == SORT_PARAM and not modifier:
            if order:
                raise BadRequest("_sort may be given once (list its keys with commas).")
            if not value:
                raise BadRequest("The search parameter _sort needs a value.")
            order, kept = _order(searchable, value, lenient=lenient)
            if kept:
                applied.append((SORT_PARAM, kept))
            continue
        string = searchable.strings.get(name)
        builder = searchable.parameters.get(name)
        if string is None and builder is None:
            if lenient:
                continue
            known = ", ".join(searchable.parameter_names)
            raise BadRequest(f"Unknown search parameter {name[:40]!r} for {resource_type}; known: {known}.")
        if modifier and (string is None or modifier not in STRING_MODIFIERS):
            if lenient:
                continue
            takes = f"takes :{' or :'.join(STRING_MODIFIERS)}" if string is not None else "takes no modifier"
            raise BadRequest(
                f"Unknown modifier :{modifier[:20]} on the search parameter {name}; {name} {takes}."
            )
        if not value:
            raise BadRequest(f"The search parameter {name} needs a value.")
        if string is not None:
            conditions.append(string(value, modifier))
        elif builder is not None:
            conditions.append(builder(value))
        applied.append((param, value))
    model = searchable.model
    keys = [*(order or [(model.updated_at, False)]), (model.id, False)]
    paging = _paging(params)
    ordering = [(e.desc() if d else e.asc()).nulls_last() for e, d in keys]
    if paging.cursor is not None:
        position, backward = decode_cursor(paging.cursor, len(keys))
        conditions.append((before if backward else after)(keys, position))
        if backward:  # read back from the position; run_search turns the page the right way round
            ordering = [(e.asc() if d else e.desc()).nulls_first() for e, d in keys]
            paging = dataclasses.replace(paging, backward=True)
    stmt = select(model, *(expr for expr, _ in keys)).where(*conditions).order_by(*ordering)
    return Search(stmt, paging, applied, includes)


async def run_search(session: AsyncSession, stmt: Select[Any], paging: Paging) -> SearchResult:
    """One page of `stmt` (whose columns are the record, then its sort keys), the cursor after it, and
    the number of matches when asked for."""
    total = None
    if paging.total:
        total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    if not paging.count:
        return SearchResult(records=[], total=total, paging=paging)
    rows = (await session.execute(stmt.limit(paging.count + 1))).all()
    more = len(rows) > paging.count  # beyond this page, in the direction read
    page = rows[: paging.count]
    if paging.backward:
        page.reverse()
    # Read backwards, the page came from a later one (so one follows) and `more` says whether one precedes;
    # read forwards, `more` says whether one follows, and a cursor that one precedes.
    has_next = paging.backward or more
    has_previous = more if paging.backward else paging.cursor is not None
    following = encode_cursor(page[-1][1:]) if page and has_next else None
    preceding = encode_cursor(page[0][1:], backward=True) if page and has_previous else None
    return SearchResult(
        records=[row[0] for row in page],
        total=total,
        paging=paging,
        next_cursor=following,
        previous_cursor=preceding,
    )
