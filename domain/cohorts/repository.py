"""Cohort queries (tenant-scoped by the session) and the reads a preview makes over a members query."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, func, select, text

from core.database import TenantScoped
from core.repository import Repository
from domain.cohorts.models import Cohort
from domain.patients.models import Patient


class CohortRepository(Repository[Cohort]):
    """Queries over cohorts."""

    model = Cohort
    label = "Cohort"

    def listed(self) -> Select[Cohort]:
        """The tenant's cohorts by name (ignoring case)."""
        return self.base().order_by(func.lower(Cohort.name), Cohort.id)

    async def missing_ids(self, model: type[TenantScoped], ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
        """Those of `ids` that are no `model` row of the session's tenant (another tenant's look missing)."""
        wanted = list(dict.fromkeys(ids))
        found = set((await self.session.scalars(select(model.id).where(model.id.in_(wanted)))).all())
        return [record_id for record_id in wanted if record_id not in found]

    async def plan_for_these_values(self) -> None:
        """Plan this transaction's statements for their own values, never with a cached generic plan: how
        many patients a criterion keeps depends on its values (a tenant of 800,000 or of 10, a ten-year age
        band or all ages), and a generic plan, chosen after a few runs of one prepared statement, walks
        the name index of a million patients for a sample of 20 (seconds instead of milliseconds)."""
        await self.session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))

    async def count_members(self, members: Select[uuid.UUID]) -> int:
        """How many patients `members` selects, in one `SELECT count(*)`."""
        return int(await self.session.scalar(select(func.count()).select_from(members.subquery())) or 0)

    async def first_members(self, members: Select[uuid.UUID], limit: int) -> list[Any]:
        """The first `limit` patients `members` selects, by last name, first name and id: rows of
        (id, first_name, last_name)."""
        stmt = (
            members.with_only_columns(Patient.id, Patient.first_name, Patient.last_name)
            .order_by(Patient.last_name, Patient.first_name, Patient.id)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).all())
