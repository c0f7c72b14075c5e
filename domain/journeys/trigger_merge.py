"""A merged patient's trigger starts, moved onto the record that survives the merge.

The database keeps the repeat policy's promises per patient (`JourneyTriggerStart`): one start per journey
under `never`, one per triggering record under `once_per_record`, no two overlapping cool-downs under
`after_cooldown`. Two records of one person may each hold such a start; once they are one patient, only
one of each clashing pair may stay. The one kept is the one that started (a journey the patient is on)
before one still pending, then the surviving record's, then the earlier; the other is skipped with its
reason (a skipped start promises nothing), so the survivor is never started twice on what it already has.
Pending starts that clash with nothing move and start for the survivor when due.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from domain.enums import RepeatPolicy, TriggerStartStatus
from domain.journeys.models import JourneyTriggerStart

MERGED_REASON = "The patient was merged into a record that already has this start."


def _overlap(a: JourneyTriggerStart, b: JourneyTriggerStart) -> bool:
    """Whether the cool-down windows `[occurred_at, cooldown_until)` overlap (no end: open-ended)."""

    def empty(s: JourneyTriggerStart) -> bool:
        return s.cooldown_until is not None and s.cooldown_until <= s.occurred_at

    def before_end(moment: datetime, s: JourneyTriggerStart) -> bool:
        return s.cooldown_until is None or moment < s.cooldown_until

    if empty(a) or empty(b):
        return False
    return before_end(a.occurred_at, b) and before_end(b.occurred_at, a)


def clash(a: JourneyTriggerStart, b: JourneyTriggerStart) -> bool:
    """Whether the database would refuse `a` and `b` as starts of one patient (neither skipped)."""
    if a.journey_id != b.journey_id or a.repeat_policy != b.repeat_policy:
        return False
    policy = RepeatPolicy(a.repeat_policy)
    if policy == RepeatPolicy.NEVER:
        return True
    if policy == RepeatPolicy.ONCE_PER_RECORD:
        return a.record_key == b.record_key
    return _overlap(a, b)


async def move_trigger_starts(
    session: AsyncSession, *, from_patient: uuid.UUID, to_patient: uuid.UUID
) -> int:
    """Re-point `from_patient`'s trigger starts to `to_patient`, skipping the one of each pair the repeat
    policy allows only once (see the module); how many moved. Both patients are locked by the caller."""
    live = JourneyTriggerStart.status != TriggerStartStatus.SKIPPED.value
    their_journeys = select(JourneyTriggerStart.journey_id).where(
        JourneyTriggerStart.patient_id == from_patient, live
    )
    candidates = (
        await session.scalars(
            select(JourneyTriggerStart)
            .where(
                JourneyTriggerStart.patient_id.in_((from_patient, to_patient)),
                JourneyTriggerStart.journey_id.in_(their_journeys),
                live,
            )
            .order_by(JourneyTriggerStart.id)
            .with_for_update()  # against the dispatcher starting a pending one meanwhile
        )
    ).all()
    ranked = sorted(
        candidates,
        key=lambda s: (
            s.status != TriggerStartStatus.STARTED.value,
            s.patient_id != to_patient,
            s.occurred_at,
        ),
    )
    kept: list[JourneyTriggerStart] = []
    for start in ranked:
        if any(clash(start, other) for other in kept):
            start.status = TriggerStartStatus.SKIPPED.value
            start.reason = MERGED_REASON
        else:
            kept.append(start)
    await session.flush()  # the skipped leave the policy's indexes before the others move
    result = await session.execute(
        update(JourneyTriggerStart)
        .where(JourneyTriggerStart.patient_id == from_patient)
        .values(patient_id=to_patient)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount if isinstance(result, CursorResult) else 0
