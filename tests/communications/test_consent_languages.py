"""Consent keywords in Spanish as in English: BAJA opts a patient out (confirmed in their language), ALTA opts
them back in, ordinary words never do, and Twilio's English keywords behave exactly as before."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from core.database import bind_tenant
from domain.communications.models import Communication
from domain.communications.policy import consent_keyword
from domain.patients.models import ChannelConsent
from tests.communications.webhook_support import twilio_post


@pytest.mark.parametrize("word", ["BAJA", "baja", " Baja ", "PARAR", "alto", "Detener", "DESUSCRIBIR"])
def test_spanish_opt_out_words_opt_out_in_any_case(word: str) -> None:
    assert consent_keyword(word) == "opt_out"


@pytest.mark.parametrize("word", ["ALTA", "alta", "SÍ", "sí", "Si"])
def test_spanish_opt_in_words_opt_in_accents_and_case_ignored(word: str) -> None:
    assert consent_keyword(word) == "opt_in"


@pytest.mark.parametrize(
    "word", ["no", "NO", "cancelar", "fin", "salir", "baja por favor", "quiero darme de baja"]
)
def test_ordinary_spanish_words_and_sentences_are_not_consent_keywords(word: str) -> None:
    assert consent_keyword(word) is None


def test_twilios_english_keywords_are_unchanged() -> None:
    for word in ("STOP", "stopall", "UNSUBSCRIBE", "cancel", "END", "quit", "REVOKE", "optout"):
        assert consent_keyword(word) == "opt_out"
    assert [consent_keyword(w) for w in ("START", "unstop", "Yes")] == ["opt_in"] * 3
    assert [consent_keyword(w) for w in ("HELP", "INFO", "please stop")] == [None] * 3


async def _text(client, patient, body: str) -> None:
    form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": patient.phone_primary, "To": "+14155550000"}
    assert (await twilio_post(client, "/twilio/messages", {**form, "Body": body})).status_code == 200


async def _state(sessionmaker, tenant_id, patient) -> tuple[bool | None, list[Communication]]:
    """(opted out of SMS?, the messages sent to the patient, oldest first)."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        consent = await session.scalar(
            select(ChannelConsent.opted_out).where(
                ChannelConsent.patient_id == patient.id, ChannelConsent.channel == "sms"
            )
        )
        sent = await session.scalars(
            select(Communication)
            .where(Communication.patient_id == patient.id, Communication.direction == "outbound")
            .order_by(Communication.created_at)
        )
        return consent, list(sent)


async def test_baja_opts_out_with_a_spanish_confirmation_and_alta_opts_back_in(
    client, providers_configured, make_patient, system_sessionmaker, tenant_id
) -> None:
    patient = await make_patient(preferred_language="es", preferred_channel="sms")
    await _text(client, patient, "Baja")
    opted_out, [confirmation] = await _state(system_sessionmaker, tenant_id, patient)
    assert opted_out is True
    assert (confirmation.template_name, confirmation.language) == ("consent_opt_out", "es")
    assert confirmation.message.startswith("Ya no recibirá mensajes de Test Clinic por este canal.")

    await _text(client, patient, "ALTA")
    opted_out, sent = await _state(system_sessionmaker, tenant_id, patient)
    assert opted_out is False
    assert [(m.template_name, m.language) for m in sent] == [
        ("consent_opt_out", "es"),
        ("consent_opt_in", "es"),
    ]


async def test_no_is_an_answer_never_an_opt_out(
    client, providers_configured, make_patient, system_sessionmaker, tenant_id
) -> None:
    patient = await make_patient(preferred_language="es", preferred_channel="sms")
    await _text(client, patient, "No")
    opted_out, sent = await _state(system_sessionmaker, tenant_id, patient)
    assert (opted_out, sent) == (None, [])
