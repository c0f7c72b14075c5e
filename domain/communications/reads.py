"""Messages' hottest reads, straight on psycopg (`core.reads`), filtered by the caller's tenant: one message,
and the full-text search (`GET /communications/search`).

A search returns the newest `SEARCH_WINDOW` matches ranked best first (`ts_rank_cd`), then any older ones
newest first. `total` is exact up to `SEARCH_WINDOW` matches; above that it is a lower bound (the matches up
to the end of the requested page, plus one), so `has_next` stays right. Counting and ranking every match of
a common word is what made a search over a million messages slow; this reads only the newest matches.

How it looks for them depends on how common the query's least common word is (`expected_share`, from
PostgreSQL's statistics); every way finds the same matches:

- Words common enough (`SCAN_SHARE`): the newest messages in the filters, newest first, at most
  `SCAN_ROWS` of them (`SCAN`): an index-only read of the tenant's `(tenant_id, created_at, id) INCLUDE
  (search_vector)` index, or of the patient's `(patient_id, created_at, id) INCLUDE (tenant_id,
  search_vector)` one (migrations 0012, 0035). Its matches are the answer when there are enough of them,
  or when the read covered every message in the filters (one patient's, a date range): the same statement
  says which, counting the messages it read only when it found too few matches.
- Words too rare for the statistics' list: the GIN index alone (`CANDIDATES`).
- Others, or when the newest messages held too few: the GIN index within the last `SLICE_DAYS`, widening
  only when a slice holds too few.

Each shape (which filters are given) is one statement, compiled once on first use. The GIN statements are
planned for their parameters on every run (`TenantRead.custom_plan`): a generic plan cannot know whether
the words are rare (the GIN index) or common (the created_at index).
"""

from __future__ import annotations

import functools
import itertools
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import BindParameter, Select, and_, bindparam, case, func, literal_column, select, true
from sqlalchemy.dialects.postgresql import UUID as PG_UUID

from core.database import TENANT_PARAMETER
from core.reads import TenantRead, TenantReads
from domain.communications.models import Communication
from domain.communications.repository import CommunicationRepository
from domain.communications.schemas import CommunicationDetail, CommunicationResponse
from domain.enums import Channel

COMMUNICATION = TenantRead.by_id(Communication.__table__, CommunicationDetail)  # type: ignore[arg-type]


async def communication(reads: TenantReads, communication_id: uuid.UUID) -> DictRow:
    """One message of the tenant's, with its delivery state (NotFound otherwise)."""
    return await reads.one_or_404(COMMUNICATION, CommunicationRepository.label, record_id=communication_id)


SEARCH_CONFIG = "simple"  # the configuration `search_vector` is computed with
SEARCH_WINDOW = 200  # the newest matches a search ranks (and counts exactly)
SLICE_DAYS = (30, 180)  # the recent slices a search looks in before it reads all of a tenant's messages
# A query whose every word is in at least this share of the messages (PostgreSQL's statistics) is first
# looked for newest first, reading at most SCAN_ROWS of the newest messages: its matches come early, and
# the GIN index would have to list every one of them, in every tenant and year, to return the newest.
SCAN_SHARE = 0.005
SCAN_ROWS = 50_000
# The share of the messages holding each of the most common lexemes: the list and frequencies ANALYZE keeps
# in pg_stats. Read once per WORD_STATISTICS_SECONDS per process and database (they change only with an
# ANALYZE): joining the query's words to pg_stats on every search cost 6 ms of it. A catalog read, no
# tenant's data: it runs on the read pool without a TenantRead.
WORD_STATISTICS = """
    SELECT most_common_elems::text::text[] AS words, most_common_elem_freqs AS shares
    FROM pg_stats
    WHERE schemaname = current_schema() AND tablename = 'communications' AND attname = 'search_vector'
"""
WORD_STATISTICS_SECONDS = 300.0
WORD = re.compile(r"[^\W_]+")  # the `simple` configuration's words, near enough to choose a plan by
_word_shares: dict[str, tuple[float, dict[str, float]]] = {}  # database -> (read at, lexeme -> share)


async def expected_share(pool: AsyncConnectionPool[AsyncConnection[DictRow]], query: str) -> float:
    """The share of all messages that hold the query's least common word, by PostgreSQL's statistics (0 for
    a word rarer than every word they list, or before the first ANALYZE). It only chooses how a search
    looks (`search`): every way finds the same matches."""
    database = str(pool.conninfo)
    read_at, shares = _word_shares.get(database, (-WORD_STATISTICS_SECONDS, {}))
    if time.monotonic() - read_at >= WORD_STATISTICS_SECONDS:
        async with pool.connection() as conn:
            row = await (await conn.execute(WORD_STATISTICS)).fetchone()
        # most_common_elem_freqs ends with three summary figures: zip stops at the last word.
        words = row["words"] if row is not None else None
        shares = dict(zip(words, row["shares"], strict=False)) if row is not None and words else {}
        _word_shares[database] = (time.monotonic(), shares)
    return min((shares.get(word, 0.0) for word in WORD.findall(query.lower())), default=0.0)


def forget_word_statistics() -> None:
    """Read the statistics afresh on the next search (after an ANALYZE, in tests)."""
    _word_shares.clear()


_C = Communication.__table__.c
_TENANT = bindparam(TENANT_PARAMETER, type_=PG_UUID(as_uuid=True))
_TSQUERY = func.websearch_to_tsquery(literal_column(f"'{SEARCH_CONFIG}'::regconfig"), bindparam("query"))
_MATCHES = _C.search_vector.op("@@")(_TSQUERY)
# The query parsed once per run, whatever the plan: a generic plan (a prepared statement's, after a few runs)
# does not fold the function call into a constant, and parsed it again for each of the thousands of rows a
# scan tests (4 times the time).
_TSQUERY_ONCE = select(_TSQUERY).scalar_subquery()
_NEWEST_FIRST = (_C.created_at.desc(), _C.id.desc())
RESPONSE_COLUMNS = [_C[name] for name in CommunicationResponse.model_fields]


def _filters(*, patient: bool, channel: bool, date_to: bool, since: bool) -> list[Any]:
    """The tenant and the given filters, as bound parameters."""
    conditions = [_C.tenant_id == _TENANT]
    if patient:
        conditions.append(_C.patient_id == bindparam("patient_id", type_=PG_UUID(as_uuid=True)))
    if channel:
        conditions.append(_C.channel == bindparam("channel"))
    if date_to:
        conditions.append(_C.created_at <= bindparam("date_to"))
    if since:
        conditions.append(_C.created_at >= bindparam("since"))
    return conditions


_WINDOW: BindParameter[int] = bindparam("window")
_NEED: BindParameter[int] = bindparam("need")


def _paged(hits: Any, *head: Any) -> Select[Any]:
    """The requested page of `hits` (id, created_at, rank: the newest `:need` matches) with each message's
    columns: the newest `:window` ranked best first (then newest, then by id), the rest newest first, up to
    the `:need` - 1st match (the last one only says there is more), from `:offset`, `:limit` of them. Every
    row also carries `found` (how many hits) and the `head` columns; one row of those alone when the page
    is empty. Paging in the statement hands back a page of rows, not every candidate to rank in Python."""
    newest = func.row_number().over(order_by=(hits.c.created_at.desc(), hits.c.id.desc()))
    numbered = select(hits.c.id, hits.c.created_at, hits.c.rank, newest.label("newest")).cte("numbered")
    in_window = numbered.c.newest <= _WINDOW
    order = (
        numbered.c.newest > _WINDOW,  # false (in the window) first
        case((in_window, numbered.c.rank)).desc().nulls_last(),
        case((in_window, numbered.c.created_at)).desc().nulls_last(),
        case((in_window, numbered.c.id)).asc(),
        numbered.c.newest,
    )
    page = (
        select(numbered.c.id, numbered.c.rank, func.row_number().over(order_by=order).label("position"))
        .where(numbered.c.newest < _NEED)
        .order_by(*order)
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
        .subquery("page")
    )
    found = select(func.count()).select_from(hits).scalar_subquery()
    first = select(*head, found.label("found")).subquery("first")
    messages = page.join(Communication.__table__, and_(_C.id == page.c.id, _C.tenant_id == _TENANT))
    return (
        select(*first.c, page.c.rank, *RESPONSE_COLUMNS)
        .select_from(first.outerjoin(messages, true()))
        .order_by(page.c.position)
    )


@functools.cache
def _scan(*, patient: bool, channel: bool, date_to: bool, since: bool) -> TenantRead:
    """The newest `:scan_limit` messages in the filters, newest first, and the newest `:need` matches among
    them with their rank, paged (`_paged`); `covered` says (only when they are fewer than `:need`) whether
    the read held every message in the filters."""
    conditions = _filters(patient=patient, channel=channel, date_to=date_to, since=since)
    recent = (
        select(_C.id, _C.created_at, _C.search_vector)
        .where(*conditions)
        .order_by(*_NEWEST_FIRST)
        .limit(bindparam("scan_limit"))
        .subquery("recent")
    )
    hits = (
        select(
            recent.c.id,
            recent.c.created_at,
            func.ts_rank_cd(recent.c.search_vector, _TSQUERY_ONCE).label("rank"),
        )
        .where(recent.c.search_vector.op("@@")(_TSQUERY_ONCE))
        .order_by(recent.c.created_at.desc(), recent.c.id.desc())
        .limit(_NEED)
        .cte("hits")
    )
    # PostgreSQL runs a scalar subquery when it is first needed: the messages in the filters are counted
    # (up to `:scan_limit`, in the index alone) only when the matches were too few.
    found = select(func.count()).select_from(hits).scalar_subquery()
    some = select(_C.id).where(*conditions).limit(bindparam("scan_limit")).subquery("some")
    read = select(func.count()).select_from(some).scalar_subquery()
    covered = case((found < _NEED, read < bindparam("scan_limit")), else_=None).label("covered")
    return TenantRead.of(_paged(hits, covered))


@functools.cache
def _candidates(*, patient: bool, channel: bool, date_to: bool, since: bool) -> TenantRead:
    """The newest `:need` matches in the filters through the GIN index, with their rank, paged
    (`_paged`)."""
    hits = (
        select(_C.id, _C.created_at, func.ts_rank_cd(_C.search_vector, _TSQUERY).label("rank"))
        .where(_MATCHES, *_filters(patient=patient, channel=channel, date_to=date_to, since=since))
        # The same order, as an expression no index provides: a word that reaches this point is rare,
        # and the planner would otherwise walk the tenant's newest-first index (which carries
        # search_vector) through millions of entries, expecting the matches to come early.
        .order_by((_C.created_at + literal_column("interval '0'")).desc(), _C.id.desc())
        .limit(_NEED)
        .cte("hits")
    )
    return TenantRead.of(_paged(hits), custom_plan=True)


def search_reads() -> dict[str, TenantRead]:
    """Every statement a search may run, by name (for the tests that walk the hot reads)."""
    found = {}
    for patient, channel, date_to, since in itertools.product((False, True), repeat=4):
        shape = {"patient": patient, "channel": channel, "date_to": date_to, "since": since}
        named = ",".join(name for name, given in shape.items() if given) or "no filter"
        found[f"search scan ({named})"] = _scan(**shape)
        found[f"search candidates ({named})"] = _candidates(**shape)
    return found


async def search(
    reads: TenantReads,
    query: str,
    *,
    offset: int,
    limit: int,
    patient_id: uuid.UUID | None = None,
    channel: Channel | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
) -> tuple[list[tuple[DictRow, float]], int]:
    """One page of (message, rank) matching `query` (web-search syntax) in subject or text, and a total, as
    the module describes."""
    need = max(SEARCH_WINDOW, offset + limit) + 1
    params: dict[str, Any] = {"query": query, "need": need}
    if patient_id is not None:
        params["patient_id"] = patient_id
    if channel is not None:
        params["channel"] = channel.value
    if date_to is not None:
        params["date_to"] = date_to
    shape = {
        "patient": patient_id is not None,
        "channel": channel is not None,
        "date_to": date_to is not None,
    }
    page = {"window": SEARCH_WINDOW, "offset": offset, "limit": limit}
    assert reads.pool is not None, "the message search runs on the read pool"
    share = await expected_share(reads.pool, query)
    if share >= SCAN_SHARE:
        since = {"since": date_from} if date_from is not None else {}
        rows = await reads.all(
            _scan(**shape, since=date_from is not None), **params, **page, **since, scan_limit=SCAN_ROWS + 1
        )
        if rows[0]["found"] >= need or rows[0]["covered"]:
            # Enough, or the scan read every message in the filters (one patient's, a date range).
            return _page_of(rows)
    now = datetime.now(UTC)
    # A word too rare for the statistics' list matches few messages: the GIN index answers at once,
    # where each recent slice would add a read of the slice's range of the created_at index.
    for days in (*(SLICE_DAYS if share else ()), None):
        start = now - timedelta(days=days) if days is not None else None
        if start is not None and (patient_id is not None or (date_from is not None and date_from >= start)):
            continue  # the patient's index, or the caller's own date range, is narrower already
        bound = max(filter(None, (start, date_from)), default=None)
        since = {"since": bound} if bound is not None else {}
        rows = await reads.all(_candidates(**shape, since=bound is not None), **params, **page, **since)
        if rows[0]["found"] >= need:
            break
    return _page_of(rows)


def _page_of(rows: list[DictRow]) -> tuple[list[tuple[DictRow, float]], int]:
    """(message, rank) of each row of a paged search statement, and the matches it found."""
    return [(r, float(r["rank"])) for r in rows if r["id"] is not None], int(rows[0]["found"])
