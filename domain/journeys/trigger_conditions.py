"""A journey's `trigger_conditions`: which domain event starts it on its own, for which patients, after what
delay, and how often (a validated, declarative matcher).

The shape is a union discriminated on `event` (one variant per family of events, each allowing only the
conditions that family's events carry), so a condition an event cannot meet (a keyword on an appointment)
is a 422 naming the field. `{}` means "no automatic start". Stored as `model_dump(mode="json")`.

    {"event": "appointment.no_show",
     "conditions": {"appointment_types": ["consultation"], "age": {"min": 18}},
     "delay": {"hours": 2},
     "repeat": {"policy": "after_cooldown", "cooldown": {"days": 30}}}

`mismatches` says why an event does not match (an empty list: it matches); the dispatcher and the dry run
both use it, so what the dry run shows is what the dispatcher does.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from core.events import EventType
from domain.enums import Channel, Gender, RepeatPolicy, TicketPriority
from domain.journeys.triggers import Duration, PositiveDuration
from domain.schemas import JsonTyped

MAX_VALUES = 50  # values in one condition's list

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Names = Annotated[list[Name], Field(min_length=1, max_length=MAX_VALUES)]
Ids = Annotated[list[uuid.UUID], Field(min_length=1, max_length=MAX_VALUES)]


class _Shape(JsonTyped):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AgeRange(_Shape):
    """The patient's age in whole years on the day of the event, `min` and `max` included."""

    min: int | None = Field(default=None, ge=0, le=150)
    max: int | None = Field(default=None, ge=0, le=150)

    @model_validator(mode="after")
    def _a_range(self) -> AgeRange:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not be greater than max")
        return self


# ---- conditions, per family of events ------------------------------------------------------------------


class PatientConditions(_Shape):
    """Conditions on the patient (every event names one): each given condition must hold; a list matches
    any of its values."""

    age: AgeRange | None = None
    genders: Annotated[list[Gender], Field(min_length=1, max_length=4)] | None = None
    languages: Names | None = Field(
        default=None, description='Preferred languages: "es" matches "es" and "es-MX"'
    )


class AppointmentConditions(PatientConditions):
    """Conditions on an appointment event: its type, practitioner or speciality, location and the channel
    it was booked through."""

    appointment_types: Names | None = None
    practitioner_ids: Ids | None = None
    specialities: Names | None = None
    location_ids: Ids | None = None
    channels: Names | None = Field(default=None, description="The booking's source channel")


class MessageConditions(PatientConditions):
    """Conditions on an inbound message: its channel, and words or phrases it contains (any of them, whole
    words, case-insensitive)."""

    channels: Annotated[list[Channel], Field(min_length=1, max_length=3)] | None = None
    keywords: Names | None = None


class TicketConditions(PatientConditions):
    """Conditions on a resolved ticket: its category and priority."""

    categories: Names | None = None
    priorities: Annotated[list[TicketPriority], Field(min_length=1, max_length=4)] | None = None


class EncounterConditions(PatientConditions):
    """Conditions on an encounter (admission, discharge) from the clinic's EHR: a procedure (a code, or
    words of its name, case-insensitive), the practitioner or speciality, the location."""

    procedures: Names | None = Field(
        default=None, description='A procedure code ("27447") or part of its name ("knee replacement")'
    )
    practitioner_ids: Ids | None = None
    specialities: Names | None = None
    location_ids: Ids | None = None


# ---- repeat policies -------------------------------------------------------------------------------------


class NeverAgain(_Shape):
    """A patient is started on the journey at most once (also not when already placed on it by hand)."""

    policy: Literal["never"] = "never"


class OncePerRecord(_Shape):
    """Once per triggering record: one start per appointment (ticket, message, encounter...)."""

    policy: Literal["once_per_record"] = "once_per_record"


class AfterCooldown(_Shape):
    """Again, but only once `cooldown` has passed since the patient's last start on the journey."""

    policy: Literal["after_cooldown"] = "after_cooldown"
    cooldown: PositiveDuration


Repeat = Annotated[NeverAgain | OncePerRecord | AfterCooldown, Field(discriminator="policy")]


def _coerce_repeat(value: Any) -> Any:
    return {"policy": value} if isinstance(value, str) else value


class _Trigger(_Shape):
    delay: Duration | None = Field(
        default=None, description="Start this long after the event (durable: survives restarts)"
    )
    repeat: Repeat = Field(
        default_factory=OncePerRecord,
        description="`never`, `once_per_record` (the default) or `after_cooldown` with a `cooldown`; "
        "a plain string is accepted for the first two",
    )

    @model_validator(mode="before")
    @classmethod
    def _repeat_as_string(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("repeat"), str):
            return {**data, "repeat": _coerce_repeat(data["repeat"])}
        return data


class PatientTrigger(_Trigger):
    """Start on a patient's registration, update or merge."""

    event: Literal["patient.registered", "patient.updated", "patient.merged"]
    conditions: PatientConditions = Field(default_factory=PatientConditions)


class AppointmentTrigger(_Trigger):
    """Start on a change to one of the patient's appointments; the instance is timed against it."""

    event: Literal[
        "appointment.booked",
        "appointment.rescheduled",
        "appointment.checked_in",
        "appointment.completed",
        "appointment.no_show",
        "appointment.cancelled",
    ]
    conditions: AppointmentConditions = Field(default_factory=AppointmentConditions)


class MessageTrigger(_Trigger):
    """Start when the patient sends a message."""

    event: Literal["message.received"]
    conditions: MessageConditions = Field(default_factory=MessageConditions)


class TicketTrigger(_Trigger):
    """Start when one of the patient's tickets is resolved."""

    event: Literal["ticket.resolved"]
    conditions: TicketConditions = Field(default_factory=TicketConditions)


class EncounterTrigger(_Trigger):
    """Start on an admission or a discharge reported by the clinic's EHR, or on its cancellation (A11/A13)."""

    event: Literal[
        "encounter.admitted",
        "encounter.discharged",
        "encounter.admission_cancelled",
        "encounter.discharge_cancelled",
    ]
    conditions: EncounterConditions = Field(default_factory=EncounterConditions)


JourneyTrigger = Annotated[
    PatientTrigger | AppointmentTrigger | MessageTrigger | TicketTrigger | EncounterTrigger,
    Field(discriminator="event"),
]
AnyTrigger = PatientTrigger | AppointmentTrigger | MessageTrigger | TicketTrigger | EncounterTrigger
trigger_adapter: TypeAdapter[Any] = TypeAdapter(JourneyTrigger)


def empty_means_none(value: Any) -> Any:
    """`{}` (the reference's default) and null mean "no automatic start"."""
    return None if value is None or value == {} else value


def parse_trigger_conditions(raw: Any) -> AnyTrigger | None:
    """Stored `trigger_conditions` as their typed shape; None for `{}` and for a shape no longer valid
    (written before conditions were validated: such a journey starts only by hand)."""
    if not raw:
        return None
    try:
        return trigger_adapter.validate_python(raw)  # type: ignore[no-any-return]
    except ValidationError:
        return None


def dump_trigger_conditions(trigger: AnyTrigger | None) -> dict[str, Any]:
    """What is stored: the shape as JSON, `{}` for none."""
    return {} if trigger is None else trigger.model_dump(mode="json", exclude_none=True)


# ---- matching ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFacts:
    """What a trigger matches against: the event, its facts, the patient's, and an inbound message's text."""

    type: str
    occurred_at: datetime
    facts: dict[str, Any] = field(default_factory=dict)
    date_of_birth: date | None = None
    gender: str | None = None
    language: str | None = None
    text: str | None = None


def age_on(born: date, day: date) -> int:
    """Whole years from `born` to `day`."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _lower(value: Any) -> str:
    return str(value).strip().lower()


def _one_of(fact: Any, allowed: list[Any]) -> bool:
    return fact is not None and _lower(fact) in {_lower(v) for v in allowed}


def _language_matches(language: str | None, wanted: list[str]) -> bool:
    if not language:
        return False
    language = _lower(language).replace("_", "-")
    return any(language == w or language.startswith(w + "-") for w in map(_lower, wanted))


def _has_keyword(text: str | None, keywords: list[str]) -> bool:
    if not text:
        return False
    return any(re.search(rf"(?<!\w){re.escape(k)}(?!\w)", text, re.IGNORECASE) for k in keywords)


def _listed(value: Any) -> list[Any]:
    """A fact that may be one value or a list of them, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _has_procedure(facts: dict[str, Any], wanted: list[str]) -> bool:
    codes = {_lower(c) for c in _listed(facts.get("procedure_codes"))}
    names = [_lower(n) for n in _listed(facts.get("procedure_names"))]
    return any(_lower(w) in codes or any(_lower(w) in n for n in names) for w in wanted)


def mismatches(trigger: AnyTrigger, event: EventFacts) -> list[str]:
    """Why `event` does not start the journey under `trigger` (empty: it does). No patient data in them."""
    if event.type != trigger.event:
        return [f"the trigger is {trigger.event}, not {event.type}"]
    c = trigger.conditions
    facts = event.facts
    reasons: list[str] = []
    if c.age is not None:
        if event.date_of_birth is None:
            reasons.append("age: the patient has no date of birth")
        else:
            age = age_on(event.date_of_birth, event.occurred_at.date())
            if (c.age.min is not None and age < c.age.min) or (c.age.max is not None and age > c.age.max):
                reasons.append("age: outside the range")
    if c.genders is not None and not _one_of(facts.get("gender", event.gender), list(c.genders)):
        reasons.append("genders: the patient's gender is not listed")
    if c.languages is not None and not _language_matches(facts.get("language", event.language), c.languages):
        reasons.append("languages: the patient's preferred language is not listed")
    for name, fact in (
        ("appointment_types", "appointment_type"),
        ("practitioner_ids", "practitioner_id"),
        ("specialities", "speciality"),
        ("location_ids", "location_id"),
        ("channels", "channel"),
        ("categories", "category"),
        ("priorities", "priority"),
    ):
        allowed = getattr(c, name, None)
        if allowed is not None and not _one_of(facts.get(fact), list(allowed)):
            reasons.append(f"{name}: the event's {fact} is not listed")
    keywords = getattr(c, "keywords", None)
    if keywords is not None and not _has_keyword(event.text, keywords):
        reasons.append("keywords: the message contains none of them")
    procedures = getattr(c, "procedures", None)
    if procedures is not None and not _has_procedure(facts, procedures):
        reasons.append("procedures: the encounter names none of them")
    return reasons


@dataclass(frozen=True)
class Verdict:
    """Whether a journey starts for an event, and if so after what delay and under which repeat policy."""

    reasons: list[str]
    delay: timedelta = timedelta(0)
    repeat: RepeatPolicy = RepeatPolicy.ONCE_PER_RECORD
    cooldown: timedelta | None = None

    @property
    def matched(self) -> bool:
        """No reason against it."""
        return not self.reasons


def evaluate(is_default: bool, trigger: AnyTrigger | None, event: EventFacts) -> Verdict:
    """The journey's verdict on `event`: its trigger conditions, and (a default journey) every new patient.

    A default journey starts once for every registered patient, whatever its conditions; conditions that
    also name `patient.registered` only add their delay."""
    default_start = is_default and event.type == EventType.PATIENT_REGISTERED.value
    if trigger is None:
        if default_start:
            return Verdict([], repeat=RepeatPolicy.NEVER)
        if is_default:
            return Verdict(
                ["a default journey starts on patient.registered only (it has no trigger conditions)"]
            )
        return Verdict(["the journey has no trigger conditions and is not a default journey"])
    reasons = mismatches(trigger, event)
    delay = trigger.delay.to_timedelta() if trigger.delay else timedelta(0)
    if reasons:
        if default_start:
            return Verdict([], repeat=RepeatPolicy.NEVER)
        return Verdict(reasons)
    repeat = RepeatPolicy(trigger.repeat.policy)
    cooldown = trigger.repeat.cooldown.to_timedelta() if isinstance(trigger.repeat, AfterCooldown) else None
    if default_start:
        repeat, cooldown = RepeatPolicy.NEVER, None
    return Verdict([], delay=delay, repeat=repeat, cooldown=cooldown)
