"""Provider webhooks: signatures refused when forged, statuses that never move backwards, inbound replies,
STOP / START consent, and SendGrid's signed events deduplicated."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from core.database import bind_tenant
from core.events import DomainEvent
from domain.communications import delivery, service
from domain.communications.models import Communication
from domain.enums import Channel
from domain.patients.models import ChannelConsent
from tests.communications.conftest import API, tenant_sessions
from tests.communications.provider_support import PUBLIC_BASE, TWILIO_TOKEN
from tests.communications.webhook_support import HOOKS, reload, sendgrid_post, twilio_post
from tests.polling import eventually


async def _sent_message(
    settings, system_sessionmaker, tenant_id, patient, channel=Channel.SMS
) -> Communication:
    """A message recorded by send_message, then handed to its provider by the send step (as the delivery
    workflow's send activity does; the workflow is tested in test_dispatch and test_delivery_workflow)."""
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        result = await service.send_message(
            session,
            patient_id=patient.id,
            channel=channel,
            message="Hello",
            idempotency_key=str(uuid.uuid4()),
        )
        await session.commit()
    await delivery.deliver(
        tenant_sessions(system_sessionmaker, tenant_id),
        result.communication.id,
        at=datetime.now(UTC),
        settings=settings,
    )
    return await reload(system_sessionmaker, tenant_id, result.communication.id)


async def test_the_send_step_hands_a_recorded_message_to_twilio_once(
    settings, providers_configured, system_sessionmaker, tenant_id, make_patient
) -> None:
    patient = await make_patient()
    message = await _sent_message(settings, system_sessionmaker, tenant_id, patient)
    outcome = await delivery.deliver(
        tenant_sessions(system_sessionmaker, tenant_id), message.id, at=datetime.now(UTC), settings=settings
    )  # a retried send activity finds it sent
    assert (outcome.status, outcome.sent_now) == ("sent", False)
    (form,) = providers_configured.twilio_forms()
    assert form["To"] == patient.phone_primary
    assert (message.status, message.provider, message.provider_message_id.startswith("SM")) == (
        "sent",
        "twilio",
        True,
    )


async def test_status_callbacks_out_of_order_never_move_backwards(
    settings, providers_configured, client, system_sessionmaker, tenant_id, make_patient
) -> None:
    patient = await make_patient()
    message = await _sent_message(settings, system_sessionmaker, tenant_id, patient)
    sid = message.provider_message_id
    for status in ("read", "delivered", "sent", "delivered", "failed"):
        resp = await twilio_post(client, "/twilio/status", {"MessageSid": sid, "MessageStatus": status})
        assert resp.status_code == 204
    final = await reload(system_sessionmaker, tenant_id, message.id)
    assert (final.status, final.read_at is not None, final.delivered_at is not None) == ("read", True, True)


async def test_failed_status_is_final_and_readable(
    settings, providers_configured, client, system_sessionmaker, tenant_id, make_patient
) -> None:
    patient = await make_patient()
    message = await _sent_message(settings, system_sessionmaker, tenant_id, patient)
    params = {"MessageSid": message.provider_message_id, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    await twilio_post(client, "/twilio/status", params)
    await twilio_post(
        client, "/twilio/status", {"MessageSid": message.provider_message_id, "MessageStatus": "delivered"}
    )
    final = await reload(system_sessionmaker, tenant_id, message.id)
    assert (final.status, final.error_code) == ("failed", "30003")
    assert "undelivered" in final.error_message


async def test_forged_unsigned_or_altered_twilio_requests_are_403_and_change_nothing(
    settings, providers_configured, client, system_sessionmaker, tenant_id, make_patient
) -> None:
    patient = await make_patient()
    message = await _sent_message(settings, system_sessionmaker, tenant_id, patient)
    params = {"MessageSid": message.provider_message_id, "MessageStatus": "delivered"}
    forged = await twilio_post(client, "/twilio/status", params, signature="bm90LWEtc2lnbmF0dXJl")
    unsigned = await client.post(
        f"{HOOKS}/twilio/status",
        content=urlencode(params),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    good = RequestValidator(TWILIO_TOKEN).compute_signature(f"{PUBLIC_BASE}{HOOKS}/twilio/status", params)
    altered = await twilio_post(client, "/twilio/status", {**params, "MessageStatus": "read"}, signature=good)
    other_host = RequestValidator(TWILIO_TOKEN).compute_signature(
        f"http://testserver{HOOKS}/twilio/status", params
    )
    wrong_url = await twilio_post(client, "/twilio/status", params, signature=other_host)
    assert [r.status_code for r in (forged, unsigned, altered, wrong_url)] == [403, 403, 403, 403]
    assert (await reload(system_sessionmaker, tenant_id, message.id)).status == "sent"


async def test_an_inbound_reply_is_stored_on_the_patients_conversation(
    settings, providers_configured, client, auth, system_sessionmaker, tenant_id, make_patient
) -> None:
    patient = await make_patient()
    await _sent_message(settings, system_sessionmaker, tenant_id, patient, Channel.WHATSAPP)
    params = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "From": f"whatsapp:{patient.phone_primary}",
        "To": "whatsapp:+14155550001",
        "Body": "Feeling much better, thanks",
        "NumMedia": "0",
    }
    resp = await twilio_post(client, "/twilio/messages", params)
    assert resp.status_code == 200 and "<Response>" in resp.text
    assert resp.headers["content-type"].startswith("text/xml")  # TwiML, as the OpenAPI documents it
    again = await twilio_post(client, "/twilio/messages", params)  # Twilio retries: stored once
    assert again.status_code == 200
    conversation = (
        await client.get(
            f"{API}/patients/{patient.id}/conversations", params={"direction": "inbound"}, headers=auth
        )
    ).json()
    assert [(m["message"], m["channel"], m["status"]) for m in conversation["items"]] == [
        ("Feeling much better, thanks", "whatsapp", "received")
    ]


async def test_an_inbound_reply_emits_one_message_received_event_without_its_text(
    settings, providers_configured, client, system_sessionmaker, tenant_id, make_patient
) -> None:
    patient = await make_patient()
    await _sent_message(settings, system_sessionmaker, tenant_id, patient, Channel.SMS)
    params = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "From": patient.phone_primary,
        "To": "+14155550001",
        "Body": "Please reschedule me",
        "NumMedia": "0",
    }
    for _ in range(2):  # Twilio retries: one event
        assert (await twilio_post(client, "/twilio/messages", params)).status_code == 200
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        events = list(await session.scalars(select(DomainEvent).where(DomainEvent.patient_id == patient.id)))
    assert [(e.type, e.source, e.subject_type, e.facts) for e in events] == [
        ("message.received", "webhook", "communication", {"channel": "sms", "consent_keyword": None})
    ]


async def test_an_inbound_reply_is_scored_for_sentiment_when_it_is_stored(
    settings, providers_configured, client, system_sessionmaker, tenant_id, make_patient
) -> None:
    from sqlalchemy import select

    from core.database import bind_tenant
    from domain.analytics.models import MessageSentiment

    patient = await make_patient()
    await _sent_message(settings, system_sessionmaker, tenant_id, patient, Channel.SMS)
    params = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "From": patient.phone_primary,
        "To": "+14155550001",
        "Body": "Thank you so much, the nurse was wonderful",
        "NumMedia": "0",
    }
    assert (await twilio_post(client, "/twilio/messages", params)).status_code == 200
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        labels = (await session.scalars(select(MessageSentiment.label))).all()
    assert labels == ["positive"]


async def test_stop_opts_out_with_one_confirmation_and_nothing_is_sent_after(
    settings, providers_configured, client, system_sessionmaker, tenant_id, make_patient, temporal_worker
) -> None:
    patient = await make_patient()
    await _sent_message(settings, system_sessionmaker, tenant_id, patient)
    for word in ("  stop ", "STOP"):
        params = {
            "MessageSid": "SM" + uuid.uuid4().hex,
            "From": patient.phone_primary,
            "To": "+14155550000",
            "Body": word,
        }
        assert (await twilio_post(client, "/twilio/messages", params)).status_code == 200
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        consent = await session.scalar(select(ChannelConsent).where(ChannelConsent.patient_id == patient.id))
    assert (consent.channel, consent.opted_out) == ("sms", True)

    # The confirmation goes through its delivery workflow like every message: urgent, to the channel left.
    async def confirmed() -> bool:
        return len(providers_configured.twilio_forms()) == 2

    await eventually(confirmed, "the opt-out confirmation")
    forms = providers_configured.twilio_forms()
    assert "unsubscribed" in forms[1]["Body"]  # the first message, then one confirmation
    after = await _sent_message(settings, system_sessionmaker, tenant_id, patient)
    assert (after.status, after.error_code) == ("failed", "opted_out")
    assert len(providers_configured.twilio_forms()) == 2
    start = {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "From": patient.phone_primary,
        "To": "+14155550000",
        "Body": "Start",
    }
    await twilio_post(client, "/twilio/messages", start)
    resumed = await _sent_message(settings, system_sessionmaker, tenant_id, patient)
    assert resumed.status == "sent"


async def test_sendgrid_events_are_verified_applied_and_deduplicated(
    settings, providers_configured, client, system_sessionmaker, tenant_id, make_patient, sendgrid_keys
) -> None:
    patient = await make_patient()
    message = await _sent_message(settings, system_sessionmaker, tenant_id, patient, Channel.EMAIL)
    (mail,) = providers_configured.sendgrid_mails()
    assert mail["custom_args"] == {
        "communication_id": str(message.id),
        "send_attempt": mail["custom_args"]["send_attempt"],
    }
    assert message.send_attempt is None  # the send step recorded SendGrid's answer: the attempt is closed
    delivered = {
        "event": "delivered",
        "sg_event_id": "ev-1",
        "email": "x",
        "timestamp": int(time.time()),
        "communication_id": str(message.id),
    }
    assert (await sendgrid_post(client, sendgrid_keys, [delivered], tamper=True)).status_code == 403
    stale = int(time.time()) - 3600
    assert (await sendgrid_post(client, sendgrid_keys, [delivered], timestamp=stale)).status_code == 403
    assert (await reload(system_sessionmaker, tenant_id, message.id)).status == "sent"
    assert (await sendgrid_post(client, sendgrid_keys, [delivered])).status_code == 204
    assert (await reload(system_sessionmaker, tenant_id, message.id)).status == "delivered"
    opened = {**delivered, "event": "open", "sg_event_id": "ev-2"}
    await sendgrid_post(client, sendgrid_keys, [opened, opened])
    assert (await reload(system_sessionmaker, tenant_id, message.id)).status == "read"


@pytest.mark.parametrize("bad", ["soon", 10**30, -(10**30), None, [1]], ids=repr)
async def test_a_sendgrid_event_with_a_bad_timestamp_fails_nothing_else_in_its_batch(
    settings, providers_configured, client, system_sessionmaker, tenant_id, make_patient, sendgrid_keys, bad
) -> None:
    patient = await make_patient()
    message = await _sent_message(settings, system_sessionmaker, tenant_id, patient, Channel.EMAIL)
    event = {"email": "x", "communication_id": str(message.id)}
    batch = [
        {**event, "event": "delivered", "sg_event_id": f"bad-{uuid.uuid4()}", "timestamp": bad},
        {**event, "event": "open", "sg_event_id": f"good-{uuid.uuid4()}", "timestamp": int(time.time())},
    ]
    assert (await sendgrid_post(client, sendgrid_keys, batch)).status_code == 204
    assert (await reload(system_sessionmaker, tenant_id, message.id)).status == "read"
