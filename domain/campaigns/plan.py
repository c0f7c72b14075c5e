"""What the campaign workflow and its callers exchange: ids, statuses, counts and ISO times, never PHI.

Pure dataclasses and names (the workflow imports this module), so the domain, the activities and the
workflow agree on them.
"""

# No `from __future__ import annotations`: payloads are decoded faster (see domain/journeys/plan.py).

from dataclasses import dataclass
from enum import StrEnum

WORKFLOW_NAME = "CampaignWorkflow"
SIGNAL_CHANGED = "campaign_changed"
BATCH_SIZE = 100  # members enrolled per activity (one transaction)
BATCHES_PER_RUN = 200  # then the workflow continues as new: its history never grows with the cohort


class CampaignStatus(StrEnum):
    """Where a campaign is: waiting for its start, enrolling, held, or over."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


FINAL_STATUSES = frozenset({CampaignStatus.COMPLETED, CampaignStatus.CANCELLED, CampaignStatus.FAILED})


class MemberState(StrEnum):
    """One member's fate: waiting, enrolled into the journey (or sent the message), or skipped (why)."""

    PENDING = "pending"
    ENROLLED = "enrolled"
    SENT = "sent"
    SKIPPED = "skipped"


class SkipReason(StrEnum):
    """Why a member was not enrolled."""

    ALREADY_ON_JOURNEY = "already_on_journey"
    INACTIVE = "inactive"
    MERGED = "merged"
    OPTED_OUT = "opted_out"  # of the message's channel
    NO_CONTACT = "no_contact"  # no address for the message's channel
    COOLDOWN = "cooldown"  # reached by an earlier occurrence of the same recurring campaign, recently


def campaign_workflow_id(campaign_id: object) -> str:
    """`campaign-<uuid>`: one workflow per campaign, ever."""
    return f"campaign-{campaign_id}"


OCCURRENCE_WORKFLOW_NAME = "CampaignOccurrenceWorkflow"


class LaunchOutcome(StrEnum):
    """What one fire of a recurring campaign's schedule did."""

    LAUNCHED = "launched"  # a new occurrence, its workflow's start recorded with it
    ALREADY_LAUNCHED = "already_launched"  # this fire's occurrence exists (a retried or repeated fire)
    SKIPPED_OVERLAP = "skipped_overlap"  # the previous occurrence has not ended yet
    SKIPPED_NOT_ACTIVE = "skipped_not_active"  # the definition was paused or cancelled first


def campaign_schedule_id(definition_id: object) -> str:
    """`campaign-schedule-<uuid>`: the Temporal Schedule of a recurring campaign."""
    return f"campaign-schedule-{definition_id}"


def occurrence_workflow_prefix(definition_id: object) -> str:
    """The id of the workflow each fire starts, before the fire's time Temporal appends to it."""
    return f"campaign-occurrence-{definition_id}"


@dataclass
class OccurrenceInput:
    """The schedule's action: launch an occurrence of this recurring campaign (the same every fire)."""

    tenant_id: str
    definition_id: str


@dataclass
class LaunchInput:
    """Launch the occurrence of one fire: the definition, and the fire's scheduled time (ISO)."""

    tenant_id: str
    definition_id: str
    scheduled_for: str


@dataclass
class LaunchResult:
    """A fire's outcome (a `LaunchOutcome`) and the occurrence it launched or found."""

    outcome: str
    campaign_id: str | None = None


def enrollment_key(campaign_id: object, patient_id: object) -> str:
    """The idempotency key of one member's journey instance (or message): the database holds it unique per
    tenant, so a member is reached once whatever retries or crashes happen."""
    return f"campaign:{campaign_id}:{patient_id}"


@dataclass
class CampaignInput:
    """The workflow's input: which campaign, carried unchanged over each continue-as-new."""

    tenant_id: str
    campaign_id: str


@dataclass
class CampaignChanged:
    """The `campaign_changed` signal: the campaign's status now (paused, running or cancelled)."""

    status: str


@dataclass
class CampaignPlan:
    """What the workflow needs to know of the campaign, as stored: its status, when it starts (ISO, or None
    for at once) and its pace (members per minute, or None for as fast as the batches go)."""

    status: str
    starts_at: str | None
    pace_per_minute: int | None


@dataclass
class BatchResult:
    """One batch's outcome: the campaign's status as stored, members handled, members still pending
    (counted up to `steps.PENDING_COUNTED`; 0: none), and seconds to wait before the next batch (outside the
    send window; 0 inside)."""

    status: str
    processed: int
    remaining: int
    wait_seconds: float = 0.0


@dataclass
class EnrollInput:
    """One batch: enrol up to `limit` of the campaign's pending members."""

    tenant_id: str
    campaign_id: str
    limit: int = BATCH_SIZE


@dataclass
class FinishInput:
    """The campaign's end: completed, or failed with `failure` (an error's type name, never PHI)."""

    tenant_id: str
    campaign_id: str
    failure: str | None = None
