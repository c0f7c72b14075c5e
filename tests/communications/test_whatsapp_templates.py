"""WhatsApp's 24-hour window: inside it the text goes as `Body`; outside it the tenant template's approved
Twilio Content template goes instead (`ContentSid` + `ContentVariables`), and a message without one fails
at once with `whatsapp_window_closed` (no request to Twilio) so the delivery workflow falls back to SMS."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from core.database import bind_tenant
from domain.communications import delivery, service
from domain.communications.models import Communication
from domain.enums import Channel
from tests.communications.conftest import API, delivery_result, record_inbound, tenant_sessions
from tests.communications.provider_support import PUBLIC_BASE
from tests.communications.support import outbound_messages
from tests.problems import unprocessable

BASE = f"{API}/communications"
TEMPLATES = f"{BASE}/templates"
CONTENT_SID = "HX" + "0123456789abcdef" * 2
SENDER = "whatsapp:+14155550001"
STATUS_CALLBACK = f"{PUBLIC_BASE}/api/v1/prm/webhooks/twilio/status"
CLINIC_NAME = "Test Clinic"  # the tenant fixture's name: the system variable `clinic_name`

CHECK_IN = {
    "id": "visit_check_in",
    "name": "Visit check-in",
    "channel": "whatsapp",
    "category": "follow_up",
    "body": "Hi {{ patient_first_name }}, how are you after your {{ visit_kind }}?",
    "whatsapp_content_sid": CONTENT_SID,
    "whatsapp_content_variables": ["patient_first_name", "visit_kind", "clinic_name"],
}


async def _create(client: httpx.AsyncClient, auth: dict, **overrides) -> httpx.Response:
    return await client.post(TEMPLATES, json={**CHECK_IN, **overrides}, headers=auth)


async def _replied(system_sessionmaker, tenant_id, patient, *, hours_ago: float, channel="whatsapp") -> None:
    """Record an inbound message from the patient, received `hours_ago` hours ago."""
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    await record_inbound(system_sessionmaker, tenant_id, patient, at=at, channel=channel)


async def _queued(client, auth, patient, **fields) -> str:
    """A WhatsApp message created through the API (not sent yet); its id."""
    body = {"patient_id": str(patient.id), "channel": "whatsapp", **fields}
    resp = await client.post(BASE, json=body, headers=auth)
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def _deliver(settings, system_sessionmaker, tenant_id, communication_id: str) -> Communication:
    """Run the send step now (as the delivery workflow's send activity does) and reload the message."""
    await delivery.deliver(
        tenant_sessions(system_sessionmaker, tenant_id),
        uuid.UUID(communication_id),
        at=datetime.now(UTC),
        settings=settings,
    )
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        record = await session.scalar(
            select(Communication).where(Communication.id == uuid.UUID(communication_id))
        )
        assert record is not None
        return record


# --- templates -------------------------------------------------------------------------------------------


async def test_a_whatsapp_template_keeps_its_content_sid_and_variables(client, auth) -> None:
    resp = await _create(client, auth)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["whatsapp_content_sid"] == CONTENT_SID
    assert body["whatsapp_content_variables"] == ["patient_first_name", "visit_kind", "clinic_name"]
    fetched = (await client.get(f"{TEMPLATES}/visit_check_in", headers=auth)).json()
    assert (fetched["whatsapp_content_sid"], fetched["whatsapp_content_variables"]) == (
        CONTENT_SID,
        body["whatsapp_content_variables"],
    )
    plain = await _create(client, auth, id="plain", whatsapp_content_sid=None, whatsapp_content_variables=[])
    assert (plain.json()["whatsapp_content_sid"], plain.json()["whatsapp_content_variables"]) == (None, [])


async def test_a_malformed_content_sid_is_422(client, auth) -> None:
    for sid in ("HX123", "MG" + "0" * 32, "HX" + "g" * 32, "HX" + "0" * 33, "hx" + "0" * 32):
        resp = await _create(client, auth, whatsapp_content_sid=sid)
        assert resp.status_code == 422, sid
    assert (await client.get(f"{TEMPLATES}/visit_check_in", headers=auth)).status_code == 404


async def test_a_content_sid_on_a_template_of_another_channel_is_422(client, auth) -> None:
    resp = await _create(client, auth, channel="sms")
    assert resp.status_code == 422 and "whatsapp" in unprocessable(resp)


async def test_content_variables_must_be_template_or_system_variables(client, auth) -> None:
    unknown = await _create(client, auth, whatsapp_content_variables=["patient_first_name", "dosage"])
    assert unknown.status_code == 422 and "dosage" in unprocessable(unknown)
    without_sid = await _create(client, auth, whatsapp_content_sid=None)
    assert without_sid.status_code == 422
    assert (await _create(client, auth, whatsapp_content_variables=[""])).status_code == 422


async def test_patch_checks_the_content_variables_against_the_new_text(client, auth) -> None:
    await _create(client, auth)
    url = f"{TEMPLATES}/visit_check_in"
    dropped = await client.patch(url, json={"body": "Hi {{ patient_first_name }}!"}, headers=auth)
    assert dropped.status_code == 422 and "visit_kind" in unprocessable(dropped)
    to_sms = await client.patch(url, json={"channel": "sms"}, headers=auth)
    assert to_sms.status_code == 422
    bad_sid = await client.patch(url, json={"whatsapp_content_sid": "HX1"}, headers=auth)
    assert bad_sid.status_code == 422
    reordered = await client.patch(
        url, json={"whatsapp_content_variables": ["visit_kind", "patient_first_name"]}, headers=auth
    )
    assert reordered.json()["whatsapp_content_variables"] == ["visit_kind", "patient_first_name"]
    removed = await client.patch(url, json={"whatsapp_content_sid": None}, headers=auth)
    assert removed.status_code == 200, removed.text
    assert (removed.json()["whatsapp_content_sid"], removed.json()["whatsapp_content_variables"]) == (
        None,
        [],
    )
    assert (await client.patch(url, json={"channel": "sms"}, headers=auth)).status_code == 200


# --- recording the Content template on the message ----------------------------------------------------


async def _meta(system_sessionmaker, tenant_id, communication_id: str) -> dict:
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        record = await session.get(Communication, uuid.UUID(communication_id))
        assert record is not None
        return dict(record.meta_data)


async def test_a_message_from_the_template_records_the_content_values_in_order(
    client, auth, make_patient, system_sessionmaker, tenant_id
) -> None:
    await _create(client, auth)
    patient = await make_patient()
    communication_id = await _queued(
        client, auth, patient, template_name="visit_check_in", template_vars={"visit_kind": "check-up"}
    )
    content = (await _meta(system_sessionmaker, tenant_id, communication_id))["whatsapp_content"]
    assert content == {
        "sid": CONTENT_SID,
        "variables": {"1": patient.first_name, "2": "check-up", "3": CLINIC_NAME},
    }


async def test_literal_text_or_another_channel_records_no_content(
    client, auth, make_patient, system_sessionmaker, tenant_id
) -> None:
    await _create(client, auth)
    patient = await make_patient()
    named = {"template_name": "visit_check_in", "template_vars": {"visit_kind": "x"}}
    literal = await _queued(client, auth, patient, message="Call us back", **named)
    resp = await client.post(
        BASE, json={"patient_id": str(patient.id), "channel": "sms", **named}, headers=auth
    )
    assert resp.status_code == 201, resp.text
    for communication_id in (literal, resp.json()["id"]):
        assert "whatsapp_content" not in await _meta(system_sessionmaker, tenant_id, communication_id)


# --- the send step ---------------------------------------------------------------------------------------


async def test_inside_the_window_the_text_is_sent_as_body(
    settings, client, auth, providers_configured, make_patient, system_sessionmaker, tenant_id
) -> None:
    await _create(client, auth)
    patient = await make_patient()
    await _replied(system_sessionmaker, tenant_id, patient, hours_ago=2)
    communication_id = await _queued(
        client, auth, patient, template_name="visit_check_in", template_vars={"visit_kind": "check-up"}
    )
    record = await _deliver(settings, system_sessionmaker, tenant_id, communication_id)
    assert record.status == "sent" and record.provider_message_id
    (form,) = providers_configured.twilio_forms()
    callback = form.pop("StatusCallback")
    assert form == {
        "To": f"whatsapp:{patient.phone_primary}",
        "From": SENDER,
        "Body": f"Hi {patient.first_name}, how are you after your check-up?",
    }
    # The callback names the message and the send attempt, so it can settle an attempt left unrecorded.
    assert callback.startswith(f"{STATUS_CALLBACK}?communication_id={communication_id}&attempt=")


async def test_outside_the_window_the_content_template_is_sent_with_its_values_in_order(
    settings, client, auth, providers_configured, make_patient, system_sessionmaker, tenant_id
) -> None:
    providers_configured.whatsapp_window_open = False  # Twilio would refuse free text (63016)
    await _create(client, auth)
    patient = await make_patient()
    await _replied(system_sessionmaker, tenant_id, patient, hours_ago=25)
    communication_id = await _queued(
        client, auth, patient, template_name="visit_check_in", template_vars={"visit_kind": "check-up"}
    )
    record = await _deliver(settings, system_sessionmaker, tenant_id, communication_id)
    assert record.status == "sent" and record.provider_message_id, record.error_message
    (form,) = providers_configured.twilio_forms()
    assert set(form) == {"To", "From", "ContentSid", "ContentVariables", "StatusCallback"}
    assert (form["To"], form["From"], form["ContentSid"]) == (
        f"whatsapp:{patient.phone_primary}",
        SENDER,
        CONTENT_SID,
    )
    expected = {"1": patient.first_name, "2": "check-up", "3": CLINIC_NAME}
    assert form["ContentVariables"] == json.dumps(expected)  # placeholders in order, as the SDK sent them


async def test_outside_the_window_without_a_content_template_nothing_is_sent_to_twilio(
    settings, client, auth, providers_configured, make_patient, system_sessionmaker, tenant_id
) -> None:
    patient = await make_patient()
    await _replied(system_sessionmaker, tenant_id, patient, hours_ago=25)
    communication_id = await _queued(client, auth, patient, message="Your results are ready")
    record = await _deliver(settings, system_sessionmaker, tenant_id, communication_id)
    assert providers_configured.twilio_forms() == []
    assert (record.status, record.error_code) == ("failed", "whatsapp_window_closed")
    assert record.error_message.startswith("Outside WhatsApp's 24-hour window a message must use an approved")
    assert record.failed_at is not None and record.provider_message_id is None


async def test_a_patient_who_never_wrote_on_whatsapp_is_outside_the_window(
    settings, client, auth, providers_configured, make_patient, system_sessionmaker, tenant_id
) -> None:
    patient = await make_patient()
    await _replied(system_sessionmaker, tenant_id, patient, hours_ago=1, channel="sms")
    communication_id = await _queued(client, auth, patient, message="Hello")
    record = await _deliver(settings, system_sessionmaker, tenant_id, communication_id)
    assert (record.status, record.error_code) == ("failed", "whatsapp_window_closed")
    assert providers_configured.twilio_forms() == []


async def test_the_window_is_24_hours_from_the_latest_inbound_whatsapp_message(
    make_patient, system_sessionmaker, tenant_id
) -> None:
    recent, stale = await make_patient(), await make_patient()
    await _replied(system_sessionmaker, tenant_id, recent, hours_ago=2)
    await _replied(system_sessionmaker, tenant_id, stale, hours_ago=25)
    now = datetime.now(UTC)
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        assert await delivery.whatsapp_window_open(session, recent.id, now)
        assert not await delivery.whatsapp_window_open(session, stale.id, now)
        assert not await delivery.whatsapp_window_open(
            session, recent.id, now + timedelta(hours=22, minutes=1)
        )


async def test_a_63016_from_twilio_still_fails_the_message_for_good(
    settings, client, auth, providers_configured, make_patient, system_sessionmaker, tenant_id
) -> None:
    """The window can close between our check and Twilio's: 63016 is permanent, never retried."""
    providers_configured.whatsapp_window_open = False
    patient = await make_patient()
    await _replied(system_sessionmaker, tenant_id, patient, hours_ago=2)
    communication_id = await _queued(client, auth, patient, message="Hello")
    record = await _deliver(settings, system_sessionmaker, tenant_id, communication_id)
    assert (record.status, record.error_code) == ("failed", "63016")
    assert "Body" in providers_configured.twilio_forms()[0]


async def test_send_message_with_a_template_records_the_content_for_the_send_step(
    settings, client, auth, providers_configured, make_patient, system_sessionmaker, tenant_id
) -> None:
    await _create(client, auth)
    patient = await make_patient()
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        result = await service.send_message(
            session,
            patient_id=patient.id,
            channel=Channel.WHATSAPP,
            message="Hi, how are you after your surgery?",
            idempotency_key=str(uuid.uuid4()),
            template_name="visit_check_in",
            template_vars={"visit_kind": "surgery"},
        )
        await session.commit()
    record = await _deliver(settings, system_sessionmaker, tenant_id, str(result.communication.id))
    assert record.status == "sent", record.error_message
    (form,) = providers_configured.twilio_forms()
    assert "Body" not in form and form["ContentSid"] == CONTENT_SID
    assert json.loads(form["ContentVariables"])["2"] == "surgery"


async def test_the_delivery_workflow_falls_back_to_sms_at_once_when_the_window_is_closed(
    client,
    auth,
    temporal_env,
    temporal_worker,
    providers_configured,
    make_patient,
    system_sessionmaker,
    tenant_id,
) -> None:
    # The SMS fails for good too, so every step is immediate: no timer waits for a delivery report.
    providers_configured.twilio_answers.append(
        (400, {"code": 21614, "message": "'To' number is not a valid mobile number", "status": 400})
    )
    patient = await make_patient()
    communication_id = await _queued(client, auth, patient, message="Bring your card")
    result = await delivery_result(temporal_env, communication_id)
    assert (result.channel, result.status) == ("email", "sent")
    whatsapp, sms, email = await outbound_messages(system_sessionmaker, tenant_id, patient.id)
    assert (whatsapp.channel, whatsapp.status, whatsapp.error_code) == (
        "whatsapp",
        "failed",
        "whatsapp_window_closed",
    )
    assert (sms.channel, sms.message, sms.error_code) == ("sms", "Bring your card", "21614")
    assert (email.channel, email.status) == ("email", "sent")
    # WhatsApp never reached Twilio: its one request is the SMS
    assert [f["To"] for f in providers_configured.twilio_forms()] == [patient.phone_primary]
