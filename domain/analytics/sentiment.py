"""Sentiment of patients' inbound messages, scored by VADER (vaderSentiment; its lexicon ships in the
wheel, so scoring works offline) and stored once per message in `message_sentiments`.

The inbound-message path should call `record_inbound_sentiment(session, communication)` after it has
flushed the inbound Communication (same transaction). Messages stored without a score (older rows, or
paths that do not call it) are scored by the analytics query, at most `SCORE_CAP` per request.
"""

from __future__ import annotations

import uuid
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
    stmt = insert(MessageSentiment).values(values).on_conflict_do_nothing(index_elements=["communication_id"])
    result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def record_inbound_sentiment(session: AsyncSession, communication: Communication) -> bool:
    """Score an inbound message once (flushes only; no-op for outbound or already scored); True if stored."""
    if communication.direction != Direction.INBOUND.value:
        return False
    stored = await _store(session, communication.tenant_id, [(communication.id, communication.message)])
    return stored > 0


async def score_unscored(
    session: AsyncSession, tenant_id: uuid.UUID, start: datetime, end: datetime, cap: int = SCORE_CAP
) -> int:
    """Score up to `cap` inbound messages of the period that have no score yet; how many were scored."""
    scored = select(MessageSentiment.id).where(MessageSentiment.communication_id == Communication.id)
    stmt = (
        select(Communication.id, Communication.message)
        .where(
            Communication.tenant_id == tenant_id,
            Communication.direction == Direction.INBOUND.value,
            Communication.created_at >= start,
            Communication.created_at < end,
            ~scored.exists(),
        )
        .order_by(Communication.created_at.desc())
        .limit(cap)
    )
    rows = [(r.id, r.message) for r in (await session.execute(stmt)).all()]
    return await _store(session, tenant_id, rows)
