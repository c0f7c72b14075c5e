"""Reconciliation: start the workflows whose start was lost between a database commit and Temporal.

Rows that need a workflow (appointments, journey instances, tickets, outbound messages) start it after
their commit; a crash in between leaves the row without one. The worker (`worker.py`) reconciles once at
start-up, again every `PRM_RECONCILE_INTERVAL_SECONDS` and as soon as Temporal is back after an outage
(its command relay), and keeps the periodic `ReconcilerWorkflow` (id `prm-reconciler`) running: a sweep
every 5 minutes that operators see in the Temporal UI. Each round starts, through each domain's own
function, the reminder workflows of active future appointments never marked started, the lost journey
instance workflows, the ticket SLA workflows (tickets that journeys create get their SLA clock here too)
and the delivery workflows of messages never handed over. Workflow ids derive from row ids, so a repeated
round is harmless. This is the one reconciler: a domain with new workflow-backed rows adds its function
here."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client

from activities import ActivityDeps
from core.temporal import TemporalAccess
from domain.communications.dispatch import reconcile_delivery_starts
from domain.journeys import service as journeys
from domain.scheduling.workflow_jobs import start_missing_appointment_workflows
from domain.tickets.sla_workflow import reconcile_ticket_sla_starts

log = logging.getLogger(__name__)


@dataclass
class ReconcileInput:
    """Start lost workflows of rows older than `older_than_seconds`, in one tenant or (None) all."""

    older_than_seconds: float = 120.0
    tenant_id: str | None = None


@dataclass
class ReconcileOutcome:
    """How many workflows one round started, per kind."""

    appointments: int = 0
    journey_instances: int = 0
    tickets: int = 0
    messages: int = 0


async def reconcile_lost_starts(client: Client, deps: ActivityDeps, data: ReconcileInput) -> ReconcileOutcome:
    """One reconciliation round over appointments, journey instances, tickets and outbound messages."""

    async def get_client() -> Client:
        return client

    tenant_id = uuid.UUID(data.tenant_id) if data.tenant_id else None
    access = TemporalAccess(get_client=get_client, task_queue=deps.settings.temporal_task_queue)
    appointments = await start_missing_appointment_workflows(
        deps.sessionmaker, access, older_than=timedelta(seconds=data.older_than_seconds), tenant_id=tenant_id
    )
    journey_instances = await journeys.reconcile_journey_starts(
        deps.sessionmaker, access, older_than_seconds=data.older_than_seconds, tenant_id=tenant_id
    )
    ticket_slas = await reconcile_ticket_sla_starts(
        deps.sessionmaker, access, older_than_seconds=data.older_than_seconds, tenant_id=tenant_id
    )
    messages = await reconcile_delivery_starts(
        deps.sessionmaker, access, older_than_seconds=data.older_than_seconds, tenant_id=tenant_id
    )
    if appointments or journey_instances or ticket_slas or messages:
        log.info(
            "reconciler started %d appointment, %d journey, %d ticket SLA and %d message workflows",
            appointments,
            journey_instances,
            ticket_slas,
            messages,
        )
    return ReconcileOutcome(
        appointments=appointments, journey_instances=journey_instances, tickets=ticket_slas, messages=messages
    )


class ReconcileActivities:
    """The reconciler's activity, bound to the worker's dependencies."""

    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps

    @activity.defn(name="reconcile_lost_starts")
    async def reconcile_lost_starts(self, data: ReconcileInput) -> ReconcileOutcome:
        """Start the workflows lost between a commit and Temporal (harmless to repeat)."""
        return await reconcile_lost_starts(activity.client(), self.deps, data)

    def all(self) -> list[Any]:
        """Every activity of this group, for the worker."""
        return [self.reconcile_lost_starts]
