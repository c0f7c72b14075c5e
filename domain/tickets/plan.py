"""What the ticket SLA workflow and its callers exchange: ids, statuses and ISO times, never PHI.

Pure dataclasses (the workflow imports this module); the names of the workflow and its signal
live here so the domain, the activities and the workflow agree on them.
"""

# No `from __future__ import annotations`: payloads are decoded faster (see domain/journeys/plan.py).

from dataclasses import dataclass

WORKFLOW_NAME = "TicketSlaWorkflow"
SIGNAL_CHANGED = "ticket_changed"
FALLBACK_QUEUE = "sla-escalations"  # who is notified of a missed target on an unassigned ticket
FINAL_STATUSES = ("resolved", "closed")
PAUSED_STATUS = "waiting_on_patient"


def ticket_workflow_id(ticket_id: object) -> str:
    """`ticket-<uuid>`: one SLA workflow per ticket (a reopen starts a new run under the same id)."""
    return f"ticket-{ticket_id}"


@dataclass
class TicketChanged:
    """The `ticket_changed` signal: the ticket's status now, and whether a first response is recorded."""

    status: str
    responded: bool = False


@dataclass
class TicketRef:
    """One ticket of one tenant."""

    tenant_id: str
    ticket_id: str


@dataclass
class SlaState:
    """The ticket's SLA state as stored: status, due times (ISO) and what is already met or missed."""

    status: str
    responded: bool
    response_due_at: str | None
    resolution_due_at: str | None
    response_breached: bool
    resolution_breached: bool
    cycle: str = ""  # when the current SLA cycle began (creation or reopen): part of the step keys


@dataclass
class TicketSlaInput:
    """The SLA workflow's input: which ticket, its SLA state when the cycle began (due times set by the
    transaction that opened or reopened it; None: the workflow reads it with its first activity), and a
    pause carried over a continue-as-new."""

    tenant_id: str
    ticket_id: str
    paused_since: str | None = None
    state: SlaState | None = None


def breach_key(ticket_id: str, cycle: str, kind: str) -> str:
    """The unique key of one missed target's escalation within one SLA cycle."""
    return f"sla:{ticket_id}:{cycle}:breach:{kind}"


def pause_key(ticket_id: str, cycle: str, paused_from: str) -> str:
    """The unique key of one pause's shift of the due times."""
    return f"sla:{ticket_id}:{cycle}:pause:{paused_from}"


@dataclass
class BreachInput:
    """A target the workflow saw pass: `kind` is `response` or `resolution`; `key` makes it happen once."""

    tenant_id: str
    ticket_id: str
    kind: str
    at: str
    key: str


@dataclass
class PauseInput:
    """A pause of the clock from `paused_from` to `paused_to` (ISO); `key` makes the shift happen once."""

    tenant_id: str
    ticket_id: str
    paused_from: str
    paused_to: str
    key: str
