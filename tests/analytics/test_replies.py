"""Reply times: which inbound messages count as replies, kept right by the database on every change, and
the exact median of their response times."""

from __future__ import annotations

import asyncio
import random
import statistics
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant
from domain.communications.models import Communication
from tests.analytics.conftest import ANALYTICS, Clinic

DAY = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)
ON_THE_DAY = {"time_period": "CUSTOM", "start_date": "2025-03-10", "end_date": "2025-03-10"}


async def replies(client: httpx.AsyncClient, auth: dict, **period: str) -> tuple[int, float | None]:
    resp = await client.get(f"{ANALYTICS}/communication", params=period or ON_THE_DAY, headers=auth)
    assert resp.status_code == 200, resp.text
    return resp.json()["replies"], resp.json()["median_response_seconds"]


def at(seconds: float) -> datetime:
    return DAY + timedelta(seconds=seconds)


async def test_the_first_inbound_after_an_outbound_is_its_only_reply(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    await clinic.add(
        clinic.message("outbound", at(0), sent_at=at(5)),
        clinic.message("inbound", at(65)),
        clinic.message("inbound", at(600)),
    )
    assert await replies(client, auth) == (1, 60.0)


async def test_an_inbound_message_with_no_earlier_outbound_is_not_a_reply(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    other = await clinic.new_patient()
    await clinic.add(
        clinic.message("inbound", at(0)),
        clinic.message("outbound", at(10), patient_id=other),  # another patient's conversation
        clinic.message("inbound", at(20)),
        clinic.message("outbound", at(30), patient_id=None),
        clinic.message("inbound", at(40), patient_id=None),
    )
    assert await replies(client, auth) == (0, None)


async def test_an_inbound_message_at_the_same_instant_answers_the_earlier_outbound(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    await clinic.add(
        clinic.message("outbound", at(0)),
        clinic.message("outbound", at(100)),
        clinic.message("inbound", at(100)),
    )
    assert await replies(client, auth) == (1, 100.0)


async def test_an_outbound_message_stored_late_between_takes_the_reply(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    await clinic.add(clinic.message("outbound", at(0)), clinic.message("inbound", at(300)))
    assert await replies(client, auth) == (1, 300.0)
    await clinic.add(clinic.message("outbound", at(200)))
    assert await replies(client, auth) == (1, 100.0)


async def test_an_earlier_inbound_stored_late_becomes_the_reply(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    await clinic.add(clinic.message("outbound", at(0)), clinic.message("inbound", at(300)))
    await clinic.add(clinic.message("inbound", at(30)))
    assert await replies(client, auth) == (1, 30.0)


async def test_deleting_a_reply_makes_the_next_inbound_the_reply(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    first = clinic.message("inbound", at(40))
    await clinic.add(clinic.message("outbound", at(0)), first, clinic.message("inbound", at(90)))
    await clinic.execute(delete(Communication).where(Communication.id == first.id))
    assert await replies(client, auth) == (1, 90.0)


async def test_deleting_the_outbound_message_hands_its_reply_to_the_one_before(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    later = clinic.message("outbound", at(100))
    await clinic.add(clinic.message("outbound", at(0)), later, clinic.message("inbound", at(130)))
    await clinic.execute(delete(Communication).where(Communication.id == later.id))
    assert await replies(client, auth) == (1, 130.0)


async def test_the_response_time_counts_from_when_the_message_was_sent(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    outbound = clinic.message("outbound", at(0), status="queued")
    await clinic.add(outbound, clinic.message("inbound", at(500)))
    assert await replies(client, auth) == (1, 500.0)
    sent = update(Communication).where(Communication.id == outbound.id)
    await clinic.execute(sent.values(status="sent", sent_at=at(80)))
    assert await replies(client, auth) == (1, 420.0)


async def test_messages_moved_to_another_patient_pair_in_their_new_conversation(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    other = await clinic.new_patient()
    answer = clinic.message("inbound", at(50), patient_id=other)
    await clinic.add(clinic.message("outbound", at(0)), answer)
    assert await replies(client, auth) == (0, None)
    await clinic.execute(
        update(Communication).where(Communication.id == answer.id).values(patient_id=clinic.patient_id)
    )  # the merge of two patient records relinks messages like this
    assert await replies(client, auth) == (1, 50.0)


async def test_a_reply_counts_on_the_local_day_it_arrived(
    client: httpx.AsyncClient, make_tenant, headers_for, system_sessionmaker
) -> None:
    from tests.analytics.conftest import make_clinic

    clinic = await make_clinic(await make_tenant(timezone="America/New_York"), system_sessionmaker)
    evening = datetime(2025, 3, 11, 3, 0, tzinfo=UTC)  # 23:00 on March 10 in New York
    await clinic.add(
        clinic.message("outbound", evening), clinic.message("inbound", evening + timedelta(hours=2))
    )
    auth = headers_for(clinic.tenant_id)
    assert await replies(client, auth, **ON_THE_DAY) == (0, None)
    march_11 = {"time_period": "CUSTOM", "start_date": "2025-03-11", "end_date": "2025-03-11"}
    assert await replies(client, auth, **march_11) == (1, 7200.0)


async def test_the_median_is_exact_over_many_replies(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    rng = random.Random(11)
    patients = [clinic.patient_id] + [await clinic.new_patient() for _ in range(5)]
    rows, seconds = [], []
    for patient in patients:
        t = DAY
        for _ in range(40):
            wait = timedelta(
                seconds=rng.choice([rng.uniform(0.2, 5), rng.uniform(5, 600), rng.uniform(600, 40_000)])
            )
            rows.append(clinic.message("outbound", t, patient_id=patient))
            rows.append(clinic.message("inbound", t + wait, patient_id=patient))
            seconds.append(wait.total_seconds())
            t += wait + timedelta(seconds=1)
    rng.shuffle(rows)  # stored in any order
    await clinic.add(*rows)
    window = {"time_period": "CUSTOM", "start_date": "2025-03-10", "end_date": "2025-05-10"}
    count, median = await replies(client, auth, **window)
    assert count == len(seconds) == 240
    assert median == round(statistics.median(seconds), 1)
    seconds.sort()
    assert seconds[119] != seconds[120]  # an even count: the median lies between two replies


async def test_concurrent_messages_of_one_patient_pair_as_if_one_came_after_the_other(
    client: httpx.AsyncClient,
    auth: dict,
    clinic: Clinic,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async def store(row: Communication, hold: asyncio.Event | None = None) -> None:
        async with system_sessionmaker() as session:
            bind_tenant(session, clinic.tenant_id)
            session.add(row)
            await session.flush()
            if hold is not None:
                await hold.wait()
            await session.commit()

    release = asyncio.Event()
    reminder = asyncio.create_task(store(clinic.message("outbound", at(100)), hold=release))
    await asyncio.sleep(0.2)  # the outbound message is flushed (and holds the patient's lock)
    answer = asyncio.create_task(store(clinic.message("inbound", at(160))))
    await asyncio.sleep(0.2)
    assert not answer.done()  # waits for the reminder's transaction
    release.set()
    await asyncio.gather(reminder, answer)
    assert await replies(client, auth) == (1, 60.0)
