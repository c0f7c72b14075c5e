"""Practitioner use cases."""

from __future__ import annotations

import uuid

from sqlalchemy import exists, select

from core.errors import Conflict
from domain.practitioners.models import Practitioner
from domain.practitioners.repository import PractitionerRepository
from domain.practitioners.schemas import PractitionerCreate, PractitionerUpdate
from domain.scheduling.models import Appointment
from domain.schemas import changes


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
    has_history = await repo.session.scalar(
        select(exists().where(Appointment.practitioner_id == practitioner.id))
    )
    if has_history:
        raise Conflict("This practitioner has appointments; set is_active=false instead of deleting.")
    await repo.delete(practitioner)
