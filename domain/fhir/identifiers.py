"""External identifiers (`system` + `value`, unique per tenant) of patients, practitioners and appointments:
one way to find a record by the id another system gave it, list a record's ids, and give it one.

An HL7 v2 feed names records the same way (PID-3 with its assigning authority as the system), so it can use
this module as the FHIR import does.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.patients.models import PatientIdentifier
from domain.practitioners.models import PractitionerIdentifier
from domain.scheduling.models import AppointmentIdentifier

MAX_SYSTEM_LENGTH = MAX_VALUE_LENGTH = 255


@dataclass(frozen=True)
class ExternalIds:
    """The identifier table of one kind of record and the column naming its owner."""

    model: Any
    owner: str  # e.g. "patient_id"

    @property
    def _owner_column(self) -> Any:
        return getattr(self.model, self.owner)

    async def find(self, session: AsyncSession, system: str, value: str) -> uuid.UUID | None:
        """The id of the record (of the session's tenant) with this identifier, if any."""
        stmt = select(self._owner_column).where(self.model.system == system, self.model.value == value)
        return await session.scalar(stmt)  # type: ignore[no-any-return]

    async def of(
        self, session: AsyncSession, owner_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, list[tuple[str, str]]]:
        """The identifiers of each record, in the order they were given."""
        found: dict[uuid.UUID, list[tuple[str, str]]] = defaultdict(list)
        if not owner_ids:
            return found
        rows = await session.execute(
            select(self.model)
            .where(self._owner_column.in_(owner_ids))
            .order_by(self.model.created_at, self.model.id)
        )
        for row in rows.scalars():
            found[getattr(row, self.owner)].append((row.system, row.value))
        return found

    async def add(self, session: AsyncSession, owner_id: uuid.UUID, system: str, value: str) -> None:
        """Give the record this identifier (the caller has checked no other record holds it)."""
        session.add(self.model(**{self.owner: owner_id, "system": system, "value": value}))
        await session.flush()


PATIENT_IDS = ExternalIds(PatientIdentifier, "patient_id")
PRACTITIONER_IDS = ExternalIds(PractitionerIdentifier, "practitioner_id")
APPOINTMENT_IDS = ExternalIds(AppointmentIdentifier, "appointment_id")
