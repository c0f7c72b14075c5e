"""Messages in the patient's language: a template has a variant per language, a message takes the one in the
patient's preferred language (then its shorter forms), else the tenant's default language, else English,
and records which it used."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from core import languages
from core.database import bind_tenant
from domain.communications import builtin_templates, delivery, service, templates
from domain.communications.models import Communication, CommunicationTemplate
from domain.enums import Channel
from domain.patients.models import Patient
from tests.communications.conftest import API, tenant_sessions
from tests.communications.support import set_default_language
from tests.communications.webhook_support import twilio_post

BASE = f"{API}/communications"
TEMPLATES = f"{BASE}/templates"
CONTENT_EN = "HX" + "0" * 32
CONTENT_ES = "HX" + "e" * 32

AFTERCARE = {
    "id": "aftercare",
    "name": "Aftercare",
    "channel": "whatsapp",
    "category": "follow_up",
    "body": "Hi {{ patient_first_name }}, rest your {{ body_part }} today.",
    "whatsapp_content_sid": CONTENT_EN,
    "whatsapp_content_variables": ["patient_first_name", "body_part"],
}
AFTERCARE_ES = {
    **AFTERCARE,
    "language": "es",
    "body": "Hola, {{ patient_first_name }}: hoy descanse la {{ body_part }}.",
    "whatsapp_content_sid": CONTENT_ES,
}


async def _send(client: httpx.AsyncClient, auth: dict, patient: Patient, **fields) -> dict:
    body = {"patient_id": str(patient.id), "channel": "sms", **fields}
    resp = await client.post(BASE, json=body, headers=auth)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def _prescription(client, auth, patient: Patient) -> dict:
    """The built-in `prescription_ready` message for the patient."""
    return await _send(
        client, auth, patient, template_name="prescription_ready", template_vars={"pharmacy_name": "Farmacia"}
    )


# ---- language tags --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [("es", "es"), ("ES-mx", "es-MX"), ("spa", "es"), ("pt_BR", "pt-BR"), ("zh-hans-cn", "zh-Hans-CN")],
)
def test_language_tags_are_normalised(given: str, stored: str) -> None:
    assert languages.normalise(given) == stored


@pytest.mark.parametrize("bad", ["", "english please", "xx", "x-private", "es-MX-" + "a" * 9])
def test_what_is_not_a_language_tag_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="language tag"):
        languages.normalise(bad)


def test_the_fallback_chain_tries_shorter_forms_then_the_default_then_english() -> None:
    assert languages.fallback_chain("es-MX", "fr-CA") == ["es-MX", "es", "fr-CA", "fr", "en"]
    assert languages.fallback_chain(None, "es") == ["es", "en"]
    assert languages.fallback_chain("not a tag", None) == ["en"]
    assert languages.fallback_chain("en-GB", "en") == ["en-GB", "en"]


def test_every_built_in_template_speaks_english_and_spanish_with_the_same_variables() -> None:
    for text in builtin_templates.BUILTIN_TEXTS:
        assert {"en", "es"} <= set(text.text), text.id
        variants = templates.builtin_variants(text.id)
        assert {tuple(v.variables) for v in variants} == {tuple(variants[0].variables)}, text.id


def test_a_snapshot_taken_before_languages_reads_as_one_english_variant() -> None:
    old = {"name": "Wound", "channel": "sms", "category": "follow_up", "subject": "", "body": "Hi"}
    (variant,) = templates.from_snapshot("wound", old)
    assert (variant.language, variant.body) == ("en", "Hi")


# ---- which language a message uses ----------------------------------------------------------------------


async def test_a_patients_regional_language_falls_back_to_its_language(client, auth, make_patient) -> None:
    patient = await make_patient(preferred_language="es-MX")
    sent = await _prescription(client, auth, patient)
    assert sent["language"] == "es"
    assert sent["message"] == "Hola, Maria: su receta ya está lista para recoger en Farmacia."
    fetched = (await client.get(f"{BASE}/{sent['id']}", headers=auth)).json()
    assert fetched["language"] == "es"


async def test_without_a_preferred_language_the_tenants_default_is_used(
    client, auth, make_patient, system_sessionmaker, tenant_id
) -> None:
    await set_default_language(system_sessionmaker, tenant_id, "es")
    sent = await _prescription(client, auth, await make_patient(preferred_language=None))
    assert sent["language"] == "es" and sent["message"].startswith("Hola, Maria:")


async def test_a_language_no_template_speaks_falls_back_to_the_default_then_english(
    client, auth, make_patient, system_sessionmaker, tenant_id
) -> None:
    french = await make_patient(preferred_language="fr")
    in_english = await _prescription(client, auth, french)
    assert in_english["language"] == "en"
    assert in_english["message"] == "Hi Maria, your prescription is ready for pickup at Farmacia."
    await set_default_language(system_sessionmaker, tenant_id, "es-MX")
    assert (await _prescription(client, auth, french))["language"] == "es"


async def test_literal_text_records_no_language_unless_the_sender_states_it(
    client, auth, make_patient
) -> None:
    patient = await make_patient(preferred_language="es")
    sent = await _send(client, auth, patient, message="Call {{ practitioner_name }}", template_name="x")
    assert (sent["message"], sent["language"]) == ("Call your care team", None)
    stated = await _send(client, auth, patient, message="Llame a {{ practitioner_name }}", language="ES")
    assert (stated["message"], stated["language"]) == ("Llame a su equipo médico", "es")


async def test_a_language_the_sender_chooses_comes_before_the_patients(client, auth, make_patient) -> None:
    patient = await make_patient(preferred_language="es")
    chosen = await _send(
        client,
        auth,
        patient,
        template_name="prescription_ready",
        template_vars={"pharmacy_name": "Farmacia"},
        language="en-US",
    )
    assert chosen["language"] == "en" and chosen["message"].startswith("Hi Maria,")
    bad = await client.post(
        BASE,
        json={"patient_id": str(patient.id), "channel": "sms", "message": "x", "language": "klingon!"},
        headers=auth,
    )
    assert bad.status_code == 422 and "language" in str(bad.json()["detail"])


async def test_a_tenant_template_is_sent_in_the_patients_variant(client, auth, make_patient) -> None:
    assert (await client.post(TEMPLATES, json=AFTERCARE, headers=auth)).status_code == 201
    assert (await client.post(TEMPLATES, json=AFTERCARE_ES, headers=auth)).status_code == 201
    vars_ = {"template_name": "aftercare", "template_vars": {"body_part": "rodilla"}}
    spanish = await _send(client, auth, await make_patient(preferred_language="es-419"), **vars_)
    english = await _send(client, auth, await make_patient(preferred_language="de"), **vars_)
    assert (spanish["language"], spanish["message"]) == ("es", "Hola, Maria: hoy descanse la rodilla.")
    assert (english["language"], english["message"]) == ("en", "Hi Maria, rest your rodilla today.")


async def test_a_template_in_none_of_the_chains_languages_still_sends_its_variant(
    client, auth, make_patient
) -> None:
    only_french = {
        **AFTERCARE,
        "language": "fr",
        "body": "Bonjour {{ patient_first_name }}, {{ body_part }}.",
    }
    assert (await client.post(TEMPLATES, json=only_french, headers=auth)).status_code == 201
    sent = await _send(
        client, auth, await make_patient(), template_name="aftercare", template_vars={"body_part": "genou"}
    )
    assert (sent["language"], sent["message"]) == ("fr", "Bonjour Maria, genou.")


async def test_dates_are_written_in_the_messages_language(
    make_patient, system_sessionmaker, tenant_id
) -> None:
    patient = await make_patient(preferred_language="es")
    english = await make_patient(preferred_language="en")
    facts = service.AppointmentFacts(
        start_time=datetime(2025, 2, 3, 14, 30, tzinfo=UTC),
        practitioner_name="Ana Ruiz",
        timezone="UTC",
        practitioner_gender="female",
    )
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        content = await service.render_for(
            session, patient, template_id="apt_confirmation", appointment=facts
        )
        in_english = await service.render_for(
            session, english, template_id="apt_confirmation", appointment=facts
        )
        no_appointment = await service.render_for(
            session, patient, template_id="recovery_check_in", appointment=None
        )
    assert content.body == (
        "Test Clinic: su cita con Dra. Ana Ruiz queda confirmada para el lunes, 3 de febrero de 2025 "
        "a las 14:30."
    )
    assert in_english.body == (
        "Test Clinic: your appointment with Dr. Ana Ruiz is confirmed for Mon 3 Feb 2025 at 2:30 PM."
    )
    assert "su equipo médico" in no_appointment.body


@pytest.mark.parametrize(
    ("preferred", "written"),
    [
        ("en", "9:05 AM"),  # CLDR's English is the US's
        ("en-US", "9:05 AM"),
        ("en-GB", "09:05"),
        ("en-AU", "9:05 am"),
        ("es", "9:05"),
        ("es-MX", "9:05 a.m."),
    ],
)
async def test_times_are_written_as_the_patients_locale_writes_them(
    make_patient, system_sessionmaker, tenant_id, preferred, written
) -> None:
    """The built-in template is `en` (or `es`): its time takes the patient's region, in plain spaces (a
    narrow no-break space would make the SMS go as UCS-2)."""
    patient = await make_patient(preferred_language=preferred)
    facts = service.AppointmentFacts(
        start_time=datetime(2025, 2, 3, 14, 5, tzinfo=UTC),
        practitioner_name="Ana Ruiz",
        timezone="America/New_York",
    )
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        content = await service.render_for(
            session, patient, template_id="apt_confirmation", appointment=facts
        )
    assert content.body.endswith(f" {written}.")
    assert content.language == languages.primary(preferred)
    assert content.body.isascii() or preferred.startswith("es")


def test_a_chat_time_is_written_as_the_locale_writes_it() -> None:
    moment = datetime(2024, 12, 3, 15, 0)
    assert templates.format_moment(moment, "en-US") == "Tue 3 Dec, 3:00 PM"
    assert templates.format_moment(moment, "en-GB") == "Tue 3 Dec, 15:00"
    assert templates.format_time(moment, "de") == "15:00"
    assert templates.format_time(moment, "qaa") == "15:00"  # a tag Babel does not know: 24-hour


async def test_stop_is_confirmed_in_the_patients_language(
    client, providers_configured, make_patient, system_sessionmaker, tenant_id
) -> None:
    patient = await make_patient(preferred_language="es", preferred_channel="sms")
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": patient.phone_primary, "To": "+14155550000"}
    assert (await twilio_post(client, "/twilio/messages", {**form, "Body": "STOP"})).status_code == 200
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        (reply,) = (
            await session.scalars(
                select(Communication).where(
                    Communication.patient_id == patient.id, Communication.direction == "outbound"
                )
            )
        ).all()
    assert (reply.template_name, reply.language) == ("consent_opt_out", "es")
    assert reply.message == (
        "Ya no recibirá mensajes de Test Clinic por este canal. Responda START para volver a recibirlos."
    )


# ---- the tenant template API ----------------------------------------------------------------------------


async def test_an_id_holds_one_variant_per_language_and_a_second_is_409(client, auth) -> None:
    first = await client.post(TEMPLATES, json={**AFTERCARE, "language": "es-mx"}, headers=auth)
    assert first.status_code == 201, first.text
    assert first.json()["language"] == "es-MX"
    again = await client.post(TEMPLATES, json={**AFTERCARE, "language": "ES-MX"}, headers=auth)
    assert again.status_code == 409 and "es-MX" in again.json()["detail"]
    assert (await client.post(TEMPLATES, json=AFTERCARE, headers=auth)).json()["language"] == "en"
    listing = (await client.get(TEMPLATES, params={"language": "es-MX"}, headers=auth)).json()
    assert [(t["id"], t["language"]) for t in listing["templates"]] == [("aftercare", "es-MX")]


async def test_the_database_holds_one_variant_per_tenant_id_and_language(
    system_sessionmaker, tenant_id
) -> None:
    from sqlalchemy.exc import IntegrityError

    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        for _ in range(2):
            session.add(
                CommunicationTemplate(
                    key="twice", language="es", name="x", channel="sms", category="general", body="x"
                )
            )
        with pytest.raises(IntegrityError, match="uq_communication_templates_tenant_key_language"):
            await session.flush()


async def test_a_bad_language_is_422_and_stores_nothing(client, auth) -> None:
    for bad in ("english please", "xx", ""):
        resp = await client.post(TEMPLATES, json={**AFTERCARE, "language": bad}, headers=auth)
        assert resp.status_code == 422, bad
        assert "language" in str(resp.json()["detail"])
    assert (await client.get(TEMPLATES, params={"language": "zz-top!"}, headers=auth)).status_code == 422
    assert (
        await client.get(f"{TEMPLATES}/aftercare", params={"language": "?"}, headers=auth)
    ).status_code == 422
    listing = (await client.get(TEMPLATES, params={"include_inactive": True}, headers=auth)).json()
    assert "aftercare" not in {t["id"] for t in listing["templates"]}


async def test_get_patch_and_delete_address_one_language(client, auth) -> None:
    await client.post(TEMPLATES, json=AFTERCARE, headers=auth)
    await client.post(TEMPLATES, json=AFTERCARE_ES, headers=auth)
    url = f"{TEMPLATES}/aftercare"
    assert (await client.get(url, headers=auth)).json()["language"] == "en"  # the tenant's default
    spanish = await client.get(url, params={"language": "es"}, headers=auth)
    assert (spanish.json()["language"], spanish.json()["whatsapp_content_sid"]) == ("es", CONTENT_ES)
    patched = await client.patch(
        url,
        params={"language": "es"},
        json={"body": "{{ patient_first_name }}, {{ body_part }}."},
        headers=auth,
    )
    assert patched.status_code == 200, patched.text
    assert (await client.get(url, headers=auth)).json()["body"] == AFTERCARE["body"]
    assert (await client.delete(url, params={"language": "es"}, headers=auth)).status_code == 204
    assert (await client.get(url, params={"language": "es"}, headers=auth)).status_code == 404
    assert (await client.get(url, headers=auth)).status_code == 200


async def test_a_tenant_whose_default_is_spanish_creates_spanish_variants(
    client, auth, system_sessionmaker, tenant_id
) -> None:
    await set_default_language(system_sessionmaker, tenant_id, "es")
    created = await client.post(TEMPLATES, json=AFTERCARE, headers=auth)
    assert created.json()["language"] == "es"
    assert (await client.get(f"{TEMPLATES}/aftercare", headers=auth)).json()["language"] == "es"


async def test_built_ins_are_listed_in_each_language(client, auth) -> None:
    spanish = (await client.get(TEMPLATES, params={"language": "es"}, headers=auth)).json()
    reminder = next(t for t in spanish["templates"] if t["id"] == "apt_reminder")
    assert reminder["subject"] == "Recordatorio de cita"
    assert {t["language"] for t in spanish["templates"]} == {"es"}
    assert len(spanish["templates"]) == len(builtin_templates.BUILTIN_TEXTS)


# ---- WhatsApp Content templates per language ------------------------------------------------------------


async def test_outside_the_window_the_patients_language_content_template_is_sent(
    settings, client, auth, providers_configured, make_patient, system_sessionmaker, tenant_id
) -> None:
    providers_configured.whatsapp_window_open = False  # only a Content template goes
    await client.post(TEMPLATES, json=AFTERCARE, headers=auth)
    await client.post(TEMPLATES, json=AFTERCARE_ES, headers=auth)
    patient = await make_patient(preferred_language="es")
    sent = await _send(
        client,
        auth,
        patient,
        channel="whatsapp",
        template_name="aftercare",
        template_vars={"body_part": "rodilla"},
    )
    await delivery.deliver(
        tenant_sessions(system_sessionmaker, tenant_id),
        uuid.UUID(sent["id"]),
        at=datetime.now(UTC),
        settings=settings,
    )
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        record = await session.scalar(select(Communication).where(Communication.id == uuid.UUID(sent["id"])))
    assert record is not None and (record.status, record.language) == ("sent", "es")
    (form,) = providers_configured.twilio_forms()
    assert form["ContentSid"] == CONTENT_ES
    assert json.loads(form["ContentVariables"]) == {"1": "Maria", "2": "rodilla"}


async def test_an_email_without_a_subject_gets_one_in_its_language(
    settings, providers_configured, make_patient, system_sessionmaker, tenant_id
) -> None:
    patient = await make_patient(email_primary="ana@example.com")
    for language in ("es", None):
        async with system_sessionmaker() as session:
            bind_tenant(session, tenant_id)
            sent = await service.send_message(
                session,
                patient_id=patient.id,
                channel=Channel.EMAIL,
                message=lambda p, language=language: _literal(session, p, language),
                idempotency_key=str(uuid.uuid4()),
            )
            await session.commit()
        await delivery.deliver(
            tenant_sessions(system_sessionmaker, tenant_id),
            sent.communication.id,
            at=datetime.now(UTC),
            settings=settings,
        )
    assert [m["subject"] for m in providers_configured.sendgrid_mails()] == [
        "Mensaje de su clínica",
        "Message from your clinic",
    ]


async def _literal(session, patient: Patient, language: str | None) -> service.Content:
    return await service.render_for(session, patient, text="Hola", language=language)
