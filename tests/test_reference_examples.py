"""The API reference's example request bodies are accepted as written (`prm-api-reference.md`, v0.2.0).

Each example is copied here verbatim, as data, under the section it comes from. Only its placeholders are
filled: every `"uuid"` / `"uuid (optional)"` with the id of a record this test made, the `" (optional)"`
note after a value dropped, and the phone number `+1234567890` (which no telephone network can dial)
replaced by one that can be dialled.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from activities import ActivityDeps
from tests.journeys.app_support import app_on
from tests.polling import eventually

API = "/api/v1/prm"
DIALABLE = "+14155550123"

# "Practitioners API" > "Create Practitioner": POST /practitioners
CREATE_PRACTITIONER = {
    "tenant_id": "uuid",
    "first_name": "John",
    "last_name": "Smith",
    "middle_name": "A",
    "gender": "male",
    "qualification": "MD, FACC",
    "speciality": "Cardiology",
    "sub_speciality": "Interventional Cardiology",
    "license_number": "MD123456",
    "registration_number": "REG789",
    "phone_primary": "+1234567890",
    "email_primary": "dr.smith@clinic.com",
    "is_active": True,
    "meta_data": {},
}

# "Appointments API" > "Create Appointment": POST /appointments
CREATE_APPOINTMENT = {
    "tenant_id": "uuid",
    "patient_id": "uuid",
    "practitioner_id": "uuid",
    "location_id": "uuid",
    "time_slot_id": "uuid",
    "appointment_type": "consultation",
    "reason_text": "Annual checkup",
    "source_channel": "web",
}

# "Journeys API" > "Create Journey": POST /journeys
CREATE_JOURNEY = {
    "tenant_id": "uuid",
    "name": "Post-Surgery Recovery",
    "description": "Patient journey for post-surgical care",
    "journey_type": "post_procedure",
    "is_default": False,
    "trigger_conditions": {},
    "stages": [
        {
            "name": "Day 1 Check-in",
            "order_index": 1,
            "trigger_event": "manual",
            "actions": {},
        }
    ],
}

# "Journey Instances API" > "Create Journey Instance": POST /journeys/instances
CREATE_JOURNEY_INSTANCE = {
    "tenant_id": "uuid",
    "journey_id": "uuid",
    "patient_id": "uuid",
    "appointment_id": "uuid (optional)",
    "encounter_id": "uuid (optional)",
    "context": {},
}

# "Journey Instances API" > "Advance Journey Stage": POST /journeys/instances/{instance_id}/advance
ADVANCE_STAGE = {"notes": "Stage completed successfully"}

# "Communications API" > "Create Communication": POST /communications
CREATE_COMMUNICATION = {
    "tenant_id": "uuid",
    "patient_id": "uuid",
    "journey_instance_id": "uuid (optional)",
    "channel": "whatsapp",
    "recipient": "+1234567890",
    "subject": "Appointment Reminder",
    "message": "Your appointment is tomorrow at 2pm",
    "template_name": "appointment_reminder",
    "template_vars": {},
    "scheduled_for": "2024-02-01T08:00:00Z (optional)",
}

# "Tickets API" > "Create Ticket": POST /tickets
CREATE_TICKET = {
    "tenant_id": "uuid",
    "patient_id": "uuid",
    "journey_instance_id": "uuid (optional)",
    "title": "Prescription refill request",
    "description": "Patient needs refill of medication X",
    "priority": "medium",
    "category": "prescription",
    "assigned_to": "uuid (optional)",
}

# "Tickets API" > "Update Ticket": PATCH /tickets/{ticket_id}
UPDATE_TICKET = {
    "status": "resolved",
    "resolution_notes": "Prescription refill approved and sent to pharmacy",
}


def filled(example: dict[str, Any], **ids: uuid.UUID | str) -> dict[str, Any]:
    """The example with its placeholders filled: ids by field name, the dialable phone, no "(optional)"."""
    body: dict[str, Any] = {}
    for field, value in example.items():
        if value in ("uuid", "uuid (optional)"):
            value = str(ids[field])
        elif value == "+1234567890":
            value = DIALABLE
        elif isinstance(value, str):
            value = value.removesuffix(" (optional)")
        body[field] = value
    return body


class Clinic:
    """Records made through the API for the examples to refer to (minimal bodies, not the examples)."""

    def __init__(self, client: httpx.AsyncClient, auth: dict[str, str], tenant_id: uuid.UUID) -> None:
        self.client, self.auth, self.tenant_id = client, auth, tenant_id

    async def post(self, path: str, body: dict[str, Any], expected: int = 201) -> dict[str, Any]:
        """POST `body` and expect `expected`; the answer's JSON."""
        resp = await self.client.post(f"{API}{path}", json=body, headers=self.auth)
        assert resp.status_code == expected, resp.text
        return resp.json()

    async def patient(self) -> str:
        """A new patient reachable by WhatsApp."""
        body = {"first_name": "Maria", "last_name": "Garcia", "phone_primary": DIALABLE}
        return (await self.post("/patients", body))["id"]

    async def practitioner(self) -> str:
        """A new practitioner."""
        return (await self.post("/practitioners", {"first_name": "Ana", "last_name": "Lima"}))["id"]

    async def time_slot(self, practitioner_id: str) -> tuple[str, str]:
        """A location and an open slot of the practitioner there tomorrow: (location id, slot id)."""
        location = await self.post("/locations", {"name": f"Clinic {uuid.uuid4().hex[:6]}"})
        start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
        slot = await self.post(
            "/time-slots",
            {
                "practitioner_id": practitioner_id,
                "location_id": location["id"],
                "start_time": start.isoformat(),
                "end_time": (start + timedelta(minutes=30)).isoformat(),
            },
        )
        return location["id"], slot["id"]

    async def appointment(self, patient_id: str) -> str:
        """An appointment of the patient tomorrow."""
        practitioner_id = await self.practitioner()
        start = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
        body = {
            "patient_id": patient_id,
            "practitioner_id": practitioner_id,
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(minutes=30)).isoformat(),
        }
        return (await self.post("/appointments", body))["id"]

    async def waiting_instance(self, patient_id: str) -> str:
        """An instance of a one-manual-stage journey, once its stage waits to be advanced."""
        stage = {"name": "Check-in call", "order_index": 1, "trigger_event": "manual"}
        journey = await self.post("/journeys", {"name": "Check-in", "stages": [stage]})
        instance = await self.post(
            "/journeys/instances", {"journey_id": journey["id"], "patient_id": patient_id}
        )

        async def stage_waits() -> bool:
            resp = await self.client.get(f"{API}/journeys/instances/{instance['id']}", headers=self.auth)
            return [s["status"] for s in resp.json()["stages"]] == ["active"]

        await eventually(stage_waits)
        return instance["id"]


@pytest.fixture
async def clinic(
    app: Any,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    tenant_id: uuid.UUID,
    dev_env: WorkflowEnvironment,
    activity_deps: ActivityDeps,
) -> AsyncIterator[Clinic]:
    """This test's tenant, with the app on the Temporal dev server and a journey worker running."""
    async with app_on(app, dev_env, activity_deps):
        yield Clinic(client, auth, tenant_id)


async def test_create_practitioner_example_is_accepted(clinic: Clinic) -> None:
    body = filled(CREATE_PRACTITIONER, tenant_id=clinic.tenant_id)
    created = await clinic.post("/practitioners", body)
    assert created["license_number"] == "MD123456" and created["phone_primary"] == DIALABLE


async def test_create_appointment_example_is_accepted(clinic: Clinic) -> None:
    practitioner_id = await clinic.practitioner()
    location_id, slot_id = await clinic.time_slot(practitioner_id)
    body = filled(
        CREATE_APPOINTMENT,
        tenant_id=clinic.tenant_id,
        patient_id=await clinic.patient(),
        practitioner_id=practitioner_id,
        location_id=location_id,
        time_slot_id=slot_id,
    )
    created = await clinic.post("/appointments", body)
    assert created["time_slot_id"] == slot_id and created["reason_text"] == "Annual checkup"


async def test_create_journey_example_is_accepted(clinic: Clinic) -> None:
    created = await clinic.post("/journeys", filled(CREATE_JOURNEY, tenant_id=clinic.tenant_id))
    assert [s["name"] for s in created["stages"]] == ["Day 1 Check-in"]


async def test_create_journey_instance_example_is_accepted(clinic: Clinic) -> None:
    journey = await clinic.post("/journeys", filled(CREATE_JOURNEY, tenant_id=clinic.tenant_id))
    patient_id = await clinic.patient()
    body = filled(
        CREATE_JOURNEY_INSTANCE,
        tenant_id=clinic.tenant_id,
        journey_id=journey["id"],
        patient_id=patient_id,
        appointment_id=await clinic.appointment(patient_id),
        encounter_id=uuid.uuid4(),
    )
    created = await clinic.post("/journeys/instances", body)
    assert created["status"] == "active" and created["encounter_id"] == body["encounter_id"]


async def test_advance_stage_example_is_accepted(clinic: Clinic) -> None:
    instance_id = await clinic.waiting_instance(await clinic.patient())
    advanced = await clinic.post(f"/journeys/instances/{instance_id}/advance", ADVANCE_STAGE, expected=200)
    assert advanced["status"] == "completed"


async def test_create_communication_example_is_accepted(clinic: Clinic) -> None:
    patient_id = await clinic.patient()
    body = filled(
        CREATE_COMMUNICATION,
        tenant_id=clinic.tenant_id,
        patient_id=patient_id,
        journey_instance_id=await clinic.waiting_instance(patient_id),
    )
    created = await clinic.post("/communications", body)
    # Beside a `message`, `template_name` is only a label: the text is the message, as sent.
    assert created["message"] == "Your appointment is tomorrow at 2pm" and created["recipient"] == DIALABLE


async def test_create_ticket_example_is_accepted(clinic: Clinic) -> None:
    patient_id = await clinic.patient()
    body = filled(
        CREATE_TICKET,
        tenant_id=clinic.tenant_id,
        patient_id=patient_id,
        journey_instance_id=await clinic.waiting_instance(patient_id),
        assigned_to=uuid.uuid4(),
    )
    created = await clinic.post("/tickets", body)
    assert created["category"] == "prescription" and created["status"] == "open"


async def test_update_ticket_example_is_accepted(clinic: Clinic) -> None:
    ticket = await clinic.post("/tickets", {"title": "Refill", "patient_id": await clinic.patient()})
    resp = await clinic.client.patch(f"{API}/tickets/{ticket['id']}", json=UPDATE_TICKET, headers=clinic.auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "resolved"
