"""`POST /hl7/v2`: a refused message is recorded so a resend gets the same ACK, a control id reused for
another message is refused naming the conflict, and MSH-18 says how the bytes are decoded. Sent as an EHR
would (an integration client's token, ER7 bodies), against the real database."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.enums import AppointmentStatus
from domain.hl7.messages import normalise
from domain.hl7.models import Hl7Message
from domain.patients.models import Patient
from domain.scheduling.models import Appointment
from tests.integrations.hl7_messages import adt, control_id, count, message, msh, segments, send, siu

SessionOf = Callable[[], AsyncSession]


def with_charset(body: str, charset: str) -> str:
    """The message with MSH-18 (character set) set."""
    header, _, rest = body.partition("\r")
    return f"{header}||||||{charset}\r{rest}"


async def stored(session_of: SessionOf, control: str) -> Hl7Message:
    """The tenant's record of a control id."""
    async with session_of() as session:
        row = await session.scalar(select(Hl7Message).where(Hl7Message.control_id == control))
    assert row is not None
    return row


# ---- refusals are recorded -----------------------------------------------------------------------------


async def test_a_refused_message_resent_gets_the_same_ack_and_is_not_applied_later(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: SessionOf
) -> None:
    start = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    cancel = siu("S15", "MRN7001", "APPT-7001", start, control="CANCEL-7001")

    refused = await send(client, hl7_auth, cancel)  # the appointment is not known yet: AE
    booked = await send(client, hl7_auth, siu("S12", "MRN7001", "APPT-7001", start))
    resent = await send(client, hl7_auth, cancel)

    assert segments(refused.text)["MSA"][1] == "AE"
    assert segments(booked.text)["MSA"][1] == "AA"
    assert resent.text == refused.text  # word for word: the recorded answer, not a second try
    async with session_of() as session:
        [appointment] = (await session.scalars(select(Appointment))).all()
    assert appointment.status != AppointmentStatus.CANCELLED.value
    row = await stored(session_of, "CANCEL-7001")
    assert (row.ack_code, row.message_type) == ("AE", "SIU^S15")
    assert "Doe" not in row.ack and "MRN7001" not in row.ack  # the record holds our verdict, no PHI


async def test_a_refusal_without_a_readable_control_id_is_not_recorded(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: SessionOf
) -> None:
    response = await send(client, hl7_auth, "this is not hl7")

    assert segments(response.text)["MSA"][1] == "AR"
    assert await count(session_of, Hl7Message) == 0


# ---- a control id reused for another message -------------------------------------------------------------


async def test_a_control_id_reused_for_another_message_is_refused_naming_the_conflict(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: SessionOf
) -> None:
    first = await send(client, hl7_auth, adt("A04", "MRN7101", control="REUSED-7101"))
    other = await send(client, hl7_auth, adt("A08", "MRN7101", control="REUSED-7101", family="Roe"))

    assert segments(first.text)["MSA"][1] == "AA"
    ack = segments(other.text)
    assert ack["MSA"][1] == "AR"
    assert ack["MSA"][2] == "REUSED-7101"
    assert "MSH-10" in ack["MSA"][3] and "different message" in ack["MSA"][3]
    assert ack["ERR"][3].startswith("205^")  # duplicate key identifier
    async with session_of() as session:
        [patient] = (await session.scalars(select(Patient))).all()
    assert patient.last_name == "Doe"  # the second message was not applied
    assert (await stored(session_of, "REUSED-7101")).ack == first.text  # the first answer stays


async def test_a_control_id_of_a_refused_message_reused_for_another_is_refused_too(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: SessionOf
) -> None:
    await send(client, hl7_auth, message(msh("ADT^A04", "REUSED-7201"), "PID|1||||Doe^John"))  # AE: no PID-3

    other = await send(client, hl7_auth, adt("A04", "MRN7201", control="REUSED-7201"))

    assert segments(other.text)["MSA"][1] == "AR"
    assert segments(other.text)["ERR"][3].startswith("205^")
    assert await count(session_of, Patient) == 0
    assert (await stored(session_of, "REUSED-7201")).ack_code == "AE"


# ---- MSH-18: the character set -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("charset", "encoding"),
    [("8859/1", "iso-8859-1"), ("UNICODE UTF-8", "utf-8"), ("8859/15", "iso-8859-15")],
)
async def test_a_message_is_decoded_by_the_character_set_msh_18_declares(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: SessionOf, charset: str, encoding: str
) -> None:
    body = with_charset(adt("A04", "MRN7301", family="Müller", given="Zoë"), charset)

    # The transport says UTF-8 (an MLLP listener's default): the message's own declaration wins.
    response = await send(client, hl7_auth, body.encode(encoding), "application/hl7-v2; charset=utf-8")

    assert segments(response.text)["MSA"][1] == "AA"
    async with session_of() as session:
        [patient] = (await session.scalars(select(Patient))).all()
    assert (patient.last_name, patient.first_name) == ("Müller", "Zoë")


async def test_an_ascii_message_is_accepted_and_non_ascii_bytes_in_it_are_an_ar(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: SessionOf
) -> None:
    plain = await send(client, hl7_auth, with_charset(adt("A04", "MRN7401"), "ASCII"))
    accented = with_charset(adt("A04", "MRN7402", family="Müller"), "ASCII").encode("iso-8859-1")

    refused = await send(client, hl7_auth, accented)

    assert segments(plain.text)["MSA"][1] == "AA"
    ack = segments(refused.text)
    assert ack["MSA"][1] == "AR"
    assert "MSH-18" in ack["MSA"][3]
    assert ack["ERR"][2] == "MSH^1^18"
    assert await count(session_of, Patient) == 1


async def test_a_nul_escape_in_a_name_is_an_ae_and_the_stored_patient_is_kept(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: SessionOf
) -> None:
    registered = await send(client, hl7_auth, adt("A04", "MRN7451", family="Lovelace", given="Ada"))
    assert segments(registered.text)["MSA"][1] == "AA"

    updated = await send(client, hl7_auth, adt("A08", "MRN7451", family="Love\\X00\\lace", given="Ada"))
    created = await send(client, hl7_auth, adt("A04", "MRN7452", family="Nul\\X00\\l", given="Zed"))

    for response in (updated, created):
        assert response.status_code == 200
        ack = segments(response.text)
        assert ack["MSA"][1] == "AE"
        assert "PID-5" in ack["MSA"][3] and "NUL" in ack["MSA"][3]
        assert ack["ERR"][3].startswith("102^")  # data type error
        assert "Love" not in response.text and "Nul" not in response.text  # no value echoed
    async with session_of() as session:
        [patient] = (await session.scalars(select(Patient))).all()
    assert (patient.last_name, patient.first_name) == ("Lovelace", "Ada")


async def test_an_unknown_character_set_is_an_ar_with_a_clear_reason(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: SessionOf
) -> None:
    control = control_id()
    body = with_charset(adt("A04", "MRN7501", control=control), "EBCDIC")

    response = await send(client, hl7_auth, body)

    ack = segments(response.text)
    assert ack["MSA"][1] == "AR"
    assert ack["MSA"][2] == control  # the header was still read and echoed
    assert "MSH-18" in ack["MSA"][3] and "UNICODE UTF-8" in ack["MSA"][3]
    assert ack["ERR"][3].startswith("103^")  # table value not found
    assert await count(session_of, Patient) == 0


async def test_latin_1_bytes_without_msh_18_follow_the_content_type_charset_else_are_an_ar(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: SessionOf
) -> None:
    undeclared = adt("A04", "MRN7601", family="Müller").encode("iso-8859-1")
    later = adt("A04", "MRN7602", family="Müller").encode("iso-8859-1")

    as_utf8 = await send(client, hl7_auth, undeclared)  # no charset anywhere: UTF-8, which these are not
    as_latin1 = await send(client, hl7_auth, later, "application/hl7-v2; charset=ISO-8859-1")

    ack = segments(as_utf8.text)
    assert ack["MSA"][1] == "AR"
    assert ack["MSA"][2] == segments(undeclared.decode("iso-8859-1"))["MSH"][9]
    assert "UTF-8" in ack["MSA"][3]
    assert segments(as_latin1.text)["MSA"][1] == "AA"
    async with session_of() as session:
        assert (await session.scalars(select(Patient.last_name))).all() == ["Müller"]


async def test_a_message_recorded_with_a_whole_text_digest_is_still_a_repeat(
    client: httpx.AsyncClient, hl7_auth: dict[str, str], session_of: SessionOf
) -> None:
    body = adt("A04", "MRN7801", control="LEGACY-7801")
    first = await send(client, hl7_auth, body)
    async with session_of() as session:  # recorded as before MSH-7 was left out of the digest
        row = await session.scalar(select(Hl7Message).where(Hl7Message.control_id == "LEGACY-7801"))
        assert row is not None
        row.digest = hashlib.sha256(normalise(body).encode()).hexdigest()
        await session.commit()

    resent = await send(client, hl7_auth, body)

    assert segments(first.text)["MSA"][1] == "AA"
    assert resent.text == first.text
