"""Practitioner use cases."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError

from core.database import violated_constraint
from core.errors import Conflict
from domain.practitioners.models import Practitioner
from domain.practitioners.repository import PractitionerRepository
from domain.practitioners.schemas import PractitionerCreate, PractitionerUpdate
from domain.schemas import changes

# appointments.practitioner_id is ON DELETE RESTRICT: an appointment keeps its practitioner for good.
HISTORY_CONSTRAINT = "fk_appointments_practitioner_id_practitioners"


async def create_practitioner(repo: PractitionerRepository, data: PractitionerCreate) -> Practitioner:
    """Add a practitioner to the caller's tenant."""
    practitioner = Practitioner(**data.model_dump(exclude={"tenant_id"}))
    return await repo.add(practitioner)


async def update_practitioner(
    repo: PractitionerRepository, practitioner_id: uuid.UUID, data: PractitionerUpdate
) -> Practitioner:
    """Apply the fields sent in a PATCH."""
    practitioner = await repo.get_or_404(practitioner_id)
    for field, value in changes(data).items():
        if field == "meta_data" and value is None:
            value = {}
        setattr(practitioner, field, value)
    return await repo.save(practitioner)


async def delete_practitioner(repo: PractitionerRepository, practitioner_id: uuid.UUID) -> None:
    """Remove a practitioner who has no appointments (history is never deleted: deactivate instead)."""
    practitioner = await repo.get_or_404(practitioner_id)
    try:
        async with repo.session.begin_nested():  # the database refuses while an appointment names them
            await repo.delete(practitioner)
    except IntegrityError as exc:
        if violated_constraint(exc) != HISTORY_CONSTRAINT:
            raise
        raise Conflict(
            "This practitioner has appointments; set is_active=false instead of deleting."
        ) from exc
