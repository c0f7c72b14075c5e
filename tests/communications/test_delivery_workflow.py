"""The delivery workflow on the time-skipping server: quiet hours wait on a durable timer, and a WhatsApp
message not delivered in time falls back to SMS, then email."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from domain.communications.policy import consent_keyword, quiet_hours_end
from domain.tenants.schemas import TenantSettings
from tests.communications.conftest import API, delivery_result, next_local_time, record_inbound
from tests.communications.support import outbound_messages
from tests.communications.webhook_support import twilio_post

NEW_YORK = ZoneInfo("America/New_York")


def test_quiet_hours_span_midnight_in_the_patients_zone() -> None:
    settings = TenantSettings()
    late = datetime(2030, 3, 4, 22, 30, tzinfo=NEW_YORK)
    assert quiet_hours_end(late, NEW_YORK, settings) == datetime(2030, 3, 5, 8, 0, tzinfo=NEW_YORK)
    early = datetime(2030, 3, 5, 7, 59, tzinfo=NEW_YORK)
    assert quiet_hours_end(early, NEW_YORK, settings) == datetime(2030, 3, 5, 8, 0, tzinfo=NEW_YORK)
    assert quiet_hours_end(datetime(2030, 3, 5, 12, 0, tzinfo=NEW_YORK), NEW_YORK, settings) is None


def test_consent_keywords_match_in_any_case() -> None:
    for word in ("STOP", "unsubscribe", " End ", "quit", "StopAll", "revoke", "OPTOUT", "cancel"):
        assert consent_keyword(word) == "opt_out"
    assert [consent_keyword(w) for w in ("start", "UNSTOP", "yes")] == ["opt_in"] * 3
    assert consent_keyword("please stop calling") is None


async def test_a_message_created_at_2230_patient_time_goes_out_at_0800(
    app,
    client,
    auth,
    temporal_env,
    temporal_worker,
    providers_configured,
    make_patient,
    system_sessionmaker,
    tenant_id,
    monkeypatch,
) -> None:
    patient = await make_patient(timezone="America/New_York")
    _, at_2230 = await next_local_time(temporal_env, NEW_YORK, 22, 30)
    resp = await client.post(
        f"{API}/communications",
        json={
            "patient_id": str(patient.id),
            "channel": "sms",
            "message": "Your lab results are in.",
            "scheduled_for": at_2230.isoformat(),
        },
        headers=auth,
    )
    assert resp.status_code == 201, resp.text
    result = await delivery_result(temporal_env, resp.json()["id"])
    assert result.status == "sent"
    (message,) = await outbound_messages(system_sessionmaker, tenant_id, patient.id)
    sent_local = message.sent_at.astimezone(NEW_YORK)
    assert (sent_local.date(), sent_local.hour, sent_local.minute) == (
        (at_2230 + timedelta(days=1)).date(),
        8,
        0,
    )
    assert message.meta_data["policy"] == "allowed"
    assert len(providers_configured.twilio_forms()) == 1


async def test_an_urgent_message_bypasses_quiet_hours_and_says_so(
    app,
    client,
    auth,
    temporal_env,
    temporal_worker,
    providers_configured,
    make_patient,
    system_sessionmaker,
    tenant_id,
    monkeypatch,
) -> None:
    patient = await make_patient(timezone="America/New_York")
    _, at_2300 = await next_local_time(temporal_env, NEW_YORK, 23, 0)
    body = {
        "patient_id": str(patient.id),
        "channel": "sms",
        "message": "Urgent: call us",
        "is_urgent": True,
        "scheduled_for": at_2300.isoformat(),
    }
    resp = await client.post(f"{API}/communications", json=body, headers=auth)
    assert (await delivery_result(temporal_env, resp.json()["id"])).status == "sent"
    (message,) = await outbound_messages(system_sessionmaker, tenant_id, patient.id)
    assert message.sent_at.astimezone(NEW_YORK).hour == 23
    assert message.meta_data["policy"] == "urgent: sent during quiet hours"


async def test_an_undelivered_whatsapp_message_falls_back_to_sms_then_email(
    app,
    client,
    auth,
    temporal_env,
    temporal_worker,
    providers_configured,
    make_patient,
    system_sessionmaker,
    tenant_id,
    monkeypatch,
) -> None:
    patient = await make_patient()
    # The patient wrote on WhatsApp just now (server time): free text may go inside the 24-hour window.
    now = await temporal_env.get_current_time()
    await record_inbound(system_sessionmaker, tenant_id, patient, at=now)
    body = {
        "patient_id": str(patient.id),
        "channel": "whatsapp",
        "subject": "Reminder",
        "message": "Bring your card",
    }
    resp = await client.post(f"{API}/communications", json=body, headers=auth)
    result = await delivery_result(temporal_env, resp.json()["id"])
    assert (result.channel, result.status) == ("email", "sent")
    messages = await outbound_messages(system_sessionmaker, tenant_id, patient.id)
    assert [(m.channel, m.message) for m in messages] == [
        ("whatsapp", "Bring your card"),
        ("sms", "Bring your card"),
        ("email", "Bring your card"),
    ]
    assert messages[1].sent_at - messages[0].sent_at >= timedelta(minutes=30)
    forms = providers_configured.twilio_forms()
    assert [f["To"] for f in forms] == [f"whatsapp:{patient.phone_primary}", patient.phone_primary]
    assert (
        providers_configured.sendgrid_mails()[0]["personalizations"][0]["to"][0]["email"]
        == patient.email_primary
    )


async def test_a_delivered_whatsapp_message_does_not_fall_back(
    app,
    client,
    auth,
    temporal_env,
    temporal_worker,
    providers_configured,
    make_patient,
    system_sessionmaker,
    tenant_id,
    monkeypatch,
) -> None:
    patient = await make_patient()
    # The patient wrote on WhatsApp just now (server time): free text may go inside the 24-hour window.
    now = await temporal_env.get_current_time()
    await record_inbound(system_sessionmaker, tenant_id, patient, at=now)
    body = {"patient_id": str(patient.id), "channel": "whatsapp", "message": "Hello", "is_urgent": True}
    resp = await client.post(f"{API}/communications", json=body, headers=auth)
    for _ in range(100):  # wait for the send, then report delivery as Twilio would
        (message,) = await outbound_messages(system_sessionmaker, tenant_id, patient.id)
        if message.provider_message_id:
            break
        await asyncio.sleep(0.05)
    await twilio_post(
        client, "/twilio/status", {"MessageSid": message.provider_message_id, "MessageStatus": "delivered"}
    )
    result = await delivery_result(temporal_env, resp.json()["id"])
    assert (result.channel, result.status) == ("whatsapp", "sent")
    assert len(await outbound_messages(system_sessionmaker, tenant_id, patient.id)) == 1
