"""Journey messages and appointment reminders go in the patient's language, through the same render path as
the API's messages: the patient's preferred language, else the tenant's default, else English."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from domain.communications import templates
from domain.communications.models import Communication, CommunicationTemplate
from domain.journeys import actions
from domain.patients.models import Patient
from domain.scheduling import notifications
from domain.tenants.models import Tenant
from tests.journeys.conftest import Clinic
from tests.journeys.helpers import create_instance, send

WOUND = {
    "en": "Hi {{ patient_first_name }}, please send a photo of your {{ wound_site }}.",
    "es": "Hola, {{ patient_first_name }}: envíenos una foto de su {{ wound_site }}, por favor.",
}


async def _speaks(clinic: Clinic, language: str | None) -> None:
    async with await clinic.session() as session:
        await session.execute(
            update(Patient).where(Patient.id == clinic.patient_id).values(preferred_language=language)
        )
        await session.commit()


async def _add_wound_check(clinic: Clinic, languages: list[str]) -> None:
    async with await clinic.session() as session:
        for language in languages:
            session.add(
                CommunicationTemplate(
                    key="wound_check",
                    language=language,
                    name="Wound check",
                    channel="sms",
                    category="follow_up",
                    subject="",
                    body=WOUND[language],
                    variables=sorted(templates.variables_of(WOUND[language])),
                )
            )
        await session.commit()


async def _send_stage(clinic: Clinic, instance_id: uuid.UUID, action_index: int = 0) -> Communication:
    async with await clinic.session() as session:
        sent = await actions.send_stage_message(session, instance_id, 1, action_index)
        await session.commit()
        assert sent is not None
        record = await session.scalar(select(Communication).where(Communication.id == sent.communication.id))
        assert record is not None
        return record


async def test_a_journey_sends_a_built_in_template_in_the_patients_language(clinic: Clinic) -> None:
    await _speaks(clinic, "es-US")
    instance = await create_instance(clinic, [{"name": "x", "order_index": 1, "actions": [send()]}])
    sent = await _send_stage(clinic, instance.id)
    assert sent.language == "es"
    assert sent.message.startswith("Hola, Maria: desde ")
    assert sent.subject == "De vuelta en casa"


async def test_a_journey_keeps_every_language_of_a_tenant_template_and_picks_the_patients(
    clinic: Clinic,
) -> None:
    await _add_wound_check(clinic, ["en", "es"])
    action = send("wound_check", variables={"wound_site": "rodilla"})
    instance = await create_instance(clinic, [{"name": "x", "order_index": 1, "actions": [action]}])
    kept = instance.definition_snapshot["templates"]["wound_check"]["variants"]
    assert sorted(v["language"] for v in kept) == ["en", "es"]
    await _speaks(clinic, "es")
    async with await clinic.session() as session:  # later edits never reach the running instance
        await session.execute(update(CommunicationTemplate).values(body="changed"))
        await session.commit()
    sent = await _send_stage(clinic, instance.id)
    assert (sent.language, sent.message) == ("es", "Hola, Maria: envíenos una foto de su rodilla, por favor.")


async def test_a_journey_uses_the_tenants_default_language_when_the_patient_has_none(clinic: Clinic) -> None:
    async with await clinic.session() as session:
        tenant = await session.get(Tenant, clinic.tenant_id)
        assert tenant is not None
        tenant.settings = {**tenant.settings, "default_language": "es"}
        await session.commit()
    instance = await create_instance(clinic, [{"name": "x", "order_index": 1, "actions": [send()]}])
    assert (await _send_stage(clinic, instance.id)).language == "es"


async def test_a_reminder_goes_in_the_patients_language_with_a_spanish_date(clinic: Clinic) -> None:
    await _speaks(clinic, "es")
    start = datetime(2031, 2, 3, 14, 30, tzinfo=UTC)
    appointment_id = await clinic.add_appointment(start)
    async with await clinic.session() as session:
        sent = await notifications.send_reminder(
            session, appointment_id=appointment_id, offset_minutes=60, planned_start=start.isoformat()
        )
        await session.commit()
        assert sent is True
        record = await session.scalar(
            select(Communication).where(Communication.appointment_id == appointment_id)
        )
    assert record is not None
    assert (record.template_name, record.language) == ("appointment_reminder", "es")
    assert record.message == (
        "Recordatorio: tiene cita con Dr. John Smith el lunes, 3 de febrero de 2031 a las 14:30. "
        "Responda C para confirmarla."
    )


async def test_an_english_speaker_gets_the_english_reminder(clinic: Clinic) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    appointment_id = await clinic.add_appointment(start)
    async with await clinic.session() as session:
        await notifications.send_reminder(
            session, appointment_id=appointment_id, offset_minutes=60, planned_start=start.isoformat()
        )
        await session.commit()
        record = await session.scalar(
            select(Communication).where(Communication.appointment_id == appointment_id)
        )
    assert record is not None and record.language == "en"
    assert record.message.startswith("Reminder: your appointment with Dr. John Smith is on ")
