"""At most once to the provider: a send step stopped after the provider took the message but before its
answer was recorded (a worker killed at that moment) is not sent again by its retry; the provider's status
callback settles it, and only a provider silent for the whole resolution window gets the message again.

The crash is the send step's task cancelled the moment the fake provider receives the request: nothing
after the provider call runs, as in a process that died there. The real SDKs talk to the fake server.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import update

from core.database import bind_tenant
from domain.communications import delivery, service
from domain.communications.models import Communication
from domain.enums import Channel
from tests.communications.conftest import tenant_sessions
from tests.communications.provider_support import PUBLIC_BASE, FakeProviders
from tests.communications.webhook_support import HOOKS, reload, sendgrid_post, twilio_post


async def _record(system_sessionmaker, tenant_id, patient, channel: Channel = Channel.SMS) -> uuid.UUID:
    """A message recorded and committed, as every caller records one before its send step."""
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        result = await service.send_message(
            session,
            patient_id=patient.id,
            channel=channel,
            message="Your results are ready.",
            idempotency_key=f"test:{uuid.uuid4()}",
        )
        await session.commit()
        return result.communication.id


async def _send(settings, system_sessionmaker, tenant_id, communication_id) -> delivery.DeliveryOutcome:
    """The send step, as the delivery workflow's send activity runs it."""
    sessions = tenant_sessions(system_sessionmaker, tenant_id)
    return await delivery.deliver(sessions, communication_id, at=datetime.now(UTC), settings=settings)


async def _send_and_die(
    fake: FakeProviders, settings, system_sessionmaker, tenant_id, communication_id
) -> None:
    """Run the send step and stop it once the provider has decided what to do with the request (taken the
    message, or begun to hang): what the step would do after the provider's answer (record it) never runs,
    and what the provider holds is already in `fake` when this returns."""
    loop = asyncio.get_running_loop()
    step = asyncio.ensure_future(_send(settings, system_sessionmaker, tenant_id, communication_id))
    # Twilio (the fake) takes the message but holds its answer until the step is gone, so the step can never
    # record the answer first, however busy the machine.
    hold = threading.Event()
    fake.twilio_hold = hold
    fake.on_decided = lambda _path: loop.call_soon_threadsafe(step.cancel)
    try:
        with pytest.raises(asyncio.CancelledError):
            await step
    finally:
        fake.on_decided = None
        fake.twilio_hold = None
        hold.set()


def _status_callback_path(fake: FakeProviders) -> str:
    """The path and query of the StatusCallback the last Twilio request gave, under the webhooks prefix."""
    callback = fake.twilio_forms()[-1]["StatusCallback"]
    return callback.removeprefix(f"{PUBLIC_BASE}{HOOKS}")


async def test_a_send_stopped_after_twilio_took_it_is_not_sent_again_and_the_callback_settles_it(
    settings, providers_configured, client, system_sessionmaker, tenant_id, make_patient
) -> None:
    fake = providers_configured
    communication_id = await _record(system_sessionmaker, tenant_id, await make_patient())
    await _send_and_die(fake, settings, system_sessionmaker, tenant_id, communication_id)
    left = await reload(system_sessionmaker, tenant_id, communication_id)
    assert (left.status, left.provider_message_id, bool(left.send_attempt)) == ("queued", None, True)

    with pytest.raises(delivery.AttemptInDoubt):  # the retry: Twilio may have it, so it waits
        await _send(settings, system_sessionmaker, tenant_id, communication_id)
    assert len(fake.twilio_forms()) == 1

    (sid,) = fake.twilio_accepted
    callback = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": "AC", "To": "+1", "From": "+1"}
    answer = await twilio_post(client, _status_callback_path(fake), callback)
    assert answer.status_code == 204  # signed over the URL with its query, as Twilio signs it
    settled = await reload(system_sessionmaker, tenant_id, communication_id)
    assert (settled.status, settled.provider, settled.provider_message_id) == ("delivered", "twilio", sid)
    assert settled.send_attempt is None and settled.sent_at is not None

    outcome = await _send(settings, system_sessionmaker, tenant_id, communication_id)  # a later retry
    assert (outcome.status, outcome.sent_now) == ("delivered", False)
    assert len(fake.twilio_forms()) == 1


async def test_an_attempt_twilio_never_took_is_sent_again_once_the_resolution_window_passes(
    settings, providers_configured, system_sessionmaker, tenant_id, make_patient, monkeypatch
) -> None:
    """Stopped while Twilio hangs, and Twilio then drops the request: no callback ever comes."""
    fake = providers_configured
    monkeypatch.setattr(settings, "send_resolve_seconds", 1.0)
    fake.twilio_hangs.append(0.2)  # then the connection closes unanswered: nothing was accepted
    communication_id = await _record(system_sessionmaker, tenant_id, await make_patient())
    await _send_and_die(fake, settings, system_sessionmaker, tenant_id, communication_id)
    with pytest.raises(delivery.AttemptInDoubt):
        await _send(settings, system_sessionmaker, tenant_id, communication_id)
    await asyncio.sleep(1.0)
    outcome = await _send(settings, system_sessionmaker, tenant_id, communication_id)
    assert (outcome.status, outcome.sent_now) == ("sent", True)
    message = await reload(system_sessionmaker, tenant_id, communication_id)
    assert fake.twilio_accepted == [message.provider_message_id]
    assert message.send_attempt is None


async def test_a_sendgrid_event_settles_an_email_attempt_left_open(
    settings, providers_configured, client, system_sessionmaker, tenant_id, make_patient, sendgrid_keys
) -> None:
    fake = providers_configured
    patient = await make_patient()
    communication_id = await _record(system_sessionmaker, tenant_id, patient, Channel.EMAIL)
    await _send_and_die(fake, settings, system_sessionmaker, tenant_id, communication_id)
    with pytest.raises(delivery.AttemptInDoubt):
        await _send(settings, system_sessionmaker, tenant_id, communication_id)

    (mail,) = fake.sendgrid_mails()
    (message_id,) = fake.sendgrid_accepted
    processed = {
        "event": "processed",
        "sg_event_id": f"ev-{uuid.uuid4()}",
        "sg_message_id": f"{message_id}.filterdrecv-1-2",
        "email": patient.email_primary,
        "timestamp": int(time.time()),
        **mail["custom_args"],  # communication_id and send_attempt, as SendGrid returns them
    }
    assert (await sendgrid_post(client, sendgrid_keys, [processed])).status_code == 204
    settled = await reload(system_sessionmaker, tenant_id, communication_id)
    assert (settled.status, settled.provider, settled.provider_message_id) == ("sent", "sendgrid", message_id)
    outcome = await _send(settings, system_sessionmaker, tenant_id, communication_id)
    assert (outcome.status, outcome.sent_now) == ("sent", False)
    assert len(fake.sendgrid_mails()) == 1


async def test_a_callback_naming_another_attempt_settles_nothing(
    settings, providers_configured, client, system_sessionmaker, tenant_id, make_patient
) -> None:
    fake = providers_configured
    communication_id = await _record(system_sessionmaker, tenant_id, await make_patient())
    await _send_and_die(fake, settings, system_sessionmaker, tenant_id, communication_id)
    path = _status_callback_path(fake)
    query = dict(parse_qsl(path.split("?", 1)[1]))
    other = f"/twilio/status?communication_id={query['communication_id']}&attempt={uuid.uuid4().hex}"
    callback = {"MessageSid": fake.twilio_accepted[0], "MessageStatus": "sent"}
    assert (await twilio_post(client, other, callback)).status_code == 204
    left = await reload(system_sessionmaker, tenant_id, communication_id)
    assert (left.status, left.provider_message_id, left.send_attempt) == ("queued", None, query["attempt"])


async def test_a_journey_send_after_a_crash_leaves_the_open_attempt_to_its_delivery_workflow(
    settings, providers_configured, system_sessionmaker, tenant_id, make_patient
) -> None:
    """`send_at_once` (a journey's send activity) meets the same rule: AttemptInDoubt, nothing sent; its
    caller then starts the message's delivery workflow, whose send step waits for the provider's word."""
    fake = providers_configured
    communication_id = await _record(system_sessionmaker, tenant_id, await make_patient())
    await _send_and_die(fake, settings, system_sessionmaker, tenant_id, communication_id)
    with pytest.raises(delivery.AttemptInDoubt):
        await delivery.send_at_once(
            tenant_sessions(system_sessionmaker, tenant_id),
            communication_id,
            now=datetime.now(UTC),
            settings=settings,
        )
    assert len(fake.twilio_forms()) == 1


async def test_an_outbox_attempt_left_open_is_sent_again_at_once(
    settings, system_sessionmaker, tenant_id, make_patient
) -> None:
    """The outbox (no credentials) receives nothing, so there is nothing to wait for."""
    communication_id = await _record(system_sessionmaker, tenant_id, await make_patient())
    async with tenant_sessions(system_sessionmaker, tenant_id)() as session:  # as a crash leaves it
        await session.execute(
            update(Communication)
            .where(Communication.id == communication_id)
            .values(send_attempt=uuid.uuid4().hex, send_attempt_at=datetime.now(UTC))
        )
        await session.commit()
    outcome = await _send(settings, system_sessionmaker, tenant_id, communication_id)
    assert (outcome.status, outcome.sent_now, outcome.provider) == ("sent", True, "outbox")


def test_the_status_callback_url_carries_the_message_and_the_attempt() -> None:
    from domain.communications.provider_contract import OutgoingMessage
    from domain.communications.twilio_provider import status_callback_url

    message = OutgoingMessage(Channel.SMS, "+1", "x", None, "k", communication_id="c-1", send_attempt="a1")
    assert status_callback_url(PUBLIC_BASE + "/", message) == (
        f"{PUBLIC_BASE}/api/v1/prm/webhooks/twilio/status?communication_id=c-1&attempt=a1"
    )
    bare = OutgoingMessage(Channel.SMS, "+1", "x", None, "k")
    assert status_callback_url(PUBLIC_BASE, bare) == f"{PUBLIC_BASE}/api/v1/prm/webhooks/twilio/status"
