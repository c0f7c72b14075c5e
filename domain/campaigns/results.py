"""A campaign's outcome, patient by patient: who was messaged (by the journey it enrolled them in, or by
its one-off message), whether the message went out and arrived, whether they replied or opted out, and
whether they booked an appointment within N days of it (a recall's real outcome), by the channel and
language of that message.

One statement over the members, their messages, replies, opt-outs and appointments, each table filtered by
the tenant explicitly. Each member reached counts once, from their first message of the campaign: a reply,
an opt-out or a booking counts when it came after that message (a booking within `booked_within_days` of
it, cancelled ones aside).

A recurring campaign's results are the sum of its occurrences' (each counted as above, as if it were a
one-off campaign): a patient reached by two occurrences counts in each.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.campaigns.repository import CampaignRepository
from domain.campaigns.schemas import CampaignResults, ResultRow

_OUTCOMES = text(
    """
    WITH firsts AS (
        SELECT DISTINCT ON (m.campaign_id, m.patient_id)
               m.patient_id, c.channel, coalesce(c.language, 'unspecified') AS language, c.status,
               c.sent_at, c.delivered_at, coalesce(c.sent_at, c.created_at) AS at
          FROM campaign_members m
          JOIN communications c
            ON (c.journey_instance_id = m.journey_instance_id OR c.id = m.communication_id)
           AND c.tenant_id = :tenant AND c.direction = 'outbound'
         WHERE m.tenant_id = :tenant AND m.campaign_id = ANY(:campaigns) AND m.state IN ('enrolled', 'sent')
         ORDER BY m.campaign_id, m.patient_id, c.created_at, c.id
    )
    SELECT f.channel, f.language,
           count(*) AS messaged,
           count(*) FILTER (WHERE f.sent_at IS NOT NULL OR f.status IN ('sent', 'delivered', 'read'))
               AS sent,
           count(*) FILTER (WHERE f.delivered_at IS NOT NULL OR f.status IN ('delivered', 'read'))
               AS delivered,
           count(*) FILTER (WHERE EXISTS (
               SELECT 1 FROM communications r
                WHERE r.tenant_id = :tenant AND r.patient_id = f.patient_id AND r.direction = 'inbound'
                  AND r.channel = f.channel AND r.created_at > f.at
           )) AS replied,
           count(*) FILTER (WHERE EXISTS (
               SELECT 1 FROM channel_consents o
                WHERE o.tenant_id = :tenant AND o.patient_id = f.patient_id AND o.channel = f.channel
                  AND o.opted_out AND o.changed_at >= f.at
           )) AS opted_out,
           count(*) FILTER (WHERE EXISTS (
               SELECT 1 FROM appointments a
                WHERE a.tenant_id = :tenant AND a.patient_id = f.patient_id AND a.status <> 'cancelled'
                  AND a.created_at >= f.at AND a.created_at < f.at + make_interval(days => :days)
           )) AS booked
      FROM firsts f
     GROUP BY f.channel, f.language
     ORDER BY f.channel, f.language
    """
)
_COUNTED = ("messaged", "sent", "delivered", "replied", "opted_out", "booked")


async def campaign_results(
    session: AsyncSession, campaign_id: uuid.UUID, *, booked_within_days: int
) -> CampaignResults:
    """The campaign's funnel by channel and language, with the totals (404 for another tenant's); a
    recurring campaign's summed over its occurrences."""
    repo = CampaignRepository(session)
    campaign = await repo.get_or_404(campaign_id)
    if campaign.recurring:
        counts = (await repo.definition_counts([campaign.id]))[campaign.id]
        ids = await repo.occurrence_ids(campaign.id)
    else:
        counts, ids = (await repo.counts([campaign.id]))[campaign.id], [campaign.id]
    params: dict[str, Any] = {"tenant": campaign.tenant_id, "campaigns": ids, "days": booked_within_days}
    rows = [ResultRow(**dict(r._mapping)) for r in await session.execute(_OUTCOMES, params)]
    total = ResultRow(
        channel="all", language="all", **{k: sum(getattr(r, k) for r in rows) for k in _COUNTED}
    )
    return CampaignResults(
        campaign_id=campaign.id,
        status=campaign.status,
        booked_within_days=booked_within_days,
        members=counts.members,
        enrolled=counts.enrolled,
        sent=counts.sent,
        skipped=counts.skipped,
        total=total,
        by_channel_and_language=rows,
    )
