"""Campaign queries (tenant-scoped by the session): the list, a launch by its key, members' counts, and a
recurring campaign's occurrences."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select

from core.repository import Repository
from domain.campaigns.models import Campaign, CampaignMember
from domain.campaigns.plan import FINAL_STATUSES, CampaignStatus, MemberState
from domain.campaigns.schemas import CampaignCounts


class CampaignRepository(Repository[Campaign]):
    """Queries over campaigns (tenant-scoped by the session)."""

    model = Campaign
    label = "Campaign"

    def listed(
        self, status: CampaignStatus | None = None, definition_id: uuid.UUID | None = None
    ) -> Select[Campaign]:
        """The tenant's campaigns, newest first, of one status and one recurring campaign when given."""
        stmt = self.base().order_by(Campaign.created_at.desc(), Campaign.id)
        if definition_id is not None:
            stmt = stmt.where(Campaign.definition_id == definition_id)
        return stmt.where(Campaign.status == status.value) if status else stmt

    async def occurrence(self, definition_id: uuid.UUID, scheduled_for: datetime) -> Campaign | None:
        """The occurrence a recurring campaign's schedule launched for `scheduled_for`, if any."""
        return await self.session.scalar(
            self.base().where(
                Campaign.definition_id == definition_id, Campaign.scheduled_for == scheduled_for
            )
        )

    async def occurrence_ids(self, definition_id: uuid.UUID) -> list[uuid.UUID]:
        """Every occurrence of a recurring campaign."""
        return list(
            await self.session.scalars(select(Campaign.id).where(Campaign.definition_id == definition_id))
        )

    async def unfinished_occurrences(self, definition_id: uuid.UUID) -> list[Campaign]:
        """A recurring campaign's occurrences that have not ended (scheduled, running or paused)."""
        return list(
            await self.session.scalars(
                self.base().where(
                    Campaign.definition_id == definition_id,
                    Campaign.status.not_in([s.value for s in FINAL_STATUSES]),
                )
            )
        )

    async def latest_runs(
        self, definition_ids: list[uuid.UUID], *, per_definition: int
    ) -> dict[uuid.UUID, tuple[int, list[Campaign]]]:
        """For each recurring campaign: how many occurrences it has, and its latest ones, newest first."""
        ranked = (
            select(
                Campaign.id,
                func.row_number()
                .over(partition_by=Campaign.definition_id, order_by=Campaign.scheduled_for.desc())
                .label("n"),
                func.count().over(partition_by=Campaign.definition_id).label("total"),
            )
            .where(Campaign.definition_id.in_(definition_ids))
            .subquery()
        )
        rows = await self.session.execute(
            select(Campaign, ranked.c.total)
            .join(ranked, ranked.c.id == Campaign.id)
            .where(ranked.c.n <= per_definition)
            .order_by(Campaign.scheduled_for.desc())
        )
        runs: dict[uuid.UUID, tuple[int, list[Campaign]]] = {d: (0, []) for d in definition_ids}
        for run, total in rows:
            assert run.definition_id is not None
            runs[run.definition_id] = (int(total), [*runs[run.definition_id][1], run])
        return runs

    async def definition_counts(self, definition_ids: list[uuid.UUID]) -> dict[uuid.UUID, CampaignCounts]:
        """Each recurring campaign's members summed over all its occurrences, in one grouped query."""
        rows = await self.session.execute(
            select(Campaign.definition_id, CampaignMember.state, CampaignMember.skip_reason, func.count())
            .join(Campaign, Campaign.id == CampaignMember.campaign_id)
            .where(Campaign.definition_id.in_(definition_ids))
            .group_by(Campaign.definition_id, CampaignMember.state, CampaignMember.skip_reason)
        )
        return _tally(definition_ids, rows)

    async def by_idempotency_key(self, key: str) -> Campaign | None:
        """The campaign launched under `key`, if any."""
        return await self.session.scalar(self.base().where(Campaign.idempotency_key == key))

    async def counts(self, campaign_ids: list[uuid.UUID]) -> dict[uuid.UUID, CampaignCounts]:
        """Each campaign's members by state and skip reason, in one grouped query."""
        rows = await self.session.execute(
            select(CampaignMember.campaign_id, CampaignMember.state, CampaignMember.skip_reason, func.count())
            .where(CampaignMember.campaign_id.in_(campaign_ids))
            .group_by(CampaignMember.campaign_id, CampaignMember.state, CampaignMember.skip_reason)
        )
        return _tally(campaign_ids, rows)


def _tally(keys: list[uuid.UUID], rows: Iterable[Any]) -> dict[uuid.UUID, CampaignCounts]:
    """Counts from (key, state, skip reason, n) rows."""
    counts = {key: CampaignCounts() for key in keys}
    for key, state, reason, n in rows:
        c = counts[key]
        c.members += n
        if state == MemberState.PENDING:
            c.pending += n
        elif state == MemberState.ENROLLED:
            c.enrolled += n
        elif state == MemberState.SENT:
            c.sent += n
        elif reason is not None:
            c.skipped[reason] = c.skipped.get(reason, 0) + n
    return counts
