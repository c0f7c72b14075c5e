"""Sender pacing against the real PostgreSQL and the real Twilio SDK (pointed at the fake server): turns are
one interval apart whoever takes them, an idle sender catches up for at most its burst, an interactive
message goes at once while campaign messages wait for their kept turns, and a 429 holds the sender back
without a message sent twice. Each kind of sending address gets its provider's default throughput."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from core.database import bind_tenant
from core.settings import Settings
from domain.communications import delivery, pacing, service
from domain.communications.models import Communication, SenderPacing
from domain.communications.providers import OutboxProvider, provider_for
from domain.enums import Channel
from tests.communications.conftest import tenant_sessions
from tests.communications.provider_support import FakeProviders
from tests.phones import unique_phone

TOO_MANY = (429, {"code": 20429, "message": "Too Many Requests", "status": 429})


@pytest.mark.parametrize(
    ("address", "kind", "per_second"),
    [
        ("+14155550000", "long_code", 1.0),
        ("+18005550199", "toll_free", 3.0),
        ("+18885550123", "toll_free", 3.0),
        ("72345", "short_code", 100.0),
        ("+447700900123", "other", 10.0),
        ("MyClinic", "other", 10.0),
    ],
)
def test_each_kind_of_sms_sender_gets_its_default_throughput(
    address: str, kind: str, per_second: float
) -> None:
    settings = Settings(
        env="test", twilio_account_sid="AC" + "0" * 32, twilio_auth_token="t", twilio_sms_from=address
    )
    assert pacing.number_kind(address) == kind
    sender = pacing.sender_for(Channel.SMS, provider_for(Channel.SMS, settings), settings)
    assert (sender.key, sender.per_second) == (f"sms:{address}", per_second)


def test_settings_override_the_default_and_the_outbox_is_unpaced_unless_asked() -> None:
    outbox = OutboxProvider()
    assert pacing.sender_for(Channel.SMS, outbox, Settings(env="test")).per_second is None
    paced = Settings(env="test", sms_messages_per_second=7)
    assert pacing.sender_for(Channel.SMS, outbox, paced) == pacing.Sender("sms:outbox", 7.0, 1.0)
    twilio = Settings(
        env="test", twilio_account_sid="AC1", twilio_auth_token="t", twilio_whatsapp_from="+14155550001"
    )
    whatsapp = pacing.sender_for(Channel.WHATSAPP, provider_for(Channel.WHATSAPP, twilio), twilio)
    assert whatsapp.per_second == 80.0
    unpaced = twilio.model_copy(update={"whatsapp_messages_per_second": 0})
    assert (
        pacing.sender_for(Channel.WHATSAPP, provider_for(Channel.WHATSAPP, unpaced), unpaced).per_second
        is None
    )


def _sender(per_second: float, burst_seconds: float = 0.0) -> pacing.Sender:
    return pacing.Sender(f"sms:test-{uuid.uuid4().hex}", per_second, burst_seconds)


async def test_concurrent_turns_are_one_interval_apart(system_sessionmaker) -> None:
    # Half a second apart: every caller reaches the database before the turn ahead of it is due, even on
    # a loaded machine (a caller arriving after that would rightly be given a turn from its own arrival).
    sender = _sender(per_second=2)

    async def take() -> datetime:
        async with system_sessionmaker() as session:
            at, _wait = await pacing.take_turn(session, sender)
            await session.commit()
            return at

    turns = sorted(await asyncio.gather(*(take() for _ in range(20))))
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(turns)]
    assert len(set(turns)) == 20
    assert all(abs(gap - 0.5) < 0.001 for gap in gaps), gaps


async def test_an_idle_sender_catches_up_for_its_burst_and_no_more(system_sessionmaker) -> None:
    sender = _sender(per_second=10, burst_seconds=1.0)
    async with system_sessionmaker() as session:
        await pacing.take_turn(session, sender)  # the sender's row, then idle for an hour
        await session.execute(
            update(SenderPacing)
            .where(SenderPacing.sender == sender.key)
            .values(next_free=func.now() - timedelta(hours=1))
        )
        await session.commit()
        started = await session.scalar(select(func.clock_timestamp()))
        turns = []
        for _ in range(15):
            turns.append((await pacing.take_turn(session, sender))[0])
            await session.commit()
    assert started is not None
    # The first turn is a second back (ten turns of catching up), not an hour: then one every 0.1 s.
    assert timedelta(seconds=0.9) < started - turns[0] <= timedelta(seconds=1)
    assert all(abs((b - a).total_seconds() - 0.1) < 0.001 for a, b in itertools.pairwise(turns))


async def _record(system_sessionmaker, tenant_id, patient, *, bulk: bool) -> uuid.UUID:
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        result = await service.send_message(
            session,
            patient_id=patient.id,
            channel=Channel.SMS,
            message="The flu clinic is open on Saturday.",
            idempotency_key=f"test:{uuid.uuid4()}",
        )
        if bulk:
            pacing.mark_bulk(result.communication)
        await session.commit()
        return result.communication.id


async def _stored(system_sessionmaker, tenant_id, communication_id) -> Communication:
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        record = await session.get(Communication, communication_id)
        assert record is not None
        return record


def _own_sender(settings, monkeypatch: pytest.MonkeyPatch, per_second: float) -> pacing.Sender:
    """Pace the SMS sender at `per_second`, from a number of this test's own (so no other test's turns)."""
    number = unique_phone()
    monkeypatch.setattr(settings, "twilio_sms_from", number)
    monkeypatch.setattr(settings, "sms_messages_per_second", per_second)
    monkeypatch.setattr(settings, "sender_burst_seconds", 0.0)
    return pacing.sender_for(Channel.SMS, provider_for(Channel.SMS, settings), settings)


async def test_an_interactive_message_goes_at_once_while_campaign_messages_wait_for_their_kept_turns(
    settings, providers_configured: FakeProviders, system_sessionmaker, tenant_id, make_patient, monkeypatch
) -> None:
    sender = _own_sender(settings, monkeypatch, per_second=1)
    patient = await make_patient(phone_primary="+14155550123")
    async with system_sessionmaker() as session:  # a long campaign already queued: 30 s of turns taken
        for _ in range(30):
            await pacing.take_turn(session, sender)
        await session.commit()
    bulk = await _record(system_sessionmaker, tenant_id, patient, bulk=True)
    interactive = await _record(system_sessionmaker, tenant_id, patient, bulk=False)
    sessions = tenant_sessions(system_sessionmaker, tenant_id)
    now = datetime.now(UTC)

    outcome = await delivery.deliver(sessions, interactive, at=now, settings=settings)
    assert (outcome.status, outcome.sent_now) == ("sent", True)

    with pytest.raises(pacing.SenderBusy) as first:
        await delivery.deliver(sessions, bulk, at=now, settings=settings)
    assert 29 < first.value.wait_seconds <= 32  # behind the campaign's 30 turns and the reminder's
    turn = (await _stored(system_sessionmaker, tenant_id, bulk)).meta_data[pacing.TURN_AT]
    with pytest.raises(pacing.SenderBusy) as again:  # a retry keeps its place: no second turn taken
        await delivery.deliver(sessions, bulk, at=now, settings=settings)
    assert again.value.wait_seconds <= first.value.wait_seconds
    stored = await _stored(system_sessionmaker, tenant_id, bulk)
    assert (stored.meta_data[pacing.TURN_AT], stored.status, stored.send_attempt) == (turn, "queued", None)
    assert len(providers_configured.twilio_forms()) == 1  # only the interactive message went


async def test_a_429_holds_the_sender_back_and_the_message_goes_once_on_a_new_turn(
    settings, providers_configured: FakeProviders, system_sessionmaker, tenant_id, make_patient, monkeypatch
) -> None:
    sender = _own_sender(settings, monkeypatch, per_second=20)
    patient = await make_patient(phone_primary="+14155550124")
    bulk = await _record(system_sessionmaker, tenant_id, patient, bulk=True)
    sessions = tenant_sessions(system_sessionmaker, tenant_id)
    providers_configured.twilio_answers.append(TOO_MANY)

    with pytest.raises(delivery.ProviderError) as refused:
        await delivery.deliver(sessions, bulk, at=datetime.now(UTC), settings=settings)
    assert pacing.throttled(refused.value)
    stored = await _stored(system_sessionmaker, tenant_id, bulk)
    assert (stored.status, stored.send_attempt, pacing.TURN_AT in stored.meta_data) == ("queued", None, False)
    async with system_sessionmaker() as session:
        held = await session.scalar(
            select(func.extract("epoch", SenderPacing.next_free - func.clock_timestamp())).where(
                SenderPacing.sender == sender.key
            )
        )
    assert held is not None and 0.8 < float(held) <= 1.05  # the sender waits out the pause
    resumes = time.monotonic() + float(held)

    while True:  # the retry, as the delivery workflow's retry policy makes it (its turn is after the pause)
        try:
            outcome = await delivery.deliver(sessions, bulk, at=datetime.now(UTC), settings=settings)
            break
        except pacing.SenderBusy as busy:
            await asyncio.sleep(busy.wait_seconds)
    assert (outcome.status, outcome.sent_now) == ("sent", True)
    _refused, accepted_request = [
        r for r in providers_configured.requests if r.path.endswith("/Messages.json")
    ]
    assert accepted_request.at >= resumes - 0.05  # not before the pause was over (give or take a query)
    assert len(providers_configured.twilio_accepted) == 1


async def test_a_campaign_message_held_long_past_its_turn_queues_again_instead_of_going_at_once(
    system_sessionmaker, tenant_id, make_patient
) -> None:
    sender = _sender(per_second=1)
    patient = await make_patient(phone_primary="+14155550125")
    held = [await _record(system_sessionmaker, tenant_id, patient, bulk=True) for _ in range(3)]
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        records = [await session.get(Communication, i) for i in held]
        for record in records:  # each took its turn, then was held (quiet hours) for an hour
            assert record is not None
            await pacing.turn_of(session, record, sender)
            record.meta_data = {
                **record.meta_data,
                pacing.TURN_AT: (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            }
        await session.commit()
        waits = [await pacing.turn_of(session, record, sender) for record in records if record is not None]
        await session.commit()
    # Released together, they queue again one interval apart rather than all going now on their old turns.
    gaps = [b - a for a, b in itertools.pairwise(sorted(waits))]
    assert min(waits) > 1.5 and all(abs(gap - 1) < 0.1 for gap in gaps), waits  # behind the 3 stale turns


async def test_a_campaign_message_keeps_a_turn_that_has_just_come(
    system_sessionmaker, tenant_id, make_patient
) -> None:
    sender = _sender(per_second=1)
    patient = await make_patient(phone_primary="+14155550126")
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        record = await session.get(
            Communication, await _record(system_sessionmaker, tenant_id, patient, bulk=True)
        )
        assert record is not None
        just_past = (datetime.now(UTC) - timedelta(seconds=0.5)).isoformat()
        record.meta_data = {**record.meta_data, pacing.TURN_AT: just_past}
        wait = await pacing.turn_of(session, record, sender)
    assert -1.0 < wait < 0 and record.meta_data[pacing.TURN_AT] == just_past
