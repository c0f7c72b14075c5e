"""Arranging journeys without the API: define one, place the clinic's patient on it, start its workflow."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from sqlalchemy import func, update
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.testing import ActivityEnvironment

from core.gateway import search_attributes
from core.workflow_commands import WorkflowCommand
from domain.communications import templates
from domain.communications.models import CommunicationTemplate
from domain.journeys import service
from domain.journeys.models import JourneyInstance
from domain.journeys.plan import workflow_input_for
from domain.journeys.repository import JourneyRepository
from domain.journeys.schemas import JourneyCreate, JourneyInstanceCreate
from tests.journeys.conftest import Clinic


async def create_instance(
    clinic: Clinic,
    stages: list[dict[str, Any]],
    *,
    appointment_id: uuid.UUID | None = None,
    patient_id: uuid.UUID | None = None,
) -> JourneyInstance:
    """A journey with `stages` and an instance of it for the clinic's patient (committed, not started).

    The start command `create_instance` records with it is settled in the same transaction: these tests
    start the workflow themselves (`start`), on their own task queue, and no relay is to start it too."""
    async with await clinic.session() as session:
        repo = JourneyRepository(session)
        journey = await service.create_journey(
            repo, JourneyCreate.model_validate({"name": f"Journey {uuid.uuid4().hex[:6]}", "stages": stages})
        )
        instance, _ = await service.create_instance(
            session,
            JourneyInstanceCreate(
                journey_id=journey.id,
                patient_id=patient_id or clinic.patient_id,
                appointment_id=appointment_id,
            ),
        )
        await session.execute(
            update(WorkflowCommand)
            .where(
                WorkflowCommand.workflow_id == instance.workflow_id, WorkflowCommand.delivered_at.is_(None)
            )
            .values(delivered_at=func.now(), outcome="settled")
        )
        await session.commit()  # no gateway is bound: nothing is delivered after the commit
        return instance


async def start(client: Client, task_queue: str, instance: JourneyInstance) -> WorkflowHandle[Any, Any]:
    """Start the instance's workflow as its start command (`service.workflow_start`) does; the handle.

    (The time-skipping environment skips time only while awaiting the result of a handle it returned.)"""
    spec = service.workflow_start(instance)
    return await client.start_workflow(
        spec.workflow,
        workflow_input_for(instance),
        id=spec.workflow_id,
        task_queue=task_queue,
        search_attributes=search_attributes(spec.search_attributes),
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )


def send(template_id: str = "post_op_welcome", **extra: Any) -> dict[str, Any]:
    """A send_message action."""
    return {"type": "send_message", "template_id": template_id, **extra}


async def add_tenant_template(
    clinic: Clinic,
    key: str,
    body: str,
    *,
    subject: str = "",
    channel: str = "sms",
    is_active: bool = True,
) -> None:
    """One of the clinic's own message templates (as `POST /communications/templates` stores it)."""
    async with await clinic.session() as session:
        session.add(
            CommunicationTemplate(
                key=key,
                name=key.replace("_", " ").title(),
                channel=channel,
                category="follow_up",
                subject=subject,
                body=body,
                variables=sorted(templates.variables_of(subject) | templates.variables_of(body)),
                is_active=is_active,
            )
        )
        await session.commit()


def activity_env(client: Client) -> ActivityEnvironment:
    """An activity environment whose activities start workflows on a fresh task queue of `client`."""
    env = ActivityEnvironment(client=client)
    env.info = dataclasses.replace(env.info, task_queue=f"journey-activities-{uuid.uuid4().hex[:8]}")
    return env
