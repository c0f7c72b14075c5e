"""Arranging journeys without the API: define one, place the clinic's patient on it, start its workflow."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import ActivityEnvironment

from domain.communications import templates
from domain.communications.models import CommunicationTemplate
from domain.journeys import service
from domain.journeys.models import JourneyInstance
from domain.journeys.plan import WORKFLOW_NAME, journey_workflow_id, workflow_input_for
from domain.journeys.repository import JourneyRepository
from domain.journeys.schemas import JourneyCreate, JourneyInstanceCreate
from tests.journeys.conftest import Clinic


def access_for(client: Client, task_queue: str) -> service.TemporalAccess:
    """A TemporalAccess over an already connected client."""

    async def get_client() -> Client:
        return client

    return service.TemporalAccess(get_client=get_client, task_queue=task_queue)


async def create_instance(
    clinic: Clinic,
    stages: list[dict[str, Any]],
    *,
    appointment_id: uuid.UUID | None = None,
    patient_id: uuid.UUID | None = None,
) -> JourneyInstance:
    """A journey with `stages` and an instance of it for the clinic's patient (committed, not started)."""
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
            access_for(None, "unused"),  # type: ignore[arg-type]
        )
        await session.commit()  # the queued start is not run: the tests start the workflow themselves
        return instance


async def start(client: Client, task_queue: str, instance: JourneyInstance) -> WorkflowHandle[Any, Any]:
    """Start the instance's workflow as `service.start_instance_workflow` does; the handle it returns.

    (The time-skipping environment skips time only while awaiting the result of a handle it returned.)"""
    return await client.start_workflow(
        WORKFLOW_NAME,
        workflow_input_for(instance),
        id=journey_workflow_id(instance.id),
        task_queue=task_queue,
        search_attributes=service.search_attributes_for(instance),
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
