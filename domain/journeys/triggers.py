"""What starts a journey stage (its trigger) and what the stage does (its actions), as validated shapes.

Both are discriminated unions on `type`, so an unknown trigger or action is a 422 naming the allowed
types, and the OpenAPI document shows every variant. They are stored in `journey_stages.trigger_event` and
`journey_stages.actions` exactly as `model_dump(mode="json")` returns them.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter, model_validator

from domain.communications.templates import TemplateError, is_builtin, missing_variables
from domain.enums import Channel, TicketPriority
from domain.schemas import JsonTyped

MAX_DURATION = timedelta(days=366)


class _Shape(JsonTyped):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Duration(_Shape):
    """A length of time, e.g. `{"days": 1}` or `{"hours": 2, "minutes": 30}` or `{"seconds": 90}`."""

    # Each part bounded on its own too, so an absurd one (`{"seconds": 1e16}`) is a 422, never an overflow.
    days: int = Field(default=0, ge=0, le=366)
    hours: int = Field(default=0, ge=0, le=366 * 24)
    minutes: int = Field(default=0, ge=0, le=366 * 24 * 60)
    seconds: int = Field(default=0, ge=0, le=366 * 24 * 3600)

    @model_validator(mode="after")
    def _bounded(self) -> Duration:
        if self.to_timedelta() > MAX_DURATION:
            raise ValueError("a duration is at most 366 days")
        return self

    def to_timedelta(self) -> timedelta:
        """The duration as a timedelta."""
        return timedelta(days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds)

    def total_seconds(self) -> int:
        """The duration in whole seconds."""
        return int(self.to_timedelta().total_seconds())


def _positive(d: Duration) -> Duration:
    """Longer than zero."""
    if d.total_seconds() <= 0:
        raise ValueError("the duration must be longer than zero")
    return d


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]
OnTimeout = Literal["continue", "skip", "create_ticket"]


class TicketSpec(_Shape):
    """A follow-up ticket for the clinic's team (created under the journey instance, about its patient)."""

    title: str = Field(min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=5000)
    priority: TicketPriority = TicketPriority.MEDIUM
    category: str | None = Field(default=None, max_length=64)
    assigned_to: uuid.UUID | None = None


DEFAULT_TIMEOUT_TICKET = TicketSpec(
    title="No reply from patient on their journey",
    description="The patient did not reply within the journey's time limit. Please follow up.",
    priority=TicketPriority.HIGH,
    category="follow_up",
)


# ---- triggers -------------------------------------------------------------------------------------


class ManualTrigger(_Shape):
    """The stage's actions run when it becomes current; it then waits for a coordinator to advance it."""

    type: Literal["manual"] = "manual"


class ImmediateTrigger(_Shape):
    """The stage runs as soon as the previous one completes (or the instance starts)."""

    type: Literal["immediate"] = "immediate"


class DelayTrigger(_Shape):
    """The stage runs `delay` after the previous stage completed (or the instance started)."""

    type: Literal["delay"] = "delay"
    delay: PositiveDuration


class BeforeAppointmentTrigger(_Shape):
    """The stage runs `offset` before the instance's appointment (at once if that time has passed).

    Skipped when the instance has no appointment."""

    type: Literal["before_appointment"] = "before_appointment"
    offset: Duration


class AfterAppointmentTrigger(_Shape):
    """The stage runs `offset` after the instance's appointment starts. Skipped without an appointment."""

    type: Literal["after_appointment"] = "after_appointment"
    offset: Duration


class ReplyReceivedTrigger(_Shape):
    """The stage runs when the patient replies to the journey's latest message, waiting at most `timeout`.

    On timeout: `continue` runs the stage's actions anyway, `skip` skips the stage, `create_ticket` creates
    `ticket` (or a default high-priority follow-up ticket) and skips the stage's actions."""

    type: Literal["reply_received"] = "reply_received"
    timeout: PositiveDuration
    on_timeout: OnTimeout = "continue"
    ticket: TicketSpec | None = None


TriggerEvent = Annotated[
    ManualTrigger
    | ImmediateTrigger
    | DelayTrigger
    | BeforeAppointmentTrigger
    | AfterAppointmentTrigger
    | ReplyReceivedTrigger,
    Field(discriminator="type"),
]
TRIGGER_TYPES = ("manual", "immediate", "delay", "before_appointment", "after_appointment", "reply_received")


def coerce_trigger(value: Any) -> Any:
    """`"manual"` (a plain string, as in the reference) means `{"type": "manual"}` with defaults."""
    if isinstance(value, str):
        return {"type": value}
    return value


# ---- actions --------------------------------------------------------------------------------------


class _MessageContent(_Shape):
    """Either a `template_id` or literal `text` (itself a template), and the variables to fill.

    A built-in template and literal text are checked here. Any other `template_id` names one of the tenant's
    own templates, which this validator cannot see: the journeys service checks those against the tenant's
    active templates when a definition is saved (`domain.journeys.definitions`)."""

    channel: Channel | Literal["preferred"] = Field(
        default="preferred", description='A channel, or "preferred" for the patient\'s preferred channel'
    )
    template_id: str | None = Field(
        default=None,
        max_length=100,
        description="A built-in template's id, or the id of one of your tenant's active templates "
        "(GET /communications/templates)",
    )
    text: str | None = Field(
        default=None, max_length=4000, description="Literal text; may use {{ variables }}"
    )
    subject: str | None = Field(default=None, max_length=300, description="Email subject for literal text")
    variables: dict[str, str] = Field(
        default_factory=dict,
        description="Values for the template's own variables; patient_name, patient_first_name, "
        "practitioner_name, appointment_date, appointment_time and clinic_name are filled by the system",
    )

    @model_validator(mode="after")
    def _content_is_complete(self) -> _MessageContent:
        if (self.template_id is None) == (self.text is None):
            raise ValueError("give exactly one of template_id or text")
        try:
            if self.template_id is not None:
                if not is_builtin(self.template_id):
                    return self  # a tenant's template: checked against the database by the service
                missing = missing_variables(self.template_id, self.variables, is_template_id=True)
            else:
                assert self.text is not None
                missing = missing_variables(self.text, self.variables, is_template_id=False)
                if self.subject:
                    missing |= missing_variables(self.subject, self.variables, is_template_id=False)
        except TemplateError as exc:
            raise ValueError(str(exc)) from exc
        if missing:
            raise ValueError(f"missing template variables: {', '.join(sorted(missing))}")
        return self


class SendMessageAction(_MessageContent):
    """Send the patient a message now."""

    type: Literal["send_message"] = "send_message"


class CreateTicketAction(TicketSpec):
    """Create a follow-up ticket for the clinic's team."""

    type: Literal["create_ticket"] = "create_ticket"


class ScheduleReminderAction(_MessageContent):
    """Send the patient a message `before_appointment` before the instance's appointment.

    The journey moves on at once; the reminder is sent at its time (at once if that has passed) and the
    instance completes only after it went out. Skipped when the instance has no appointment."""

    type: Literal["schedule_reminder"] = "schedule_reminder"
    before_appointment: Duration = Field(description="How long before the appointment to send")


class WaitForReplyAction(_Shape):
    """Wait for the patient to reply to the journey's latest message before the stage's next actions.

    On timeout: `continue` runs the next actions anyway, `skip` ends the stage without them,
    `create_ticket` creates `ticket` (or a default follow-up ticket) and ends the stage."""

    type: Literal["wait_for_reply"] = "wait_for_reply"
    timeout: PositiveDuration
    on_timeout: OnTimeout = "continue"
    ticket: TicketSpec | None = None


StageAction = Annotated[
    SendMessageAction | CreateTicketAction | ScheduleReminderAction | WaitForReplyAction,
    Field(discriminator="type"),
]
ACTION_TYPES = ("send_message", "create_ticket", "schedule_reminder", "wait_for_reply")


def coerce_actions(value: Any) -> Any:
    """`{}` (as in the reference) means no actions; a single action object means a list of one."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [value] if value else []
    return value


trigger_adapter: TypeAdapter[Any] = TypeAdapter(TriggerEvent)
actions_adapter: TypeAdapter[Any] = TypeAdapter(list[StageAction])


def parse_trigger(raw: Any) -> Any:
    """A stored or submitted trigger as its typed shape."""
    return trigger_adapter.validate_python(coerce_trigger(raw))


def parse_actions(raw: Any) -> list[Any]:
    """Stored or submitted actions as their typed shapes."""
    return list(actions_adapter.validate_python(coerce_actions(raw)))


def tenant_template_id(action: Any) -> str | None:
    """The tenant template a message action names (None for built-ins, literal text and other actions)."""
    template_id = getattr(action, "template_id", None)
    return None if template_id is None or is_builtin(template_id) else template_id
