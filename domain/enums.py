"""Value sets shared by models, schemas and database CHECK constraints."""

from __future__ import annotations

from enum import StrEnum


class PatientStatus(StrEnum):
    """Lifecycle of a patient record."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    DECEASED = "deceased"


class Gender(StrEnum):
    """Administrative gender (FHIR's value set)."""

    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


class Channel(StrEnum):
    """Ways to reach a patient."""

    WHATSAPP = "whatsapp"
    SMS = "sms"
    EMAIL = "email"


class AppointmentStatus(StrEnum):
    """Lifecycle of an appointment."""

    BOOKED = "booked"
    CONFIRMED = "confirmed"
    CHECKED_IN = "checked_in"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


ACTIVE_APPOINTMENT_STATUSES = (
    AppointmentStatus.BOOKED,
    AppointmentStatus.CONFIRMED,
    AppointmentStatus.CHECKED_IN,
)


class SlotStatus(StrEnum):
    """Whether a practitioner's time slot can be booked."""

    OPEN = "open"
    BLOCKED = "blocked"


class JourneyInstanceStatus(StrEnum):
    """Lifecycle of a patient's journey."""

    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


class TriggerStartStatus(StrEnum):
    """Where a journey start that an event triggered stands."""

    PENDING = "pending"  # waiting for its delay to pass
    STARTED = "started"
    SKIPPED = "skipped"  # the journey or the patient no longer qualified when it was due


class RepeatPolicy(StrEnum):
    """Whether an event may start a journey for a patient already started on it by an earlier event."""

    NEVER = "never"  # once per patient
    ONCE_PER_RECORD = "once_per_record"  # once per triggering record (an appointment, a ticket, ...)
    AFTER_COOLDOWN = "after_cooldown"  # again once a cool-down has passed since the last start


class StageStatus(StrEnum):
    """Progress of one stage within a journey instance."""

    PENDING = "pending"
    ACTIVE = "active"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"


class Direction(StrEnum):
    """Whether a message went to the patient or came from them."""

    OUTBOUND = "outbound"
    INBOUND = "inbound"


class CommunicationStatus(StrEnum):
    """Delivery state of a message; ordered queued < sent < delivered < read, failed is final."""

    PENDING = "pending"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    RECEIVED = "received"


# Not handed to a provider yet: what the send step may still send, and what a lost start leaves behind.
UNSENT_COMMUNICATION_STATUSES = (
    CommunicationStatus.PENDING,
    CommunicationStatus.SCHEDULED,
    CommunicationStatus.QUEUED,
)


class TicketStatus(StrEnum):
    """Lifecycle of a support ticket."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    WAITING_ON_PATIENT = "waiting_on_patient"
    RESOLVED = "resolved"
    CLOSED = "closed"


class TicketPriority(StrEnum):
    """How soon a ticket needs attention."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


def sql_in(values: type[StrEnum] | tuple[StrEnum, ...]) -> str:
    """`'a', 'b', ...` for a CHECK constraint over an enum's values."""
    return ", ".join(f"'{v.value}'" for v in values)
