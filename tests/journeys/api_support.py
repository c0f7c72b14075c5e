"""Journeys through the API: defining one, placing a patient on it and watching its stages, registering
patients and booking them, and reading the instances and events that follow."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from core.events import DomainEvent
from domain.journeys.models import JourneyInstance
from tests.journeys.conftest import INSTANCES, JOURNEYS, Clinic

API = "/api/v1/prm"


async def register(client: httpx.AsyncClient, auth: dict[str, str], **fields: Any) -> str:
    """Register a patient through the API; their id."""
    body = {"first_name": "Ana", "last_name": "Lima", **fields}
    resp = await client.post(f"{API}/patients", json=body, headers=auth)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def instances_of(clinic: Clinic, journey_id: str, patient_id: str | uuid.UUID) -> list[JourneyInstance]:
    """The patient's instances of the journey."""
    async with await clinic.session() as session:
        rows = await session.scalars(
            select(JourneyInstance).where(
                JourneyInstance.journey_id == uuid.UUID(journey_id),
                JourneyInstance.patient_id == uuid.UUID(str(patient_id)),
            )
        )
        return list(rows.all())


async def book(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic, days: int, **fields: Any
) -> str:
    """Book the clinic's patient with its practitioner `days` ahead; the appointment's id."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)
    body = {
        "patient_id": str(clinic.patient_id),
        "practitioner_id": str(clinic.practitioner_id),
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(minutes=30)).isoformat(),
        **fields,
    }
    resp = await client.post(f"{API}/appointments", json=body, headers=auth)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def event_types(clinic: Clinic) -> list[str]:
    """The tenant's events, oldest first."""
    async with await clinic.session() as session:
        return list((await session.scalars(select(DomainEvent.type).order_by(DomainEvent.id))).all())


POST_SURGERY = {
    "name": "Post-Surgery Recovery",
    "journey_type": "post_procedure",
    "stages": [
        {
            "name": "Day 0 welcome",
            "order_index": 1,
            "trigger_event": "immediate",
            "actions": [{"type": "send_message", "channel": "whatsapp", "template_id": "post_op_welcome"}],
        },
        {
            "name": "Day 1 check-in",
            "order_index": 2,
            "trigger_event": {"type": "delay", "delay": {"days": 1}},
            "actions": [{"type": "send_message", "channel": "whatsapp", "template_id": "recovery_check_in"}],
        },
        {"name": "Coordinator check-in call", "order_index": 3, "trigger_event": "manual", "actions": {}},
        {
            "name": "Patient replied",
            "order_index": 4,
            "trigger_event": {
                "type": "reply_received",
                "timeout": {"days": 2},
                "on_timeout": "create_ticket",
                "ticket": {
                    "title": "No reply after surgery check-in",
                    "priority": "high",
                    "category": "post_op",
                },
            },
            "actions": [],
        },
    ],
}


async def define(client: httpx.AsyncClient, auth: dict, body: dict | None = None, **fields: Any) -> str:
    resp = await client.post(JOURNEYS, json={**(body or POST_SURGERY), **fields}, headers=auth)
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def place(
    client: httpx.AsyncClient, auth: dict, journey_id: str, patient_id: uuid.UUID, key: str | None = None
) -> httpx.Response:
    headers = {**auth, "Idempotency-Key": key} if key else auth
    body = {"journey_id": journey_id, "patient_id": str(patient_id), "context": {"procedure": "knee"}}
    return await client.post(INSTANCES, json=body, headers=headers)


async def started(client: httpx.AsyncClient, auth: dict, journey_id: str, patient_id: uuid.UUID) -> dict:
    resp = await place(client, auth, journey_id, patient_id)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def stage_statuses(client: httpx.AsyncClient, auth: dict, instance_id: str) -> list[str]:
    resp = await client.get(f"{INSTANCES}/{instance_id}", headers=auth)
    assert resp.status_code == 200, resp.text
    return [s["status"] for s in resp.json()["stages"]]


def statuses_become(client: httpx.AsyncClient, auth: dict, instance_id: str, expected: list[str]) -> Callable:
    async def check() -> bool:
        return await stage_statuses(client, auth, instance_id) == expected

    return check
