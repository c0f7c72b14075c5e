"""Cohort use cases: keep the definitions, check what their criteria name, and evaluate them now."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.database import TenantScoped, violated_constraint
from core.errors import Conflict, Unprocessable
from domain.cohorts.criteria import members_query
from domain.cohorts.models import Cohort
from domain.cohorts.repository import CohortRepository
from domain.cohorts.schemas import (
    CohortCreate,
    CohortCriteria,
    CohortMember,
    CohortPreview,
    CohortUpdate,
    JourneyMembership,
)
from domain.journeys.models import Journey
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Location
from domain.schemas import changes

NAME_CONSTRAINT = "uq_cohorts_tenant_name"
DUPLICATE_NAME = "A cohort with this name already exists."
SAMPLE_SIZE = 20


def criteria_of(cohort: Cohort) -> CohortCriteria:
    """The cohort's stored criteria, parsed."""
    return CohortCriteria.model_validate(cohort.criteria)


def members_of(cohort: Cohort, *, now: datetime) -> Select[uuid.UUID]:
    """`SELECT patients.id` of the cohort's members at `now` (see `domain.cohorts.criteria.members_query`)."""
    return members_query(criteria_of(cohort), tenant_id=cohort.tenant_id, now=now)


async def create_cohort(session: AsyncSession, data: CohortCreate) -> Cohort:
    """Save a new cohort in the session's tenant after checking the records its criteria name."""
    repo = CohortRepository(session)
    await ensure_known_references(repo, data.criteria)
    cohort = Cohort(name=data.name, description=data.description, criteria=data.criteria.stored())
    session.add(cohort)
    return await _save(repo, cohort)


async def update_cohort(session: AsyncSession, cohort_id: uuid.UUID, data: CohortUpdate) -> Cohort:
    """Apply the fields sent in a PATCH (new criteria replace the old ones whole)."""
    repo = CohortRepository(session)
    cohort = await repo.get_or_404(cohort_id)
    for field, value in changes(data).items():
        if field == "criteria":
            assert data.criteria is not None  # `CohortUpdate` refuses null
            await ensure_known_references(repo, data.criteria)
            value = data.criteria.stored()
        setattr(cohort, field, value)
    return await _save(repo, cohort)


async def delete_cohort(session: AsyncSession, cohort_id: uuid.UUID) -> None:
    """Remove a cohort for good. One a campaign names stays, as part of the campaign's record: the database
    refuses the delete (`fk_campaigns_cohort_id_cohorts` is RESTRICT), which the API answers 409."""
    repo = CohortRepository(session)
    await repo.delete(await repo.get_or_404(cohort_id))


async def preview(
    session: AsyncSession, cohort_id: uuid.UUID, *, now: datetime, sample_size: int = SAMPLE_SIZE
) -> CohortPreview:
    """How many patients the cohort holds at `now` and the first `sample_size` of them by name."""
    repo = CohortRepository(session)
    members = members_of(await repo.get_or_404(cohort_id), now=now)
    await repo.plan_for_these_values()
    count = await repo.count_members(members)
    rows = await repo.first_members(members, sample_size) if count else []
    sample = [CohortMember(id=row.id, first_name=row.first_name, last_name=row.last_name) for row in rows]
    return CohortPreview(count=count, sample=sample)


async def ensure_known_references(repo: CohortRepository, criteria: CohortCriteria) -> None:
    """422 naming the field when the criteria name a practitioner, location or journey that is not the
    tenant's (unknown, or another tenant's: the same answer)."""
    where = ("body", "criteria")
    if criteria.seen_by is not None:
        await _known(
            repo, Practitioner, criteria.seen_by.practitioner_ids, (*where, "seen_by", "practitioner_ids")
        )
        await _known(repo, Location, criteria.seen_by.location_ids, (*where, "seen_by", "location_ids"))
    for name in ("on_journey", "not_on_journey"):
        membership: JourneyMembership | None = getattr(criteria, name)
        if membership is not None:
            await _known(repo, Journey, membership.journey_ids, (*where, name, "journey_ids"))


async def _known(
    repo: CohortRepository, model: type[TenantScoped], ids: list[uuid.UUID] | None, loc: tuple[str, ...]
) -> None:
    if not ids:
        return
    missing = await repo.missing_ids(model, ids)
    if missing:
        index = ids.index(missing[0])
        raise Unprocessable(
            f"{loc[-1]}[{index}] is not a {model.__name__.lower()} of your tenant: {missing[0]}",
            loc=(*loc, index),
        )


async def _save(repo: CohortRepository, cohort: Cohort) -> Cohort:
    """Flush the cohort; a name the tenant already uses (ignoring case) is 409 (the request's transaction
    is spent then, and rolls back with the error)."""
    try:
        return await repo.save(cohort)
    except IntegrityError as exc:
        if violated_constraint(exc) != NAME_CONSTRAINT:
            raise
        raise Conflict(DUPLICATE_NAME) from exc
