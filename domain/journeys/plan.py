"""The PHI-free plan a journey workflow runs: per stage, its trigger's timing and its actions' kinds.

Operators see workflow inputs in the Temporal UI, so the plan carries ids, kinds, durations and indices
only; message text, ticket titles and patient data stay in the instance's `definition_snapshot`, which the
activities read by (instance id, stage order_index, action index). Pure dataclasses: the workflow imports
this module.
"""

# Annotations are evaluated at import, not kept as strings (no `from __future__ import annotations`):
# Temporal's converter reads a payload dataclass's type hints on every decode, and string annotations are
# evaluated again each time (about 4x the cost, measured on these classes). So for every `plan` module.

from dataclasses import dataclass, field
from typing import Any

WORKFLOW_NAME = "JourneyInstanceWorkflow"
SIGNAL_REPLY_RECEIVED = "reply_received"


def journey_workflow_id(instance_id: object) -> str:
    """`journey-instance-<uuid>`: exactly one workflow per instance row."""
    return f"journey-instance-{instance_id}"


def action_idempotency_key(instance_id: object, order_index: int, action_index: int) -> str:
    """The business key of one action's side effect (a message or a ticket): unique per tenant in the DB."""
    return f"journey:{instance_id}:{order_index}:{action_index}"


def reply_timeout_idempotency_key(instance_id: object, order_index: int) -> str:
    """The key of the ticket a `reply_received` trigger creates when the patient does not reply."""
    return f"journey:{instance_id}:{order_index}:reply-timeout"


@dataclass
class ActionPlan:
    """One action: its index in the stage, its kind, and (for waits and reminders) its timing."""

    index: int
    kind: str
    seconds: int = 0  # wait_for_reply: the timeout; schedule_reminder: how long before the appointment
    on_timeout: str = "continue"


@dataclass
class StagePlan:
    """One stage: its order_index, its trigger's kind and timing, and its actions."""

    order_index: int
    trigger: str
    seconds: int = 0  # delay: the delay; *_appointment: the offset; reply_received: the timeout
    on_timeout: str = "continue"
    actions: list[ActionPlan] = field(default_factory=list)


@dataclass
class PendingReminder:
    """A scheduled reminder not yet sent, carried across continue-as-new."""

    order_index: int
    action_index: int
    due_at: str  # ISO 8601, UTC


@dataclass
class JourneyWorkflowInput:
    """Ids and the plan; `position` and the fields after it carry progress across continue-as-new."""

    tenant_id: str
    instance_id: str
    patient_id: str
    journey_id: str
    stages: list[StagePlan] = field(default_factory=list)
    position: int = 0
    anchor_time: str | None = None  # when the previous stage completed (delays count from it)
    reply_pending: bool = False
    pending_reminders: list[PendingReminder] = field(default_factory=list)
    # Continue-as-new after this many stages in one run; None: only when Temporal suggests it (history size).
    stages_per_run: int | None = None


def plan_from_snapshot(snapshot: dict[str, Any]) -> list[StagePlan]:
    """The stage plans of a `definition_snapshot` (stages already validated when they were saved)."""
    from domain.journeys.triggers import parse_actions, parse_trigger

    plans = []
    for stage in sorted(snapshot.get("stages", []), key=lambda s: s["order_index"]):
        trigger = parse_trigger(stage.get("trigger_event"))
        seconds, on_timeout = 0, "continue"
        if trigger.type == "delay":
            seconds = trigger.delay.total_seconds()
        elif trigger.type in ("before_appointment", "after_appointment"):
            seconds = trigger.offset.total_seconds()
        elif trigger.type == "reply_received":
            seconds, on_timeout = trigger.timeout.total_seconds(), trigger.on_timeout
        actions = []
        for index, action in enumerate(parse_actions(stage.get("actions"))):
            a_seconds, a_on_timeout = 0, "continue"
            if action.type == "wait_for_reply":
                a_seconds, a_on_timeout = action.timeout.total_seconds(), action.on_timeout
            elif action.type == "schedule_reminder":
                a_seconds = action.before_appointment.total_seconds()
            actions.append(
                ActionPlan(index=index, kind=action.type, seconds=a_seconds, on_timeout=a_on_timeout)
            )
        plans.append(
            StagePlan(
                order_index=stage["order_index"],
                trigger=trigger.type,
                seconds=seconds,
                on_timeout=on_timeout,
                actions=actions,
            )
        )
    return plans


def workflow_input_for(instance: Any) -> JourneyWorkflowInput:
    """The workflow input of a journey instance row."""
    return JourneyWorkflowInput(
        tenant_id=str(instance.tenant_id),
        instance_id=str(instance.id),
        patient_id=str(instance.patient_id),
        journey_id=str(instance.journey_id),
        stages=plan_from_snapshot(instance.definition_snapshot or {}),
    )


@dataclass
class ReplyReceived:
    """The `reply_received` signal's argument: the inbound message's id, never its text."""

    communication_id: str | None = None


@dataclass
class AdvanceInput:
    """The `advance` Update's argument: who asked (a user id, never PHI) and the stage they mean.

    `order_index` None (as in histories recorded before it existed) advances whichever manual stage is
    waiting; the API always names the stage, so an advance that arrives late is refused, not applied to the
    next manual stage."""

    requested_by: str = ""
    order_index: int | None = None


@dataclass
class AdvanceResult:
    """What the `advance` Update did: the stage it completed and the instance's status after it."""

    order_index: int
    instance_status: str


@dataclass
class InstanceRef:
    """One journey instance."""

    tenant_id: str
    instance_id: str


@dataclass
class ActionInput:
    """One action of one stage of an instance (`action_index` -1: the stage trigger's timeout ticket), and
    the workflow's time when it asked (ISO 8601; the send gate judges a message sent at once at that time;
    absent in histories recorded before it was added)."""

    tenant_id: str
    instance_id: str
    order_index: int
    action_index: int
    at: str | None = None


@dataclass
class StageStatusInput:
    """A stage's new status, at the workflow's time, with an optional PHI-free note."""

    tenant_id: str
    instance_id: str
    order_index: int
    status: str
    at: str
    notes: str | None = None


@dataclass
class InstanceStatusInput:
    """An instance's new status, at the workflow's time."""

    tenant_id: str
    instance_id: str
    status: str
    at: str
    notes: str | None = None


@dataclass
class ProgressInput:
    """What a journey recorded since its last write, written in order in one transaction: stage statuses
    (a stage's completion and the next one's start, say) and, when it ended, the instance's status."""

    tenant_id: str
    instance_id: str
    stages: list[StageStatusInput] = field(default_factory=list)
    instance: InstanceStatusInput | None = None
