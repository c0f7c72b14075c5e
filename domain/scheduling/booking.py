"""Conversational booking (WhatsApp): offer held slots, read the reply, book through the safe path.

A conversation offers a numbered list of open slots and holds them (other conversations are not offered
them) until it expires; its durable workflow (`booking-conversation-<id>`) releases the holds on expiry.
The reply is booked through `service.book`, the same conflict-safe path as every booking, so when two
patients pick the same time one gets it and the other is offered the next options.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import languages
from core.errors import Conflict, NotFound
from domain.communications import reply_words
from domain.enums import Channel, PatientStatus
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.practitioners.repository import PractitionerRepository
from domain.scheduling import notifications, service, workflow_jobs
from domain.scheduling.booking_schemas import (
    FindSlotsRequest,
    FindSlotsResponse,
    OfferedSlot,
    SelectSlotOutcome,
    SelectSlotRequest,
    SelectSlotResponse,
)
from domain.scheduling.models import BookingConversation, SlotHold, TimeSlot
from domain.scheduling.repository import TimeSlotRepository, tenant_timezone
from domain.scheduling.schemas import AppointmentResponse
from domain.scheduling.slot_schemas import PartOfDay
from domain.scheduling.slots import PARTS_OF_DAY

CANDIDATES = 200
TIME_RE = re.compile(r"\b(\d{1,2})(?::|\.|h)(\d{2})\s*(am|pm)?\b|\b(\d{1,2})\s*(am|pm)\b", re.IGNORECASE)


def conversation_workflow_id(conversation_id: uuid.UUID) -> str:
    """`booking-conversation-<uuid>`: one workflow per conversation."""
    return f"booking-conversation-{conversation_id}"


async def _patient(session: AsyncSession, patient_id: uuid.UUID | None, phone: str | None) -> Patient:
    stmt = select(Patient).where(Patient.status == PatientStatus.ACTIVE.value)
    stmt = stmt.where(Patient.id == patient_id) if patient_id else stmt.where(Patient.phone_primary == phone)
    patient = (await session.scalars(stmt.order_by(Patient.created_at).limit(1))).first()
    if patient is None:
        raise NotFound("Patient not found.")
    return patient


async def _offer(
    session: AsyncSession, conversation: BookingConversation, *, exclude: set[uuid.UUID] | None = None
) -> list[TimeSlot]:
    """Pick up to `max_options` slots matching the conversation's criteria, not held by anyone else."""
    criteria = conversation.criteria
    practitioner_ids: list[uuid.UUID] | None = None
    if criteria.get("practitioner_id"):
        practitioner_ids = [uuid.UUID(criteria["practitioner_id"])]
    elif criteria.get("speciality"):
        rows = await session.scalars(
            select(Practitioner.id).where(
                func.lower(Practitioner.speciality) == criteria["speciality"].lower(), Practitioner.is_active
            )
        )
        practitioner_ids = list(rows)
    tz = ZoneInfo(await tenant_timezone(session, conversation.tenant_id))
    start_from = start_before = None
    if criteria.get("start_date"):
        start_from = datetime.combine(date.fromisoformat(criteria["start_date"]), time(), tz)
    if criteria.get("end_date"):
        start_before = datetime.combine(
            date.fromisoformat(criteria["end_date"]) + timedelta(days=1), time(), tz
        )
    stmt = TimeSlotRepository(session).offerable(
        now=datetime.now(UTC),
        practitioner_ids=practitioner_ids,
        start_from=start_from,
        start_before=start_before,
        exclude_conversation_id=conversation.id,
    )
    part = PartOfDay(criteria.get("part_of_day", PartOfDay.ANY.value))
    chosen: list[TimeSlot] = []
    for slot in (await session.scalars(stmt.limit(CANDIDATES))).all():
        if exclude and slot.id in exclude:
            continue
        if part != PartOfDay.ANY:
            low, high = PARTS_OF_DAY[part]
            if not low <= slot.start_time.astimezone(tz).time() < high:
                continue
        chosen.append(slot)
        if len(chosen) >= int(criteria.get("max_options", 3)):
            break
    return chosen


async def _hold(session: AsyncSession, conversation: BookingConversation, slots: list[TimeSlot]) -> None:
    """Replace the conversation's holds with holds on `slots`, until a fresh expiry."""
    await release_holds(session, conversation.id)
    conversation.expires_at = datetime.now(UTC) + timedelta(minutes=conversation.hold_minutes)
    conversation.offered_slot_ids = [str(s.id) for s in slots]
    session.add_all(
        SlotHold(time_slot_id=s.id, conversation_id=conversation.id, expires_at=conversation.expires_at)
        for s in slots
    )
    await session.flush()


async def release_holds(session: AsyncSession, conversation_id: uuid.UUID) -> None:
    """Release every live hold of a conversation."""
    await session.execute(
        update(SlotHold)
        .where(SlotHold.conversation_id == conversation_id, SlotHold.released_at.is_(None))
        .values(released_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )


def _options(slots: list[TimeSlot]) -> list[OfferedSlot]:
    return [
        OfferedSlot(
            option=n,
            time_slot_id=s.id,
            practitioner_id=s.practitioner_id,
            location_id=s.location_id,
            start_time=s.start_time,
            end_time=s.end_time,
        )
        for n, s in enumerate(slots, start=1)
    ]


def _next_message_key(conversation: BookingConversation, kind: str) -> str:
    count = int(conversation.criteria.get("messages", 0)) + 1
    conversation.criteria = {**conversation.criteria, "messages": count}
    return f"booking:{conversation.id}:{count}:{kind}"


async def _send_options(
    session: AsyncSession,
    conversation: BookingConversation,
    patient: Patient,
    slots: list[TimeSlot],
    template_name: str,
) -> bool:
    """The numbered list of `slots` (`booking_options`, or `booking_slot_taken` after a clash), or
    `booking_no_slots` when there are none."""
    return await notifications.send_conversational(
        session,
        patient=patient,
        template_name=template_name if slots else "booking_no_slots",
        variables=await notifications.offered_options(session, slots) if slots else None,
        key=_next_message_key(conversation, "options"),
        channel=Channel(conversation.channel),
    )


async def find_slots(session: AsyncSession, data: FindSlotsRequest) -> FindSlotsResponse:
    """Start a conversation: find open slots, hold them, send the numbered list, start its workflow."""
    patient = await _patient(session, data.patient_id, data.phone)
    if data.practitioner_id is not None:
        await PractitionerRepository(session).get_or_404(data.practitioner_id)
    for previous in (
        await session.scalars(
            select(BookingConversation).where(
                BookingConversation.patient_id == patient.id, BookingConversation.status == "active"
            )
        )
    ).all():
        previous.status = "closed"
        await release_holds(session, previous.id)
    conversation = BookingConversation(
        id=uuid.uuid4(),
        patient_id=patient.id,
        channel=data.channel.value,
        status="active",
        criteria=data.model_dump(
            mode="json",
            include={"practitioner_id", "speciality", "start_date", "end_date", "part_of_day", "max_options"},
        ),
        hold_minutes=data.hold_minutes,
        expires_at=datetime.now(UTC) + timedelta(minutes=data.hold_minutes),
    )
    conversation.workflow_id = conversation_workflow_id(conversation.id)
    session.add(conversation)
    await session.flush()
    slots = await _offer(session, conversation)
    await _hold(session, conversation, slots)
    if not slots:
        conversation.status = "closed"
    sent = await _send_options(session, conversation, patient, slots, "booking_options")
    await session.flush()
    if slots:
        workflow_jobs.start_conversation_workflow(session, conversation)
    return FindSlotsResponse(
        conversation_id=conversation.id,
        patient_id=patient.id,
        status=conversation.status,
        expires_at=conversation.expires_at,
        options=_options(slots),
        message_sent=sent,
    )


def parse_choice(reply: str, offered: list[TimeSlot], tz: ZoneInfo) -> int | None:
    """The option number a reply names in any language of `reply_words` ("2", "the second one", "la
    segunda", "14:30", "2pm"), or None."""
    text = languages.fold(reply.strip())
    if text.isdigit():
        number = int(text)
        return number if 1 <= number <= len(offered) else None
    for word in languages.words(text):
        place = reply_words.ordinal_of(word)
        if place is not None and place <= len(offered):
            return place
    match = TIME_RE.search(text)
    if match:
        hour = int(match.group(1) or match.group(4))
        minute = int(match.group(2) or 0)
        meridiem = (match.group(3) or match.group(5) or "").lower()
        if meridiem == "pm" and hour < 12:
            hour += 12
        if meridiem == "am" and hour == 12:
            hour = 0
        for number, slot in enumerate(offered, start=1):
            local = slot.start_time.astimezone(tz)
            if (local.hour, local.minute) == (hour, minute):
                return number
    return None


async def _conversation_for(session: AsyncSession, data: SelectSlotRequest) -> BookingConversation:
    if data.conversation_id is not None:
        found = await session.scalar(
            select(BookingConversation).where(BookingConversation.id == data.conversation_id)
        )
    else:
        patient = await _patient(session, data.patient_id, data.phone)
        found = (
            await session.scalars(
                select(BookingConversation)
                .where(BookingConversation.patient_id == patient.id)
                .order_by(BookingConversation.created_at.desc())
                .limit(1)
            )
        ).first()
    if found is None:
        raise NotFound("Booking conversation not found.")
    return found


async def select_slot(session: AsyncSession, data: SelectSlotRequest) -> SelectSlotResponse:
    """Book the option the patient's reply names, or say it was not understood, or re-offer if it is gone."""
    conversation = await _conversation_for(session, data)
    return await handle_reply(session, conversation, data.reply)


async def handle_reply(
    session: AsyncSession, conversation: BookingConversation, reply: str
) -> SelectSlotResponse:
    """The one place a patient's reply to a conversation is acted on (API and inbound webhook alike)."""
    if conversation.status != "active" or conversation.expires_at <= datetime.now(UTC):
        raise Conflict("This booking conversation has ended; ask for new times.")
    patient = await session.scalar(select(Patient).where(Patient.id == conversation.patient_id))
    assert patient is not None
    ids = [uuid.UUID(i) for i in conversation.offered_slot_ids]
    by_id = {s.id: s for s in (await session.scalars(select(TimeSlot).where(TimeSlot.id.in_(ids)))).all()}
    offered = [by_id[i] for i in ids if i in by_id]
    tz = ZoneInfo(await tenant_timezone(session, conversation.tenant_id))
    choice = parse_choice(reply, offered, tz)
    if choice is None:
        await notifications.send_conversational(
            session,
            patient=patient,
            template_name="booking_not_understood",
            key=_next_message_key(conversation, "not_understood"),
            channel=Channel(conversation.channel),
        )
        await session.flush()
        return _response(conversation, SelectSlotOutcome.NOT_UNDERSTOOD, offered)
    slot = offered[choice - 1]
    try:
        async with session.begin_nested():
            appointment = await service.book(
                session, patient_id=patient.id, time_slot_id=slot.id, source_channel=conversation.channel
            )
    except Conflict:
        remaining = [s for s in offered if s.id != slot.id]
        fresh = await _offer(session, conversation, exclude={slot.id} | {s.id for s in remaining})
        slots = (remaining + fresh)[: int(conversation.criteria.get("max_options", 3))]
        await _hold(session, conversation, slots)
        if not slots:
            conversation.status = "closed"
        await _send_options(session, conversation, patient, slots, "booking_slot_taken")
        await session.flush()
        workflow_jobs.signal_conversation(session, conversation)
        outcome = SelectSlotOutcome.SLOT_TAKEN if slots else SelectSlotOutcome.NO_SLOTS
        return _response(conversation, outcome, slots)
    conversation.status, conversation.appointment_id = "booked", appointment.id
    await release_holds(session, conversation.id)
    await notifications.send_confirmation(
        session, patient=patient, appointment=appointment, key=f"booking:{conversation.id}:confirmation"
    )
    await session.flush()
    await workflow_jobs.start_appointment_workflow(session, appointment)
    workflow_jobs.signal_conversation(session, conversation)
    response = _response(conversation, SelectSlotOutcome.BOOKED, [])
    response.appointment = AppointmentResponse.model_validate(appointment)
    return response


def _response(
    conversation: BookingConversation, outcome: SelectSlotOutcome, slots: list[TimeSlot]
) -> SelectSlotResponse:
    return SelectSlotResponse(
        conversation_id=conversation.id,
        outcome=outcome,
        status=conversation.status,
        options=_options(slots),
        expires_at=conversation.expires_at if conversation.status == "active" else None,
    )


async def expire_conversation(
    session: AsyncSession, conversation_id: uuid.UUID, expected_expiry: str
) -> tuple[str, datetime]:
    """Expire a conversation whose offer ran out and release its holds; returns its (status, expiry).

    Nothing changes when it was extended or ended meanwhile: the caller gets the state to follow instead.
    """
    conversation = await session.scalar(
        select(BookingConversation).where(BookingConversation.id == conversation_id)
    )
    if conversation is None:
        return "closed", datetime.fromisoformat(expected_expiry)
    if conversation.status == "active" and conversation.expires_at.isoformat() == expected_expiry:
        conversation.status = "expired"
        await release_holds(session, conversation.id)
        await session.flush()
    return conversation.status, conversation.expires_at


async def reply_from_message(
    session: AsyncSession, conversation_id: uuid.UUID, communication_id: uuid.UUID
) -> tuple[str, datetime]:
    """Handle a stored inbound message as the conversation's reply; returns its (status, expiry)."""
    from domain.communications.models import Communication

    conversation = await session.scalar(
        select(BookingConversation).where(BookingConversation.id == conversation_id)
    )
    message = await session.scalar(select(Communication).where(Communication.id == communication_id))
    if conversation is None:
        return "closed", datetime.now(UTC)
    if message is not None and conversation.status == "active":
        try:
            await handle_reply(session, conversation, message.message)
        except Conflict:
            pass  # ended meanwhile
    return conversation.status, conversation.expires_at
