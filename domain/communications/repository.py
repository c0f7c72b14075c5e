"""Communication queries (tenant-scoped by the session), and the one rule for moving a delivery status.

Statuses only move forward: queued < sent < delivered < read, and failed is final. Every writer (the API's
PATCH, provider callbacks, the send step) goes through `advance_status`, one conditional UPDATE, so
duplicate and out-of-order callbacks can never move a message backwards, even when they race.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, func, literal, literal_column, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.repository import Repository
from domain.communications.models import Communication
from domain.enums import Channel, CommunicationStatus, Direction

S = CommunicationStatus
# Forward order of delivery states; `failed` may follow any state before `delivered` and nothing follows it.
STATUS_RANK: dict[CommunicationStatus, int] = {
    S.PENDING: 0,
    S.SCHEDULED: 0,
    S.QUEUED: 1,
    S.SENT: 2,
    S.DELIVERED: 3,
    S.READ: 4,
}
FAILABLE = (S.PENDING, S.SCHEDULED, S.QUEUED, S.SENT)
TIMESTAMP_OF = {
    S.SENT: "sent_at",
    S.DELIVERED: "delivered_at",
    S.READ: "read_at",
    S.FAILED: "failed_at",
}
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
# ANALYZE): joining the query's words to pg_stats on every search cost 6 ms of it.
WORD_STATISTICS = text(
    """
    SELECT most_common_elems::text::text[] AS words, most_common_elem_freqs AS shares
    FROM pg_stats
    WHERE schemaname = current_schema() AND tablename = 'communications' AND attname = 'search_vector'
    """
)
WORD_STATISTICS_SECONDS = 300.0
WORD = re.compile(r"[^\W_]+")  # the `simple` configuration's words, near enough to choose a plan by
_word_shares: dict[str, tuple[float, dict[str, float]]] = {}  # database URL -> (read at, lexeme -> share)


async def expected_share(session: AsyncSession, query: str) -> float:
    """The share of all messages that hold the query's least common word, by PostgreSQL's statistics (0 for
    a word rarer than every word they list, or before the first ANALYZE). It only chooses how a search
    looks (`search`): every way finds the same matches."""
    database = str(session.get_bind().engine.url)
    read_at, shares = _word_shares.get(database, (-WORD_STATISTICS_SECONDS, {}))
    if time.monotonic() - read_at >= WORD_STATISTICS_SECONDS:
        row = (await session.execute(WORD_STATISTICS)).first()
        # most_common_elem_freqs ends with three summary figures: zip stops at the last word.
        shares = dict(zip(row.words, row.shares, strict=False)) if row is not None and row.words else {}
        _word_shares[database] = (time.monotonic(), shares)
    return min((shares.get(word, 0.0) for word in WORD.findall(query.lower())), default=0.0)


def forget_word_statistics() -> None:
    """Read the statistics afresh on the next search (after an ANALYZE, in tests)."""
    _word_shares.clear()


def _rank_expression() -> Any:
    return case(
        *((Communication.status == s.value, rank) for s, rank in STATUS_RANK.items()), else_=literal(99)
    )


async def advance_status(
    session: AsyncSession,
    communication_id: uuid.UUID,
    status: CommunicationStatus,
    *,
    at: datetime,
    error_code: str | None = None,
    error_message: str | None = None,
    extra: dict[str, Any] | None = None,
    only_if: Any = None,
) -> bool:
    """Move a message to `status` if that is forward (one conditional UPDATE, narrowed by `only_if` when
    given); False when it was not."""
    values: dict[str, Any] = {"status": status.value, **(extra or {})}
    column = TIMESTAMP_OF.get(status)
    if column is not None:
        values[column] = func.coalesce(getattr(Communication, column), at)
    if status == S.READ:  # a read message was delivered, even if that callback never came
        values["delivered_at"] = func.coalesce(Communication.delivered_at, at)
    if status == S.FAILED:
        values["error_code"], values["error_message"] = error_code, error_message
        allowed = Communication.status.in_([s.value for s in FAILABLE])
    else:
        allowed = _rank_expression() < STATUS_RANK[status]
    stmt = (
        update(Communication)
        .where(Communication.id == communication_id, allowed, *([only_if] if only_if is not None else []))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]


NO_ATTEMPT: dict[str, Any] = {"send_attempt": None, "send_attempt_at": None}


async def record_accepted(
    session: AsyncSession,
    communication_id: uuid.UUID,
    *,
    attempt: str,
    provider: str,
    provider_message_id: str | None,
    at: datetime,
) -> bool:
    """Record that the provider accepted send attempt `attempt` (sent, with its message id), closing the
    attempt; False when that attempt is no longer the one open (already recorded, by the send step or by a
    status callback)."""
    return await advance_status(
        session,
        communication_id,
        S.SENT,
        at=at,
        extra={"provider": provider, "provider_message_id": provider_message_id, **NO_ATTEMPT},
        only_if=Communication.send_attempt == attempt,
    )


class CommunicationRepository(Repository[Communication]):
    """Queries over messages."""

    model = Communication
    label = "Communication"

    def filtered(
        self,
        *,
        patient_id: uuid.UUID | None = None,
        journey_instance_id: uuid.UUID | None = None,
        channel: Channel | None = None,
        status: CommunicationStatus | None = None,
        direction: Direction | None = None,
    ) -> Select[Communication]:
        """Messages matching the filters, newest first."""
        stmt = self.base()
        if patient_id is not None:
            stmt = stmt.where(Communication.patient_id == patient_id)
        if journey_instance_id is not None:
            stmt = stmt.where(Communication.journey_instance_id == journey_instance_id)
        if channel is not None:
            stmt = stmt.where(Communication.channel == channel.value)
        if status is not None:
            stmt = stmt.where(Communication.status == status.value)
        if direction is not None:
            stmt = stmt.where(Communication.direction == direction.value)
        return stmt.order_by(Communication.created_at.desc(), Communication.id.desc())

    async def search(
        self,
        query: str,
        *,
        offset: int,
        limit: int,
        patient_id: uuid.UUID | None = None,
        channel: Channel | None = None,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
    ) -> tuple[list[tuple[Communication, float]], int]:
        """One page of (message, rank) matching `query` (web-search syntax) in subject or text, and a total.

        Order: the newest `SEARCH_WINDOW` matches ranked best first (`ts_rank_cd`), then any older ones
        newest first. `total` is exact up to `SEARCH_WINDOW` matches; above that it is a lower bound (the
        matches up to the end of the requested page, plus one), so `has_next` stays right. Counting and
        ranking every match of a common word is what made a search over a million messages slow; this reads
        only the newest matches. Words common enough (`SCAN_SHARE`) are looked for in the newest messages
        first, newest first (a bounded read of the created_at index); words too rare to be in the statistics
        through the GIN index alone; others, or when the newest messages hold too few, within the last
        `SLICE_DAYS` (GIN index and the tenant's created_at index combined), widening only when that slice
        holds too few."""
        tsquery = func.websearch_to_tsquery(SEARCH_CONFIG, query)
        need = max(SEARCH_WINDOW, offset + limit) + 1
        conditions = []
        if patient_id is not None:
            conditions.append(Communication.patient_id == patient_id)
        if channel is not None:
            conditions.append(Communication.channel == channel.value)
        if date_to is not None:
            conditions.append(Communication.created_at <= date_to)
        newest_first = (Communication.created_at.desc(), Communication.id.desc())
        candidates = (
            select(
                Communication.id,
                Communication.created_at,
                func.ts_rank_cd(Communication.search_vector, tsquery),
            )
            .where(Communication.search_vector.op("@@")(tsquery), *conditions)
            # The same order, as an expression no index provides: a word that reaches this point is rare,
            # and the planner would otherwise walk the tenant's newest-first index (which carries
            # search_vector) through millions of entries, expecting the matches to come early.
            .order_by(
                (Communication.created_at + literal_column("interval '0'")).desc(), Communication.id.desc()
            )
            .limit(need)
        )
        rows: list[Any] = []
        share = await expected_share(self.session, query)
        if share >= SCAN_SHARE:
            in_range = [*conditions, *([Communication.created_at >= date_from] if date_from else [])]
            recent = (
                select(Communication.id, Communication.created_at, Communication.search_vector)
                .where(*in_range)
                .order_by(*newest_first)
                .limit(SCAN_ROWS)
                .subquery()
            )
            scan = (
                select(recent.c.id, recent.c.created_at, func.ts_rank_cd(recent.c.search_vector, tsquery))
                .where(recent.c.search_vector.op("@@")(tsquery))
                .order_by(recent.c.created_at.desc(), recent.c.id.desc())
                .limit(need)
            )
            rows = list((await self.session.execute(scan)).all())
            if len(rows) >= need or await self._at_most(SCAN_ROWS, in_range):
                # Enough, or the scan read every message in the filters (one patient's, a date range).
                return await self._page_of(rows, need, offset, limit)
        # A generic plan cannot know whether the words are rare (GIN index) or common (newest first by the
        # created_at index); psycopg prepares statements after a few runs, so plan each search afresh.
        await self.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        now = datetime.now(UTC)
        # A word too rare for the statistics' list matches few messages: the GIN index answers at once,
        # where each recent slice would add a read of the slice's range of the created_at index.
        for days in (*(SLICE_DAYS if share else ()), None):
            since = now - timedelta(days=days) if days is not None else None
            if since is not None and (
                patient_id is not None or (date_from is not None and date_from >= since)
            ):
                continue  # the patient's index, or the caller's own date range, is narrower already
            bound = max(filter(None, (since, date_from)), default=None)
            stmt = candidates if bound is None else candidates.where(Communication.created_at >= bound)
            rows = list((await self.session.execute(stmt)).all())
            if len(rows) >= need:
                break
        return await self._page_of(rows, need, offset, limit)

    async def _at_most(self, count: int, conditions: list[Any]) -> bool:
        """Whether at most `count` of the tenant's messages meet `conditions` (reads at most count + 1)."""
        some = select(Communication.id).where(*conditions).limit(count + 1).subquery()
        return int(await self.session.scalar(select(func.count()).select_from(some)) or 0) <= count

    async def _page_of(
        self, rows: list[Any], need: int, offset: int, limit: int
    ) -> tuple[list[tuple[Communication, float]], int]:
        """The requested page of (id, created_at, rank) candidates, newest first: the newest SEARCH_WINDOW
        ranked best first, then the rest; with the messages loaded, and the total as `search` defines it."""
        ranked = sorted(rows[:SEARCH_WINDOW], key=lambda r: (-r[2], -r[1].timestamp(), r[0]))
        ordered = ranked + rows[SEARCH_WINDOW : need - 1]
        page = ordered[offset : offset + limit]
        by_id = (
            {
                c.id: c
                for c in (
                    await self.session.scalars(self.base().where(Communication.id.in_([r[0] for r in page])))
                ).all()
            }
            if page
            else {}
        )
        return [(by_id[r[0]], float(r[2])) for r in page if r[0] in by_id], len(rows)

    async def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Message counts by channel and by status."""
        result: list[dict[str, int]] = []
        for column in (Communication.channel, Communication.status):
            rows = (await self.session.execute(select(column, func.count()).group_by(column))).all()
            result.append({str(key): int(n) for key, n in rows})
        return result[0], result[1]

    async def for_update(self, communication_id: uuid.UUID) -> Communication | None:
        """The message, locked until the transaction ends (one sender at a time)."""
        return await self.session.scalar(
            self.base().where(Communication.id == communication_id).with_for_update()
        )
