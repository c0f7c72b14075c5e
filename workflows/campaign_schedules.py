"""What a recurring campaign's Temporal Schedule starts at each fire (`campaign-occurrence-<id>-<time>`):
one activity launching that fire's occurrence, a campaign whose own `CampaignWorkflow` then reaches its
members. The fire's scheduled time (Temporal's `TemporalScheduledStartTime`) keys the occurrence, so a
repeated fire launches nothing twice. Deterministic: the time is read from the workflow's info.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from activities.campaign_schedules import CampaignScheduleActivities
    from domain.campaigns.plan import OCCURRENCE_WORKFLOW_NAME, LaunchInput, LaunchResult, OccurrenceInput

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=1)
)


@workflow.defn(name=OCCURRENCE_WORKFLOW_NAME)
class CampaignOccurrenceWorkflow:
    """One fire of a recurring campaign's schedule."""

    @workflow.run
    async def run(self, data: OccurrenceInput) -> str:
        """Launch this fire's occurrence (or find it, or skip it); what happened (a `LaunchOutcome`; the
        occurrence's id is in the activity's result)."""
        launched: LaunchResult = await workflow.execute_activity_method(
            CampaignScheduleActivities.launch_occurrence,
            LaunchInput(
                tenant_id=data.tenant_id,
                definition_id=data.definition_id,
                scheduled_for=_scheduled_for().isoformat(),
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )
        return launched.outcome


def _scheduled_for() -> datetime:
    """The fire's scheduled time; a start by hand (no schedule) counts as a fire at its start."""
    info = workflow.info()
    return info.typed_search_attributes.get(SCHEDULED_START) or info.start_time.replace(microsecond=0)
