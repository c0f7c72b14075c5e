"""SIU (scheduling) messages: S12 new, S13 reschedule, S14 modify, S15 cancel (S17, a deletion, cancels
too), S26 no-show, mapped onto
appointments through the scheduling services the API uses (booking, the lifecycle), so reminders,
cancellations (the appointment's workflow gets its command) and events follow as they do for the API.

An appointment is named by its placer (SCH-1) and filler (SCH-2) ids, kept as the appointment's external
identifiers (system: the id's namespace, EI-2, else `<sending facility>.placer|filler`). Its time is SCH-11
(TQ-4 start, TQ-5 end) or the first AIS/AIP/AIL (start, duration and units; a time without an offset is
the feed's local time); its practitioner AIP-3 (else
PV1-7), its type SCH-8, its reason SCH-7, its location AIL-3 (by name; one we do not know is registered, as
an unknown AIP-3 practitioner is: an appointment the EHR booked is kept with where it happens).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.enums import AppointmentStatus
from domain.fhir.identifiers import APPOINTMENT_IDS
from domain.hl7.messages import ErrorCode, Hl7Error, Parsed, Segment, missing
from domain.hl7.patients import default_system, upsert_patient
from domain.hl7.resources import find_location, location_for, practitioner_for
from domain.integrations.schemas import CodeKind
from domain.scheduling import lifecycle
from domain.scheduling.models import Appointment
from domain.scheduling.schemas import AppointmentDirectCreate, AppointmentUpdate
from domain.scheduling.service import book_appointment

SOURCE = "hl7"
S = AppointmentStatus
UNITS = {"S": 1, "SEC": 1, "M": 60, "MIN": 60, "H": 3600, "HR": 3600, "HOUR": 3600, "D": 86400}
DEFAULT_UNIT = 60  # HL7 durations default to minutes


def appointment_identifiers(parsed: Parsed) -> list[tuple[str, str]]:
    """The placer (SCH-1) and filler (SCH-2) appointment ids as (system, value)."""
    sch = parsed.required("SCH")
    found = []
    for field, role in ((1, "placer"), (2, "filler")):
        value = sch.value(field, 1)
        if value:
            system = sch.value(field, 2) or f"{default_system(parsed)}.{role}"
            found.append((system[:255], value[:255]))
    if not found:
        raise missing("SCH-1", "the placer or filler appointment id")
    return found


async def find_appointment(session: AsyncSession, ids: list[tuple[str, str]]) -> Appointment | None:
    """The appointment (of the session's tenant) these identifiers name; AE when they name two."""
    found = {await APPOINTMENT_IDS.find(session, system, value) for system, value in ids} - {None}
    if len(found) > 1:
        raise Hl7Error(
            "SCH-1 and SCH-2 name different appointments.", code=ErrorCode.DUPLICATE_KEY, location="SCH-1"
        )
    if not found:
        return None
    return await session.scalar(select(Appointment).where(Appointment.id == found.pop()))


async def _claim(session: AsyncSession, appointment_id: uuid.UUID, ids: list[tuple[str, str]]) -> None:
    for system, value in ids:
        if await APPOINTMENT_IDS.find(session, system, value) is None:
            await APPOINTMENT_IDS.add(session, appointment_id, system, value)


def _duration(segment: Segment, field: int, units_field: int) -> timedelta | None:
    raw = segment.value(field)
    if not raw:
        return None
    try:
        amount = float(raw)
    except ValueError as exc:
        raise Hl7Error(
            f"{segment.id}-{field} is not a number.",
            code=ErrorCode.DATA_TYPE,
            location=f"{segment.id}-{field}",
        ) from exc
    unit = UNITS.get(segment.value(units_field, 1).upper(), DEFAULT_UNIT)
    if amount <= 0 or amount * unit > 7 * 86400:
        raise Hl7Error(
            f"{segment.id}-{field} is not a duration an appointment can have.",
            code=ErrorCode.DATA_TYPE,
            location=f"{segment.id}-{field}",
        )
    return timedelta(seconds=amount * unit)


def times(parsed: Parsed) -> tuple[datetime, datetime]:
    """The appointment's start and end, from SCH-11 or the first resource segment that gives a start."""
    sch = parsed.required("SCH")
    start = parsed.timestamp(sch.value(11, 4), "SCH-11")
    end = parsed.timestamp(sch.value(11, 5), "SCH-11")
    length = _duration(sch, 9, 10)
    # AIS-4 start, AIS-7 duration, AIS-8 units; AIG/AIL/AIP: 6, 9, 10.
    for segment_id, (at, dur, unit) in (
        ("AIS", (4, 7, 8)),
        ("AIP", (6, 9, 10)),
        ("AIL", (6, 9, 10)),
        ("AIG", (6, 9, 10)),
    ):
        if start is not None:
            break
        for segment in parsed.segments(segment_id):
            start = parsed.timestamp(segment.value(at), f"{segment_id}-{at}")
            if start is not None:
                length = _duration(segment, dur, unit) or length
                break
    if start is None:
        raise missing("SCH-11", "the appointment's start (TQ-4), or AIS-4")
    if end is None and length is not None:
        end = start + length
    if end is None:
        raise missing("SCH-11", "the appointment's end (TQ-5) or a duration (SCH-9, AIS-7)")
    if end <= start:
        raise Hl7Error(
            "The appointment's end is not after its start.", code=ErrorCode.DATA_TYPE, location="SCH-11"
        )
    return start, end


def details(parsed: Parsed) -> dict[str, Any]:
    """Type (SCH-8, through the feed's appointment type code map: its code, then its text) and reason
    (SCH-7) of the appointment, as our fields."""
    sch = parsed.required("SCH")
    found: dict[str, Any] = {}
    code, text = sch.value(8, 1), sch.value(8, 2)
    kind = parsed.feed.mapped(CodeKind.APPOINTMENT_TYPE, code, text) or code or text
    if kind:
        found["appointment_type"] = kind[:64]
    reason = sch.value(7, 2) or sch.value(7, 1)
    if reason:
        found["reason_text"] = reason[:2000]
    return found


async def _practitioner_id(session: AsyncSession, parsed: Parsed) -> uuid.UUID:
    for aip in parsed.segments("AIP"):
        if aip.value(3, 1):
            return (await practitioner_for(session, parsed, aip, 3)).id
    pv1 = parsed.first("PV1")
    if pv1 is not None and pv1.value(7, 1):
        return (await practitioner_for(session, parsed, pv1, 7)).id
    raise missing("AIP-3", "the appointment's practitioner (or PV1-7)")


async def _location_id(session: AsyncSession, parsed: Parsed) -> uuid.UUID | None:
    """The first AIL-3 location we know; else the first AIL-3 one, registered (as AIP-3's practitioner is)."""
    ails = [ail for ail in parsed.segments("AIL") if ail.value(3, 1) or ail.value(3, 4, 1, 1)]
    for ail in ails:
        found = await find_location(session, ail, 3)
        if found is not None:
            return found
    return await location_for(session, ails[0], 3) if ails else None


async def _known(session: AsyncSession, parsed: Parsed) -> tuple[Appointment, list[tuple[str, str]]]:
    ids = appointment_identifiers(parsed)
    appointment = await find_appointment(session, ids)
    if appointment is None:
        raise Hl7Error(
            "SCH-1/SCH-2 name no appointment known here.", code=ErrorCode.UNKNOWN_KEY, location="SCH-1"
        )
    await _claim(session, appointment.id, ids)
    return appointment, ids


async def book(session: AsyncSession, parsed: Parsed) -> list[uuid.UUID]:
    """S12: book the appointment (an S12 for one we already have brings it up to date instead)."""
    ids = appointment_identifiers(parsed)
    existing = await find_appointment(session, ids)
    if existing is not None:
        await _claim(session, existing.id, ids)
        await _bring_up_to_date(session, parsed, existing)
        return [existing.patient_id]
    patient = (await upsert_patient(session, parsed)).patient
    start, end = times(parsed)
    try:
        data = AppointmentDirectCreate(
            patient_id=patient.id,
            practitioner_id=await _practitioner_id(session, parsed),
            location_id=await _location_id(session, parsed),
            start_time=start,
            end_time=end,
            source_channel=SOURCE,
            **details(parsed),
        )
    except ValidationError as exc:
        raise Hl7Error(
            "SCH: the appointment's details are not valid.", code=ErrorCode.DATA_TYPE, location="SCH"
        ) from exc
    appointment = await book_appointment(session, data)
    await _claim(session, appointment.id, ids)
    return [patient.id]


async def _bring_up_to_date(session: AsyncSession, parsed: Parsed, appointment: Appointment) -> None:
    """Apply what differs (details, then times) through the lifecycle, as a PATCH would."""
    changed: dict[str, Any] = {k: v for k, v in details(parsed).items() if getattr(appointment, k) != v}
    start, end = times(parsed)
    if (start, end) != (appointment.start_time, appointment.end_time):
        changed.update(start_time=start, end_time=end)
    location_id = await _location_id(session, parsed)
    if location_id is not None and location_id != appointment.location_id:
        changed["location_id"] = location_id
    if changed:
        await lifecycle.update_appointment(session, appointment.id, AppointmentUpdate(**changed))


async def reschedule(session: AsyncSession, parsed: Parsed) -> list[uuid.UUID]:
    """S13: the appointment moves to the time the message gives."""
    appointment, _ = await _known(session, parsed)
    await _bring_up_to_date(session, parsed, appointment)
    return [appointment.patient_id]


async def modify(session: AsyncSession, parsed: Parsed) -> list[uuid.UUID]:
    """S14: the appointment's details (and time) change."""
    appointment, _ = await _known(session, parsed)
    await _bring_up_to_date(session, parsed, appointment)
    return [appointment.patient_id]


async def cancel(session: AsyncSession, parsed: Parsed) -> list[uuid.UUID]:
    """S15: the appointment is cancelled through the API's cancel path: its reminders stop (its workflow gets
    the command), the patient is told, the freed time goes to the waitlist."""
    appointment, _ = await _known(session, parsed)
    if appointment.status == S.CANCELLED.value:
        return [appointment.patient_id]
    sch = parsed.required("SCH")
    reason = sch.value(6, 2) or sch.value(6, 1) or None
    await lifecycle.cancel_appointment(
        session, appointment.id, notify_patient=True, reason=reason[:2000] if reason else None
    )
    return [appointment.patient_id]


async def no_show(session: AsyncSession, parsed: Parsed) -> list[uuid.UUID]:
    """S26: the patient did not come (the appointment's reminders end; `appointment.no_show` follows)."""
    appointment, _ = await _known(session, parsed)
    if appointment.status == S.NO_SHOW.value:
        return [appointment.patient_id]
    await lifecycle.update_appointment(session, appointment.id, AppointmentUpdate(status=S.NO_SHOW))
    return [appointment.patient_id]
