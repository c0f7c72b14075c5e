"""The booking chat and the waitlist in the patient's language: their texts come from built-in templates
chosen along the patient's language chain (recorded in `communications.language`), their times are written
in that language, and the patient's answers are read in English or Spanish, accents and case ignored."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import httpx
import pytest
from sqlalchemy import select

from core.database import bind_tenant
from domain.communications.models import Communication
from domain.scheduling.booking import parse_choice
from domain.scheduling.waitlist import parse_answer
from tests.communications.support import set_default_language
from tests.communications.webhook_support import twilio_post
from tests.polling import eventually
from tests.scheduling.conftest import API, future
from tests.scheduling.waitlist_support import add_entry, booked_then_cancelled, offers

BASE = f"{API}/appointments"
# CLDR's abbreviated Spanish day and month names (Babel writes them; written out here to check it).
ES_DAYS = ["lun", "mar", "mié", "jue", "vie", "sáb", "dom"]
ES_MONTHS = ["ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic"]


def spanish_time(at: datetime) -> str:
    """`mar, 2 dic, 9:00`: how a Spanish chat message writes a time (the test tenant is on UTC)."""
    return f"{ES_DAYS[at.weekday()]}, {at.day} {ES_MONTHS[at.month - 1]}, {at.hour}:{at:%M}"


def mexican_time(at: datetime) -> str:
    """`mar 2 de dic, 9:00 a.m.`: how Mexican Spanish (`es-MX`) writes it, on a 12-hour clock."""
    hour, half = (at.hour % 12 or 12), ("a.m." if at.hour < 12 else "p.m.")
    return f"{ES_DAYS[at.weekday()]} {at.day} de {ES_MONTHS[at.month - 1]}, {hour}:{at:%M} {half}"


async def outbound(sessionmaker, tenant_id, patient_id) -> list[Communication]:
    """The messages sent to a patient, oldest first."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        rows = await session.scalars(
            select(Communication)
            .where(Communication.patient_id == patient_id, Communication.direction == "outbound")
            .order_by(Communication.created_at)
        )
        return list(rows)


# ---- reading replies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        ("SÍ", True),
        ("Sí, gracias", True),
        ("si", True),
        ("vale, la reservo", True),
        ("Yes please!", True),
        ("No, gracias", False),
        ("NO", False),
        ("paso", False),
        ("Y", True),
        ("¿y a qué hora?", None),  # Spanish "y" is "and": a one-letter answer counts only alone
        ("sí... bueno, no", None),
        ("quizás mañana", None),
    ],
)
def test_a_waitlist_answer_is_read_in_english_or_spanish_accents_and_case_ignored(
    reply: str, answer: bool | None
) -> None:
    assert parse_answer(reply) is answer


@pytest.mark.parametrize(
    ("reply", "choice"),
    [("la segunda", 2), ("La Tercera, por favor", 3), ("el 1º", 1), ("the second one", 2), ("cinco", None)],
)
def test_a_booking_choice_is_read_in_english_or_spanish(reply: str, choice: int | None) -> None:
    offered = [object(), object(), object()]  # only their count matters for words
    assert parse_choice(reply, offered, None) == choice  # type: ignore[arg-type]


# ---- the booking chat -----------------------------------------------------------------------------------


async def test_a_spanish_speaking_patient_is_offered_times_in_spanish_and_books_by_replying_in_spanish(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    make_patient,
    make_practitioner,
    make_slot,
    system_sessionmaker,
) -> None:
    patient = await make_patient(preferred_language="es-MX")
    practitioner = await make_practitioner(last_name="Ruiz", gender="female", speciality="Dermatology")
    starts = [future(days=2 + i, hour=9) for i in range(2)]
    slots = [await make_slot(practitioner["id"], start) for start in starts]
    found = (
        await client.post(f"{BASE}/find-slots", json={"patient_id": str(patient.id)}, headers=auth)
    ).json()
    not_understood = await client.post(
        f"{BASE}/select-slot",
        json={"conversation_id": found["conversation_id"], "reply": "¿y el jueves?"},
        headers=auth,
    )
    assert not_understood.json()["outcome"] == "not_understood"
    booked = await client.post(
        f"{BASE}/select-slot",
        json={"conversation_id": found["conversation_id"], "reply": "La segunda"},
        headers=auth,
    )
    assert booked.json()["appointment"]["time_slot_id"] == slots[1]["id"]

    options, retry, confirmation = await outbound(system_sessionmaker, tenant_id, patient.id)
    assert [(m.template_name, m.language) for m in (options, retry, confirmation)] == [
        ("booking_options", "es"),
        ("booking_not_understood", "es"),
        ("appointment_booked", "es"),
    ]
    assert options.message == (
        "Estas son las próximas horas disponibles:\n"
        f"1. {mexican_time(starts[0])} con Dra. Ruiz\n"
        f"2. {mexican_time(starts[1])} con Dra. Ruiz\n"
        "Responda con el número de la hora que prefiera."
    )
    assert retry.message.startswith("Lo sentimos, no le hemos entendido.")
    assert confirmation.message.startswith("Su cita queda reservada para el ")


async def test_an_english_speaking_patient_gets_the_booking_chat_as_before(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    make_patient,
    make_practitioner,
    make_slot,
    system_sessionmaker,
) -> None:
    patient = await make_patient()
    practitioner = await make_practitioner(last_name="Lovelace")
    start = future(days=2, hour=9)
    await make_slot(practitioner["id"], start)
    await client.post(f"{BASE}/find-slots", json={"patient_id": str(patient.id)}, headers=auth)

    [options] = await outbound(system_sessionmaker, tenant_id, patient.id)
    assert (options.template_name, options.language) == ("booking_options", "en")
    assert options.message == (
        "Here are the next available times:\n"
        f"1. {start:%a} {start.day} {start:%b}, 9:00 AM with Dr. Lovelace\n"
        "Reply with the number of the time you want."
    )


@pytest.mark.parametrize(("tenant_language", "expected"), [("es", "es"), ("en", "en")])
async def test_a_language_without_texts_falls_back_to_the_tenants_default_then_english(
    client: httpx.AsyncClient,
    auth: dict,
    tenant_id,
    make_patient,
    make_practitioner,
    make_slot,
    system_sessionmaker,
    tenant_language: str,
    expected: str,
) -> None:
    await set_default_language(system_sessionmaker, tenant_id, tenant_language)
    patient = await make_patient(preferred_language="fr-CA")  # no French texts
    await client.post(f"{BASE}/find-slots", json={"patient_id": str(patient.id)}, headers=auth)

    [nothing_open] = await outbound(system_sessionmaker, tenant_id, patient.id)
    assert (nothing_open.template_name, nothing_open.language) == ("booking_no_slots", expected)
    opening = {"es": "Lo sentimos, ahora mismo no hay horas", "en": "Sorry, there are no open times"}
    assert nothing_open.message.startswith(opening[expected])


# ---- the waitlist ---------------------------------------------------------------------------------------


async def test_a_spanish_speaking_patient_gets_a_spanish_offer_and_books_it_by_texting_si(
    client: httpx.AsyncClient,
    auth: dict,
    app,
    tenant_id,
    temporal_env,
    temporal_worker,
    providers_configured,
    system_sessionmaker,
    make_patient,
    make_practitioner,
    make_slot,
    book,
) -> None:
    practitioner = await make_practitioner(last_name="Ruiz", gender="male")
    waiting = await make_patient(
        phone_primary="+14155550341", preferred_language="es", preferred_channel="sms"
    )
    await add_entry(client, auth, waiting.id, practitioner_id=practitioner["id"])
    cancelled = await booked_then_cancelled(client, auth, book, make_patient, make_slot, practitioner["id"])

    async def offered():
        return [o for o in await offers(system_sessionmaker, tenant_id) if o.status == "offered"]

    [offer] = await eventually(offered, "an open offer")
    [offer_message] = await outbound(system_sessionmaker, tenant_id, waiting.id)
    assert (offer_message.template_name, offer_message.language) == ("waitlist_offer", "es")
    start = datetime.fromisoformat(cancelled["start_time"])
    assert offer_message.message == (
        f"Buenas noticias: ha quedado libre una cita antes, el {spanish_time(start)} con Dr. Ruiz. "
        "Responda SÍ para reservarla o NO para dejarla pasar. Se la guardamos durante 30 minutos."
    )

    async def text(body: str) -> None:
        form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": waiting.phone_primary, "To": "+14155550000"}
        assert (await twilio_post(client, "/twilio/messages", {**form, "Body": body})).status_code == 200

    await text("¿qué hora?")
    await eventually(
        lambda: _sent(system_sessionmaker, tenant_id, waiting.id, "waitlist_not_understood"), "the retry"
    )
    await text("SÍ")  # an opt-in word too, but the patient never opted out: it answers the offer
    handle = temporal_env.client.get_workflow_handle(f"waitlist-backfill-{cancelled['id']}")
    assert await asyncio.wait_for(handle.result(), 15) == "booked"

    [accepted] = await offers(system_sessionmaker, tenant_id, id=offer.id)
    assert accepted.status == "accepted"
    sent = await outbound(system_sessionmaker, tenant_id, waiting.id)
    assert [(m.template_name, m.language) for m in sent] == [
        ("waitlist_offer", "es"),
        ("waitlist_not_understood", "es"),
        ("appointment_booked", "es"),
    ]
    assert sent[1].message == (
        "Lo sentimos, no le hemos entendido. Responda SÍ para reservarla o NO para dejarla pasar."
    )


async def _sent(sessionmaker, tenant_id, patient_id, template_name: str) -> bool:
    return any(m.template_name == template_name for m in await outbound(sessionmaker, tenant_id, patient_id))
