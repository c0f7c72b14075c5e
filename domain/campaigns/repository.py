"""Campaign queries (tenant-scoped by the session): the list, a launch by its key, members' counts."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, func, select

from core.repository import Repository
from domain.campaigns.models import Campaign, CampaignMember
from domain.campaigns.plan import CampaignStatus, MemberState
from domain.campaigns.schemas import CampaignCounts


class CampaignRepository(Repository[Campaign]):
    """Queries over campaigns (tenant-scoped by the session)."""

    model = Campaign
    label = "Campaign"

    def listed(self, status: CampaignStatus | None = None) -> Select[Campaign]:
        """The tenant's campaigns, newest first, of one status when given."""
        stmt = self.base().order_by(Campaign.created_at.desc(), Campaign.id)
        return stmt.where(Campaign.status == status.value) if status else stmt

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
        counts = {campaign_id: CampaignCounts() for campaign_id in campaign_ids}
        for campaign_id, state, reason, n in rows:
            c = counts[campaign_id]
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
