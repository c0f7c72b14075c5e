"""The patient's stored last completed visit (`patients.last_completed_visit_at`), which cohort criteria
read: triggers on appointments keep it right through completions, reschedules, cancellations and deletions,
and it never raises the patient's FHIR version."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.cohorts.support import Clinic


async def _stored(clinic: Clinic, patient: uuid.UUID) -> tuple[datetime | None, int]:
    async with clinic.sessionmaker() as session:
        row = (
            await session.execute(
                text("SELECT last_completed_visit_at, version FROM patients WHERE id = :id"), {"id": patient}
            )
        ).one()
    return row[0], row[1]


async def _run(clinic: Clinic, sql: str, **params: object) -> None:
    async with clinic.sessionmaker() as session:
        await session.execute(text(sql), params)
        await session.commit()


async def test_the_last_visit_follows_the_patients_completed_appointments(clinic: Clinic) -> None:
    patient = await clinic.patient()
    march, june = datetime(2026, 3, 2, 9, tzinfo=UTC), datetime(2026, 6, 1, 9, tzinfo=UTC)
    assert await _stored(clinic, patient) == (None, 1)

    first = await clinic.appointment(patient, march)
    await clinic.appointment(patient, june + timedelta(days=30), status="booked")  # not a visit
    assert await _stored(clinic, patient) == (march, 1)

    later = await clinic.appointment(patient, june)
    assert (await _stored(clinic, patient))[0] == june
    await _run(clinic, "UPDATE appointments SET status = 'cancelled' WHERE id = :id", id=later)
    assert (await _stored(clinic, patient))[0] == march  # the one before it again
    await _run(
        clinic,
        "UPDATE appointments SET start_time = :at, end_time = :end WHERE id = :id",
        at=march - timedelta(days=1),
        end=march - timedelta(days=1) + timedelta(minutes=30),
        id=first,
    )
    assert (await _stored(clinic, patient))[0] == march - timedelta(days=1)
    await _run(clinic, "DELETE FROM appointments WHERE id = :id", id=first)
    assert await _stored(clinic, patient) == (None, 1)  # and the record's version never moved


async def test_a_visit_moved_to_another_patient_moves_both_last_visits(clinic: Clinic) -> None:
    one, other = await clinic.patient(), await clinic.patient()
    visit = datetime(2026, 5, 4, 10, tzinfo=UTC)
    appointment = await clinic.appointment(one, visit)
    await _run(clinic, "UPDATE appointments SET patient_id = :to WHERE id = :id", to=other, id=appointment)
    assert [(await _stored(clinic, p))[0] for p in (one, other)] == [None, visit]


async def test_a_change_to_the_record_itself_still_raises_its_version(clinic: Clinic) -> None:
    patient = await clinic.patient()
    await clinic.appointment(patient, datetime(2026, 4, 1, 9, tzinfo=UTC))
    await _run(clinic, "UPDATE patients SET first_name = 'Patricia' WHERE id = :id", id=patient)
    assert (await _stored(clinic, patient))[1] == 2
