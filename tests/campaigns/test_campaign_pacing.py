"""A message campaign at its sender's pace, against the real PostgreSQL, Temporal and Twilio SDK (pointed at
the fake server): the campaign takes its sender's turns back to back (exactly its throughput, on the
database's clock) and the provider never sees it faster, a message a coordinator sends meanwhile goes out
at once, and Twilio's 429s are waited out with every member sent the message exactly once."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from datetime import datetime
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import select

from core.database import bind_tenant
from domain.communications import pacing
from domain.communications.models import Communication
from domain.communications.provider_contract import OutgoingMessage
from domain.communications.twilio_provider import TwilioProvider
from domain.enums import Channel
from tests.campaigns.support import API, campaign, cohort_of_everyone, launch, result_of
from tests.communications.provider_support import FakeProviders
from tests.communications.support import set_tenant
from tests.phones import unique_phone
from tests.polling import eventually

TEXT = "Your annual check-up is due: reply BOOK and we will find you a time."
TOO_MANY = (429, {"code": 20429, "message": "Too Many Requests", "status": 429})


def _pace(settings, monkeypatch: pytest.MonkeyPatch, per_second: float) -> None:
    """SMS at `per_second` (and the default burst), from a number of this test's own (no other test's
    turns)."""
    monkeypatch.setattr(settings, "twilio_sms_from", unique_phone())
    monkeypatch.setattr(settings, "sms_messages_per_second", per_second)


def _sends(fake: FakeProviders) -> list[tuple[float, str]]:
    """(when it arrived, to whom) of every message request Twilio received, in order."""
    return [
        (r.at, dict(parse_qsl(r.body.decode()))["To"])
        for r in fake.requests
        if r.path.endswith("/Messages.json")
    ]


async def _warm(settings) -> None:
    """One message through the Twilio SDK first, as a worker that has been running has sent: the SDK loads
    its modules on its first call (tenths of a second), which would otherwise delay the campaign's first
    sends and squeeze the rest into less time than they had."""
    message = OutgoingMessage(Channel.SMS, "+14155559999", "warm-up", None, idempotency_key="warm-up")
    await TwilioProvider(settings).send(message)


async def _patients(clinic, n: int) -> list[str]:
    phones = [f"+1415557{i:04d}" for i in range(n)]
    for i, phone in enumerate(phones):
        await clinic.patient(last_name=f"Paced{i}", phone_primary=phone)
    return phones


async def _launch(client, auth) -> str:
    launched = await launch(
        client,
        auth,
        cohort_id=await cohort_of_everyone(client, auth),
        journey_id=None,
        message={"channel": "sms", "message": TEXT},
    )
    return str(launched["id"])


async def test_the_campaign_takes_its_senders_turns_back_to_back_and_never_outruns_it(
    client, auth, clinic, settings, providers_configured, temporal_env, temporal_worker,
    system_sessionmaker, tenant_id, monkeypatch,
) -> None:  # fmt: skip
    await set_tenant(system_sessionmaker, tenant_id, quiet_hours={"enabled": False})
    _pace(settings, monkeypatch, per_second=5)
    phones = await _patients(clinic, 26)  # five seconds of the sender's time
    await _warm(settings)
    campaign_id = await _launch(client, auth)
    assert await result_of(temporal_env, campaign_id) == "completed"

    sends = [(at, to) for at, to in _sends(providers_configured) if to in phones]
    assert sorted(to for _, to in sends) == phones  # each member once
    # The pace on the sender's own clock (the database's): one turn each, one interval apart, none skipped.
    # A turn skipped would be the campaign falling behind its sender; one closer, outrunning it.
    turns = sorted(await _turns(system_sessionmaker, tenant_id, phones))
    assert len(turns) == len(phones)
    assert {round((b - a).total_seconds(), 6) for a, b in itertools.pairwise(turns)} == {0.2}
    # What the provider saw is never faster than the pace (a machine slower than this one's load may make
    # it slower: the sends' arrival times are wall-clock).
    assert (len(sends) - 1) / (sends[-1][0] - sends[0][0]) <= 5.25


async def _turns(sessionmaker, tenant_id, phones: list[str]) -> list[datetime]:
    """The turn each campaign message to `phones` took (kept on the message)."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        kept = await session.scalars(
            select(Communication.meta_data[pacing.TURN_AT].astext).where(
                Communication.recipient.in_(phones), Communication.direction == "outbound"
            )
        )
        return [datetime.fromisoformat(turn) for turn in kept]


async def test_a_message_sent_during_a_campaign_goes_out_within_two_seconds(
    client, auth, clinic, settings, providers_configured, temporal_env, temporal_worker,
    system_sessionmaker, tenant_id, monkeypatch,
) -> None:  # fmt: skip
    await set_tenant(system_sessionmaker, tenant_id, quiet_hours={"enabled": False})
    _pace(settings, monkeypatch, per_second=2)
    phones = await _patients(clinic, 12)  # six seconds of the sender's time
    campaign_id = await _launch(client, auth)

    async def sending() -> bool:
        return len(_sends(providers_configured)) >= 3

    await eventually(sending, "the campaign sending")
    reminder_to = "+14155558888"
    patient = await clinic.patient(last_name="Reminded", phone_primary=reminder_to)
    asked = time.monotonic()
    answer = await client.post(
        f"{API}/communications",
        json={"patient_id": str(patient), "channel": "sms", "message": "Your appointment is tomorrow at 9."},
        headers=auth,
    )
    assert answer.status_code == 201, answer.text

    async def reminded() -> bool:
        return any(to == reminder_to for _, to in _sends(providers_configured))

    await eventually(reminded, "the reminder sent")
    (sent_at,) = [at for at, to in _sends(providers_configured) if to == reminder_to]
    assert sent_at - asked < 2.0
    campaign_sends = [at for at, to in _sends(providers_configured) if to != reminder_to]
    assert len(campaign_sends) < len(phones)  # the campaign was still under way: it did not go first
    assert await result_of(temporal_env, campaign_id) == "completed"
    assert sorted(to for _, to in _sends(providers_configured) if to != reminder_to) == phones


async def test_twilio_429s_are_waited_out_and_every_member_gets_the_message_once(
    client, auth, clinic, settings, providers_configured, temporal_env, temporal_worker,
    system_sessionmaker, tenant_id, monkeypatch,
) -> None:  # fmt: skip
    await set_tenant(system_sessionmaker, tenant_id, quiet_hours={"enabled": False})
    _pace(settings, monkeypatch, per_second=50)
    phones = await _patients(clinic, 6)
    providers_configured.twilio_answers.extend([TOO_MANY, TOO_MANY])  # the first two requests
    campaign_id = await _launch(client, auth)
    assert await result_of(temporal_env, campaign_id) == "completed"

    accepted = Counter(form["To"] for form in providers_configured.twilio_created.values())
    assert accepted == Counter(phones)  # each member exactly once, none lost
    assert len(_sends(providers_configured)) == len(phones) + 2  # the two refused, then one each
    counts = (await campaign(client, auth, campaign_id))["counts"]
    assert (counts["sent"], counts["pending"]) == (len(phones), 0)
