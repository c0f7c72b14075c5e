"""The sentiment summary: scores recorded at write time are rolled up per day; unscored messages are
counted, not scored, by requests; `prm analytics backfill-sentiment` scores them off the request path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import delete

from core.database import bind_tenant
from domain.analytics.models import MessageSentiment
from domain.analytics.sentiment import record_inbound_sentiment
from domain.communications.models import Communication
from tests.analytics.conftest import ANALYTICS, Clinic
from tests.stack.cli_support import prm

T = datetime(2025, 5, 20, 15, tzinfo=UTC)
PERIOD = {"time_period": "CUSTOM", "start_date": "2025-05-20", "end_date": "2025-05-20"}
HAPPY, ANGRY, PLAIN = "Thank you so much, that is wonderful!", "This is terrible, I am very angry.", "ok"


async def summary(client: httpx.AsyncClient, auth: dict) -> dict:
    resp = await client.get(f"{ANALYTICS}/communication", params=PERIOD, headers=auth)
    assert resp.status_code == 200, resp.text
    return resp.json()["sentiment"]


async def score(clinic: Clinic, *messages: Communication) -> None:
    """Score messages the way the inbound webhook does, in the transaction that stores them."""
    async with clinic.sessionmaker() as session:
        bind_tenant(session, clinic.tenant_id)
        session.add_all(messages)
        await session.flush()
        for message in messages:
            await record_inbound_sentiment(session, message)
        await session.commit()


async def test_scored_and_unscored_messages_are_summed_per_period(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    await score(clinic, clinic.message("inbound", T, HAPPY), clinic.message("inbound", T, ANGRY))
    await clinic.add(
        clinic.message("inbound", T + timedelta(minutes=1), PLAIN),  # stored without a score
        clinic.message("inbound", T + timedelta(days=1), HAPPY),  # the next day
    )
    body = await summary(client, auth)
    assert (body["scored"], body["unscored"], body["positive"], body["negative"], body["neutral"]) == (
        2,
        1,
        1,
        1,
        0,
    )
    assert body["average_compound"] is not None and -1 < body["average_compound"] < 1
    assert (await summary(client, auth))["unscored"] == 1  # reading the dashboard scores nothing


async def test_a_deleted_message_or_score_leaves_the_summary(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    happy, angry = clinic.message("inbound", T, HAPPY), clinic.message("inbound", T, ANGRY)
    await score(clinic, happy, angry)
    await clinic.execute(delete(Communication).where(Communication.id == happy.id))
    body = await summary(client, auth)
    assert (body["scored"], body["positive"], body["negative"], body["unscored"]) == (1, 0, 1, 0)
    await clinic.execute(delete(MessageSentiment).where(MessageSentiment.communication_id == angry.id))
    body = await summary(client, auth)
    assert (body["scored"], body["negative"], body["unscored"], body["average_compound"]) == (0, 0, 1, None)


async def test_backfill_sentiment_scores_the_unscored_messages_in_batches(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic, database_url: str
) -> None:
    await score(clinic, clinic.message("inbound", T, ANGRY))
    await clinic.add(*(clinic.message("inbound", T + timedelta(seconds=i % 3), HAPPY) for i in range(5)))
    await clinic.add(clinic.message("outbound", T, "Your appointment is confirmed."))
    assert (await summary(client, auth))["unscored"] == 5

    result = prm(
        database_url,
        "analytics",
        "backfill-sentiment",
        "--tenant-id",
        str(clinic.tenant_id),
        "--batch-size",
        "2",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "5\n"
    body = await summary(client, auth)
    assert (body["scored"], body["unscored"], body["positive"], body["negative"]) == (6, 0, 5, 1)
    again = prm(database_url, "analytics", "backfill-sentiment", "--tenant-id", str(clinic.tenant_id))
    assert (again.returncode, again.stdout) == (0, "0\n")


async def test_backfill_sentiment_for_an_unknown_tenant_fails(database_url: str) -> None:
    result = prm(
        database_url, "analytics", "backfill-sentiment", "--tenant-id", "00000000-0000-0000-0000-000000000000"
    )
    assert result.returncode == 1
    assert "no tenant" in result.stderr and "Traceback" not in result.stderr
