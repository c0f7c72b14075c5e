"""Sentiment of patients' inbound messages, scored by VADER (vaderSentiment; its lexicon ships in the
wheel, so scoring works offline) and stored once per message in `message_sentiments`.

The inbound-message path calls `record_inbound_sentiment(session, communication)` after it has flushed
the inbound Communication (same transaction); a trigger adds the score to the daily sentiment rollup.
Messages stored without a score (rows older than scoring, or a path that does not call it) count as
`unscored` on the dashboard until `prm analytics backfill-sentiment` scores them, off the request path, in
batches of `score_unscored`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.analytics.models import MessageSentiment
from domain.communications.models import Communication
from domain.enums import Direction

ANALYZER = "vader-3.3.2"
SCORE_CAP = 500
POSITIVE_AT, NEGATIVE_AT = 0.05, -0.05  # VADER's recommended thresholds on the compound score


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def score_text(text: str) -> tuple[float, str]:
    """(compound score in [-1, 1], `positive` | `neutral` | `negative`) of a message text."""
    compound = float(_analyzer().polarity_scores(text or "")["compound"])
    label = "positive" if compound >= POSITIVE_AT else "negative" if compound <= NEGATIVE_AT else "neutral"
    return compound, label


async def _store(session: AsyncSession, tenant_id: uuid.UUID, rows: list[tuple[uuid.UUID, str]]) -> int:
    if not rows:
        return 0
    values = []
    for communication_id, text in rows:
        compound, label = score_text(text)
        values.append(
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "communication_id": communication_id,
                "compound": compound,
                "label": label,
                "analyzer": ANALYZER,
            }
        )
    stmt = (
        insert(MessageSentiment)
        .values(values)
        .on_conflict_do_nothing(index_elements=["communication_id"])
        .returning(MessageSentiment.id)
    )
    return len((await session.execute(stmt)).all())  # rows stored (a multi-row INSERT's rowcount is not)


async def record_inbound_sentiment(session: AsyncSession, communication: Communication) -> bool:
    """Score an inbound message once (flushes only; no-op for outbound or already scored); True if stored."""
    if communication.direction != Direction.INBOUND.value:
        return False
    stored = await _store(session, communication.tenant_id, [(communication.id, communication.message)])
    return stored > 0


@dataclass(frozen=True)
class ScoringBatch:
    """One `score_unscored` call: messages found unscored, messages scored (fewer if another process
    scored some meanwhile), and the creation time of the oldest found (the next batch looks up to it)."""

    found: int
    scored: int
    oldest: datetime | None


async def score_unscored(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    start: datetime | None = None,
    end: datetime | None = None,
    cap: int = SCORE_CAP,
) -> ScoringBatch:
    """Score the newest `cap` inbound messages created in [start, end) that have no score yet (flushes)."""
    scored = select(MessageSentiment.id).where(MessageSentiment.communication_id == Communication.id)
    conditions = [
        Communication.tenant_id == tenant_id,
        Communication.direction == Direction.INBOUND.value,
        ~scored.exists(),
    ]
    if start is not None:
        conditions.append(Communication.created_at >= start)
    if end is not None:
        conditions.append(Communication.created_at < end)
    stmt = (
        select(Communication.id, Communication.message, Communication.created_at)
        .where(*conditions)
        .order_by(Communication.created_at.desc())
        .limit(cap)
    )
    rows = (await session.execute(stmt)).all()
    stored = await _store(session, tenant_id, [(r.id, r.message) for r in rows])
    return ScoringBatch(found=len(rows), scored=stored, oldest=rows[-1].created_at if rows else None)
