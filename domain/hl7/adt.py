"""ADT (admission, discharge, transfer) messages: A01 admit, A03 discharge, A04 register, A08 update, A11
cancel admit, A13 cancel discharge and A40 merge, mapped onto patients and encounter events through the
domains' own services.

An admission or a discharge emits `encounter.admitted`/`encounter.discharged` with the facts a journey's
trigger matches: the procedures (PR1-3 codes and names, PR1-4 descriptions), the attending practitioner
(PV1-7) and their speciality, the hospital service (PV1-10), the location (PV1-3) and the patient class
(PV1-2). The event's record is the visit (PV1-19), so "once per triggering record" means once per visit.
A11/A13 take back the admission/discharge of the visit PV1-19 names: what its event triggered is undone
(`domain.journeys.trigger_withdraw`: a delayed start withdrawn, a running journey cancelled), and they emit
`encounter.admission_cancelled`/`encounter.discharge_cancelled` for the visit (with the facts of the event
taken back, when one was received), so a journey can start on the cancellation itself.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.events import DomainEvent, EventSource, EventType, emit
from domain.hl7.messages import ErrorCode, Hl7Error, Parsed, missing
from domain.hl7.patients import claim, find_by_identifiers, identifiers, upsert_patient
from domain.hl7.resources import find_location, find_practitioner
from domain.journeys.trigger_withdraw import withdraw_events
from domain.patients.repository import PatientRepository
from domain.records.merge import merge_patients
from domain.records.repository import PatientRecordRepository

MAX_PROCEDURES = 50


async def register(session: AsyncSession, parsed: Parsed) -> list[uuid.UUID]:
    """A04: register the patient, or bring the one PID-3 names up to date."""
    return [(await upsert_patient(session, parsed)).patient.id]


async def update(session: AsyncSession, parsed: Parsed) -> list[uuid.UUID]:
    """A08: update the patient PID-3 names (registering them when the feed never named them before)."""
    return [(await upsert_patient(session, parsed)).patient.id]


async def admit(session: AsyncSession, parsed: Parsed) -> list[uuid.UUID]:
    """A01: the patient is admitted; `encounter.admitted` with the encounter's facts."""
    return await _encounter(session, parsed, EventType.ENCOUNTER_ADMITTED, when_field=44)


async def discharge(session: AsyncSession, parsed: Parsed) -> list[uuid.UUID]:
    """A03: the patient is discharged; `encounter.discharged` with the encounter's facts (its procedures)."""
    return await _encounter(session, parsed, EventType.ENCOUNTER_DISCHARGED, when_field=45)


async def cancel_admit(session: AsyncSession, parsed: Parsed) -> list[uuid.UUID]:
    """A11: the admission of the visit PV1-19 names is cancelled; what its `encounter.admitted` started is
    undone, and `encounter.admission_cancelled` emitted."""
    return await _cancel_encounter(
        session, parsed, EventType.ENCOUNTER_ADMITTED, EventType.ENCOUNTER_ADMISSION_CANCELLED, "admission"
    )


async def cancel_discharge(session: AsyncSession, parsed: Parsed) -> list[uuid.UUID]:
    """A13: the discharge of the visit PV1-19 names is cancelled; what its `encounter.discharged` started
    (a recovery journey) is undone, and `encounter.discharge_cancelled` emitted."""
    return await _cancel_encounter(
        session, parsed, EventType.ENCOUNTER_DISCHARGED, EventType.ENCOUNTER_DISCHARGE_CANCELLED, "discharge"
    )


async def _cancel_encounter(
    session: AsyncSession, parsed: Parsed, type: EventType, cancelled: EventType, what: str
) -> list[uuid.UUID]:
    pid, pv1 = parsed.required("PID"), parsed.required("PV1")
    ids = identifiers(parsed, pid, 3)
    if not ids:
        raise missing("PID-3", "the patient identifier list")
    visit = pv1.value(19, 1)
    if not visit:
        raise missing("PV1-19", f"the visit number of the {what} to cancel")
    patient = await find_by_identifiers(session, ids, "PID-3")
    events = []
    if patient is not None:
        events = list(
            (
                await session.scalars(
                    select(DomainEvent)
                    .where(
                        DomainEvent.type == type.value,
                        DomainEvent.patient_id == patient.id,
                        DomainEvent.subject_type == "encounter",
                        DomainEvent.subject_id == visit[:100],
                    )
                    .order_by(DomainEvent.id)
                )
            ).all()
        )
        await emit(
            session,
            type=cancelled,
            patient_id=patient.id,
            subject=("encounter", visit[:100]),
            facts=events[-1].facts if events else {},
            source=EventSource.HL7,
            dedupe_key=dedupe_key(parsed),
        )
    if not events:  # nothing of it reached us (or it was purged): nothing to undo, and no reason to resend
        parsed.warn(
            "PV1-19", f"No {what} of this visit was received here: nothing to cancel.", ErrorCode.UNKNOWN_KEY
        )
        return [patient.id] if patient is not None else []
    trigger = parsed.header.trigger
    done = await withdraw_events(session, events, f"The EHR cancelled the {what} ({trigger}).")
    if done.journeys_finished:
        parsed.warn(
            "PV1-19",
            f"A journey the {what} started had already finished: it was left as it is.",
            ErrorCode.APPLICATION_ERROR,
        )
    assert patient is not None
    return [patient.id]


def dedupe_key(parsed: Parsed) -> str:
    """The events' dedupe key: the message's control id (hashed when too long for the column)."""
    key = f"hl7:{parsed.header.control_id}"
    return key if len(key) <= 200 else "hl7:" + hashlib.sha256(parsed.header.control_id.encode()).hexdigest()


async def _encounter(
    session: AsyncSession, parsed: Parsed, type: EventType, *, when_field: int
) -> list[uuid.UUID]:
    result = await upsert_patient(session, parsed)
    pv1 = parsed.required("PV1")
    facts: dict[str, Any] = {
        "encounter_class": pv1.value(2) or None,
        "hospital_service": pv1.value(10) or None,
        "location": "^".join(v for v in (pv1.value(3, 1), pv1.value(3, 2), pv1.value(3, 3)) if v) or None,
        "location_id": await find_location(session, pv1, 3),
    }
    attending = await find_practitioner(session, parsed, pv1, 7)
    if attending is not None:
        facts["practitioner_id"] = attending.id
    facts["speciality"] = (attending.speciality if attending else None) or facts["hospital_service"]
    codes: list[str] = []
    names: list[str] = []
    for pr1 in parsed.segments("PR1")[:MAX_PROCEDURES]:
        if pr1.value(3, 1):
            codes.append(pr1.value(3, 1)[:100])
        for name in (pr1.value(3, 2), pr1.value(4)):
            if name:
                names.append(name[:200])
    facts["procedure_codes"] = list(dict.fromkeys(codes))
    facts["procedure_names"] = list(dict.fromkeys(names))
    visit = pv1.value(19, 1)
    occurred = parsed.timestamp(pv1.value(when_field), f"PV1-{when_field}")
    if occurred is not None and occurred > datetime.now(UTC):
        occurred = None  # an EHR clock ahead of ours: the event happened now, not later
    await emit(
        session,
        type=type,
        patient_id=result.patient.id,
        subject=("encounter", visit[:100] if visit else f"hl7:{parsed.header.control_id}"[:100]),
        facts={k: v for k, v in facts.items() if v not in (None, [])},
        source=EventSource.HL7,
        dedupe_key=dedupe_key(parsed),
        occurred_at=occurred,
    )
    return [result.patient.id]


async def merge(session: AsyncSession, parsed: Parsed) -> list[uuid.UUID]:
    """A40: the patient MRG-1 names is merged into the one PID-3 names, through the records' merge (its
    appointments, journeys, messages and consents move; the merged record is retired). When PID-3 names no
    patient here yet, the MRG-1 patient simply takes the PID-3 identifiers."""
    pid, mrg = parsed.required("PID"), parsed.required("MRG")
    survivor_ids, prior_ids = identifiers(parsed, pid, 3), identifiers(parsed, mrg, 1)
    if not survivor_ids:
        raise missing("PID-3", "the surviving patient's identifiers")
    if not prior_ids:
        raise missing("MRG-1", "the prior patient's identifiers")
    prior = await find_by_identifiers(session, prior_ids, "MRG-1")
    survivor = await find_by_identifiers(session, survivor_ids, "PID-3")
    if prior is None:
        if survivor is not None:
            return [survivor.id]  # merged already (a replay under another control id): nothing left to do
        raise Hl7Error("MRG-1 names no patient known here.", code=ErrorCode.UNKNOWN_KEY, location="MRG-1")
    if survivor is None:
        await claim(session, prior.id, survivor_ids, "PID-3")
        return [prior.id]
    if survivor.id == prior.id:
        return [survivor.id]
    await merge_patients(
        PatientRepository(session),
        PatientRecordRepository(session),
        primary_id=survivor.id,
        duplicate_id=prior.id,
    )
    return [survivor.id, prior.id]
