"""Journey queries (tenant-scoped by the session)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, case, exists, func, select, update

from core.database import prebuilt
from core.repository import Repository
from domain.enums import JourneyInstanceStatus
from domain.journeys.models import Journey, JourneyInstance, JourneyInstanceStage, JourneyStage


class JourneyRepository(Repository[Journey]):
    """Queries over journey definitions and their stages."""

    model = Journey
    label = "Journey"

    def filtered(self, *, journey_type: str | None = None, is_default: bool | None = None) -> Select[Journey]:
        """Journeys matching the filters, newest first."""
        stmt = self.base()
        if journey_type:
            stmt = stmt.where(Journey.journey_type == journey_type)
        if is_default is not None:
            stmt = stmt.where(Journey.is_default.is_(is_default))
        return stmt.order_by(Journey.created_at.desc(), Journey.id)

    async def stages_of(self, journey_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[JourneyStage]]:
        """The stages of each journey, in order (one query for any number of journeys)."""
        result: dict[uuid.UUID, list[JourneyStage]] = {jid: [] for jid in journey_ids}
        if not journey_ids:
            return result
        stmt = (
            select(JourneyStage)
            .where(JourneyStage.journey_id.in_(journey_ids))
            .order_by(JourneyStage.journey_id, JourneyStage.order_index)
        )
        for stage in (await self.session.scalars(stmt)).all():
            result[stage.journey_id].append(stage)
        return result

    async def stage_or_none(self, journey_id: uuid.UUID, stage_id: uuid.UUID) -> JourneyStage | None:
        """One stage of one journey."""
        stmt = select(JourneyStage).where(JourneyStage.id == stage_id, JourneyStage.journey_id == journey_id)
        return await self.session.scalar(stmt)


class JourneyInstanceRepository(Repository[JourneyInstance]):
    """Queries over journey instances and their stage statuses."""

    model = JourneyInstance
    label = "Journey instance"

    def filtered(
        self,
        *,
        patient_id: uuid.UUID | None = None,
        journey_id: uuid.UUID | None = None,
        status: str | None = None,
    ) -> Select[JourneyInstance]:
        """Instances matching the filters, newest first."""
        stmt = self.base()
        if patient_id is not None:
            stmt = stmt.where(JourneyInstance.patient_id == patient_id)
        if journey_id is not None:
            stmt = stmt.where(JourneyInstance.journey_id == journey_id)
        if status:
            stmt = stmt.where(JourneyInstance.status == status)
        return stmt.order_by(JourneyInstance.created_at.desc(), JourneyInstance.id)

    async def by_idempotency_key(self, key: str) -> JourneyInstance | None:
        """The instance created under this Idempotency-Key, if any."""
        return await self.session.scalar(self.base().where(JourneyInstance.idempotency_key == key))

    async def stages(self, instance_id: uuid.UUID) -> list[JourneyInstanceStage]:
        """The instance's stage statuses, in order."""
        stmt = (
            select(JourneyInstanceStage)
            .where(JourneyInstanceStage.instance_id == instance_id)
            .order_by(JourneyInstanceStage.order_index)
        )
        return list((await self.session.scalars(stmt)).all())

    async def stage(self, instance_id: uuid.UUID, order_index: int) -> JourneyInstanceStage | None:
        """One stage status row."""
        stmt = select(JourneyInstanceStage).where(
            JourneyInstanceStage.instance_id == instance_id, JourneyInstanceStage.order_index == order_index
        )
        return await self.session.scalar(stmt)

    async def record_stage(
        self, instance_id: uuid.UUID, order_index: int, status: str, at: datetime, notes: str | None
    ) -> bool | None:
        """Set a stage's status in one UPDATE, only while the instance is active (the workflow's hot path:
        the statements are built once, `_STAGE_UPDATES`).

        True when recorded, False when the instance is no longer active, None when it has no such stage."""
        statement = _STAGE_UPDATES[(status == "active", bool(notes))]
        params = {"b_instance_id": instance_id, "b_order_index": order_index, "b_status": status, "b_at": at}
        row = (
            await self.session.execute(statement, {**params, "b_notes": notes} if notes else params)
        ).first()
        if row is not None:
            if status == "active":
                await self.session.execute(
                    _SET_CURRENT_STAGE, {"b_instance_id": instance_id, "b_stage_id": row.stage_id}
                )
            return True
        instance = await self.get(instance_id)
        if instance is None or instance.status != JourneyInstanceStatus.ACTIVE.value:
            return False
        return None

    async def finish(self, instance_id: uuid.UUID, status: JourneyInstanceStatus, at: datetime) -> bool:
        """Move an active instance to `status` in one UPDATE; False when it was no longer active."""
        statement = _FINISH[status in _ENDED][status == JourneyInstanceStatus.COMPLETED]
        row = await self.session.execute(
            statement, {"b_instance_id": instance_id, "b_status": status.value, "b_at": at}
        )
        return row.first() is not None

    async def counts(self, journey_id: uuid.UUID | None = None) -> tuple[dict[str, int], dict[str, int]]:
        """(count by status, count by journey name) over the tenant's instances."""
        by_status_stmt = select(JourneyInstance.status, func.count()).group_by(JourneyInstance.status)
        by_journey_stmt = (
            select(Journey.name, func.count())
            .select_from(JourneyInstance)
            .join(Journey, Journey.id == JourneyInstance.journey_id)
            .group_by(Journey.name)
        )
        if journey_id is not None:
            by_status_stmt = by_status_stmt.where(JourneyInstance.journey_id == journey_id)
            by_journey_stmt = by_journey_stmt.where(JourneyInstance.journey_id == journey_id)
        by_status = {s: int(n) for s, n in (await self.session.execute(by_status_stmt)).all()}
        by_journey = {name: int(n) for name, n in (await self.session.execute(by_journey_stmt)).all()}
        return by_status, by_journey


_ENDED = (JourneyInstanceStatus.COMPLETED, JourneyInstanceStatus.FAILED)


def _stage_update(*, active: bool, notes: bool) -> Any:
    """`record_stage`'s UPDATE: a stage that becomes active keeps its first start; one that ends gets its
    end; a note is appended once (a retried activity does not repeat it)."""
    stage = JourneyInstanceStage
    at = bindparam("b_at", type_=stage.started_at.type)
    values: dict[str, Any] = {
        "status": bindparam("b_status"),
        "started_at": func.coalesce(stage.started_at, at),
    }
    if not active:
        values["completed_at"] = at
    if notes:
        note = bindparam("b_notes", type_=stage.notes.type)
        values["notes"] = case(
            (stage.notes.is_(None), note),
            (func.strpos(stage.notes, note) > 0, stage.notes),
            else_=stage.notes + "\n" + note,
        )
    instance_active = exists().where(
        JourneyInstance.id == stage.instance_id,
        JourneyInstance.status == JourneyInstanceStatus.ACTIVE.value,
    )
    return prebuilt(
        update(stage)
        .where(
            stage.instance_id == bindparam("b_instance_id"),
            stage.order_index == bindparam("b_order_index"),
            instance_active,
        )
        .values(**values)
        .returning(stage.stage_id)
        .execution_options(synchronize_session=False)
    )


def _finish(*, ended: bool, completed: bool) -> Any:
    """`finish`'s UPDATE: an instance that completed or failed gets its end; a completed one no current
    stage."""
    values: dict[str, Any] = {"status": bindparam("b_status")}
    if ended:
        values["completed_at"] = bindparam("b_at", type_=JourneyInstance.completed_at.type)
    if completed:
        values["current_stage_id"] = None
    return prebuilt(
        update(JourneyInstance)
        .where(
            JourneyInstance.id == bindparam("b_instance_id"),
            JourneyInstance.status == JourneyInstanceStatus.ACTIVE.value,
        )
        .values(**values)
        .returning(JourneyInstance.id)
        .execution_options(synchronize_session=False)
    )


_STAGE_UPDATES = {
    (active, notes): _stage_update(active=active, notes=notes)
    for active in (True, False)
    for notes in (True, False)
}
_SET_CURRENT_STAGE = prebuilt(
    update(JourneyInstance)
    .where(JourneyInstance.id == bindparam("b_instance_id"))
    .values(current_stage_id=bindparam("b_stage_id"))
    .execution_options(synchronize_session=False)
)
_FINISH = {
    ended: {completed: _finish(ended=ended, completed=completed) for completed in (False, True)}
    for ended in (False, True)
}
