"""Journey definition and journey instance shapes, named as in the reference."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from core.pagination import Page
from domain.enums import JourneyInstanceStatus, RepeatPolicy, StageStatus, TriggerStartStatus
from domain.journeys.trigger_conditions import JourneyTrigger, empty_means_none
from domain.journeys.triggers import (
    ImmediateTrigger,
    StageAction,
    TriggerEvent,
    coerce_actions,
    coerce_trigger,
)
from domain.schemas import FreeJson, NotNull, RequestModel, ResponseModel

# The shorthands the before-validators take, stated in the schema as the alternatives they are.
EmptyObject = Annotated[dict[str, Any], WithJsonSchema({"type": "object", "maxProperties": 0})]


def _request_actions(value: Any) -> Any:
    """`{}` means no actions, a single action object a list of one; `null` is no list."""
    if value is None:
        raise ValueError("must be a list of actions ({} or [] for none)")
    return coerce_actions(value)


Trigger = Annotated[
    TriggerEvent,
    BeforeValidator(coerce_trigger, json_schema_input_type=TriggerEvent | Literal["manual", "immediate"]),
    Field(
        description='What starts the stage: an object with a `type`, or just the type name ("manual", '
        '"immediate") for its defaults'
    ),
]
TriggerConditions = Annotated[
    JourneyTrigger | None,
    BeforeValidator(empty_means_none, json_schema_input_type=JourneyTrigger | EmptyObject | None),
    Field(
        description="What starts the journey on its own: a domain `event` (patient.registered, "
        "appointment.no_show, message.received, encounter.discharged, ...), `conditions` on the event and "
        "the patient, an optional `delay` and a `repeat` policy. `{}` or null: started only by hand (and, "
        "for a default journey, for every new patient)"
    ),
]
Actions = Annotated[
    list[StageAction],
    BeforeValidator(_request_actions, json_schema_input_type=list[StageAction] | StageAction | EmptyObject),
    Field(description="What the stage does, in order; `{}` or `[]` for none"),
]

# ---- definitions ----------------------------------------------------------------------------------


class JourneyStageCreate(RequestModel):
    """Body of `POST /journeys/{id}/stages`, and each item of `JourneyCreate.stages`."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    order_index: int = Field(ge=0, le=10_000, description="Position in the journey; unique per journey")
    trigger_event: Trigger = Field(default_factory=ImmediateTrigger)
    actions: Actions = Field(default_factory=list)


class JourneyStageUpdate(RequestModel):
    """Body of `PATCH /journeys/{id}/stages/{stage_id}`: only the fields sent change."""

    name: Annotated[str | None, NotNull] = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    order_index: Annotated[int | None, NotNull] = Field(default=None, ge=0, le=10_000)
    trigger_event: Annotated[Trigger | None, NotNull] = None
    actions: Annotated[Actions | None, NotNull] = None


def _unique_order(stages: list[JourneyStageCreate]) -> list[JourneyStageCreate]:
    seen: set[int] = set()
    for stage in stages:
        if stage.order_index in seen:
            raise ValueError(f"duplicate order_index {stage.order_index}: each stage needs its own")
        seen.add(stage.order_index)
    return stages


class JourneyCreate(RequestModel):
    """Body of `POST /journeys`; `tenant_id` may be omitted and must otherwise be the caller's."""

    tenant_id: uuid.UUID | None = None
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    journey_type: str | None = Field(default=None, max_length=64)
    is_default: bool = Field(
        default=False, description="Start this journey for every new patient of the tenant (once each)"
    )
    is_active: bool = True
    trigger_conditions: TriggerConditions = None
    stages: Annotated[list[JourneyStageCreate], AfterValidator(_unique_order)] = Field(
        default_factory=list, max_length=100
    )


class JourneyUpdate(RequestModel):
    """Body of `PATCH /journeys/{id}`: only the fields sent change (stages have their own endpoints)."""

    name: Annotated[str | None, NotNull] = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    journey_type: str | None = Field(default=None, max_length=64)
    is_default: Annotated[bool | None, NotNull] = None
    is_active: Annotated[bool | None, NotNull] = Field(
        default=None, description="false stops new starts (by hand and by triggers); running instances go on"
    )
    trigger_conditions: TriggerConditions = None


class JourneyStageResponse(ResponseModel):
    """A stage of a journey definition."""

    id: uuid.UUID
    journey_id: uuid.UUID
    name: str
    description: str | None
    order_index: int
    trigger_event: Trigger
    actions: Actions
    created_at: datetime
    updated_at: datetime


class JourneyResponse(ResponseModel):
    """A journey definition with its stages in order."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    description: str | None
    journey_type: str | None
    is_default: bool
    is_active: bool
    trigger_conditions: dict[str, Any]
    stages: list[JourneyStageResponse] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class JourneyListResponse(Page[JourneyResponse]):
    """A page of journey definitions."""


# ---- instances ------------------------------------------------------------------------------------


class JourneyInstanceCreate(RequestModel):
    """Body of `POST /journeys/instances`: place a patient on a journey."""

    tenant_id: uuid.UUID | None = None
    journey_id: uuid.UUID
    patient_id: uuid.UUID
    appointment_id: uuid.UUID | None = Field(
        default=None, description="The appointment that before/after_appointment stages are timed against"
    )
    encounter_id: uuid.UUID | None = None
    context: FreeJson = Field(default_factory=dict)


class AdvanceStageRequest(RequestModel):
    """Body of `POST /journeys/instances/{id}/advance`: optionally, the stage the caller means to advance.

    Naming the stage (by `stage_id`, `order_index`, or both) makes a repeated click or a retry harmless: once
    that stage has moved on, the request is 409 instead of advancing the next manual stage. Without either,
    the request advances the stage that is waiting now, once."""

    notes: str | None = Field(default=None, max_length=5000)
    stage_id: uuid.UUID | None = Field(
        default=None, description="The stage to advance: a `stage_id` from the instance's `stages`"
    )
    order_index: int | None = Field(
        default=None, ge=0, le=10_000, description="The stage to advance, by its `order_index`"
    )

    @property
    def names_a_stage(self) -> bool:
        """Whether the request says which stage it means."""
        return self.stage_id is not None or self.order_index is not None


class JourneyInstanceResponse(ResponseModel):
    """A patient's journey: where it stands and the workflow that drives it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    journey_id: uuid.UUID
    patient_id: uuid.UUID
    appointment_id: uuid.UUID | None
    encounter_id: uuid.UUID | None
    status: JourneyInstanceStatus
    current_stage_id: uuid.UUID | None
    context: dict[str, Any]
    workflow_id: str | None
    started_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AdvancedStage(ResponseModel):
    """The stage an advance completed."""

    stage_id: uuid.UUID | None
    order_index: int
    name: str


class AdvanceStageResponse(JourneyInstanceResponse):
    """The instance after an advance, and the stage that advance completed (the same on a repeated
    request under one `Idempotency-Key`)."""

    advanced_stage: AdvancedStage


class JourneyInstanceStageResponse(ResponseModel):
    """One stage's progress within an instance."""

    id: uuid.UUID
    stage_id: uuid.UUID | None
    order_index: int
    name: str
    status: StageStatus
    started_at: datetime | None
    completed_at: datetime | None
    notes: str | None


class JourneyInstanceWithStages(JourneyInstanceResponse):
    """An instance with the journey's name and every stage's status, timestamps and notes."""

    journey_name: str | None = None
    stages: list[JourneyInstanceStageResponse] = Field(default_factory=list)


class JourneyInstanceListResponse(Page[JourneyInstanceResponse]):
    """A page of journey instances."""


class JourneyInstanceStats(ResponseModel):
    """Counts of instances: totals, by status, and by journey name."""

    total: int
    active: int
    completed: int
    cancelled: int
    by_status: dict[str, int]
    by_journey: dict[str, int]


# ---- trigger dry run --------------------------------------------------------------------------------


class TriggerStartView(ResponseModel):
    """What the dispatcher already did with this event for this journey."""

    status: TriggerStartStatus
    due_at: datetime
    instance_id: uuid.UUID | None
    reason: str | None


class TriggerTestItem(ResponseModel):
    """One recent event, and whether the journey's trigger would start the journey for it (and why not)."""

    event_id: int
    type: str
    occurred_at: datetime
    source: str
    patient_id: uuid.UUID | None
    subject_type: str | None
    subject_id: str | None
    facts: dict[str, Any]
    matched: bool = Field(description="The trigger's event and conditions match this event")
    reasons: list[str] = Field(description="Why it does not match (empty when it does)")
    would_start_at: datetime | None = Field(description="The event's time plus the trigger's delay")
    repeat: RepeatPolicy | None
    start: TriggerStartView | None = Field(
        description="The start the dispatcher recorded for this event (the repeat policy may have refused "
        "one: then there is none)"
    )


class TriggerTestResponse(Page[TriggerTestItem]):
    """A page of the tenant's recent events, newest first, each with the journey's verdict on it."""

    journey_id: uuid.UUID
    is_active: bool = Field(description="An inactive journey starts nothing, whatever matches")
    is_default: bool
    trigger_conditions: dict[str, Any]
    window_start: datetime
