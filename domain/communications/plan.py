"""What the delivery workflow and its callers exchange: ids, channels, statuses and times, never a
recipient or a message body.

Pure dataclasses and names: the workflow imports this module, and so do `dispatch` (which starts it) and
the activities that serve it, so the workflow never imports the rest of the domain.
"""

# No `from __future__ import annotations`: payloads are decoded faster (see domain/journeys/plan.py).

import uuid
from dataclasses import dataclass

WORKFLOW_NAME = "CommunicationDeliveryWorkflow"


@dataclass
class DeliveryInput:
    """The delivery workflow's input: ids only, never a recipient or a message body."""

    tenant_id: str
    communication_id: str


def delivery_workflow_id(communication_id: uuid.UUID | str) -> str:
    """`communication-<uuid>`: the one delivery workflow of a message."""
    return f"communication-{communication_id}"


@dataclass
class CommunicationRef:
    """One message."""

    tenant_id: str
    communication_id: str


@dataclass
class DeliveryPlan:
    """What the delivery workflow needs to know up front (no PHI)."""

    channel: str
    scheduled_for: str | None
    fallback_minutes: int
    # False when the channel's provider never reports delivery (the outbox): waiting for it is pointless.
    # Defaults to True so plans recorded before the field existed replay as they ran.
    reports_delivery: bool = True


@dataclass
class PolicyInput:
    """Ask the send policy about one message at the workflow's time."""

    tenant_id: str
    communication_id: str
    now: str


@dataclass
class PolicyAnswer:
    """`send`, `wait` (until), `refuse` (recorded as failed), or `done` (nothing left to send)."""

    verdict: str
    reason: str
    until: str | None = None


@dataclass
class SendInput:
    """Send one message; `at` is the workflow's time of the decision (recorded as sent_at)."""

    tenant_id: str
    communication_id: str
    at: str


@dataclass
class FallbackInput:
    """Send the same content on `channel` unless the message was delivered meanwhile."""

    tenant_id: str
    communication_id: str
    channel: str


@dataclass
class FailInput:
    """Give up on a message with a PHI-free reason."""

    tenant_id: str
    communication_id: str
    code: str
    reason: str
    at: str
