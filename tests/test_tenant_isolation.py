"""Tenant isolation, walked over every route the API has: tenant B never sees or changes tenant A's data.

The walk is generic on purpose: a route added later is walked too, with no change here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from core.audit import Actor
from core.auth import Role
from core.client_credentials import Scope
from core.database import bind_tenant
from domain.campaigns.models import Campaign
from domain.cohorts.models import Cohort
from domain.communications.models import Communication, CommunicationTemplate
from domain.integrations.service import create_client
from domain.journeys.models import Journey, JourneyInstance, JourneyStage
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment, Location, TimeSlot, WaitlistEntry, WaitlistOffer
from domain.tickets.models import Ticket

PREFIX = "/api/v1/prm"
MARKER = "Zyxwvut"  # a last name only tenant A's patient has


async def _seed_tenant_a(sessionmaker: Callable, tenant: uuid.UUID) -> dict[str, str]:
    """One record of every kind for tenant A; returns path-parameter values that name them."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant)
        practitioner = Practitioner(first_name="Ada", last_name=MARKER, speciality="Isolation")
        patient = Patient(
            mrn=f"MRN-{MARKER}", first_name="Eve", last_name=MARKER, phone_primary="+14155550199"
        )
        location = Location(name=f"{MARKER} Clinic", timezone="UTC")
        session.add_all([practitioner, patient, location])
        await session.flush()
        start = datetime.now(UTC) + timedelta(days=2)
        slot = TimeSlot(
            practitioner_id=practitioner.id,
            location_id=location.id,
            start_time=start,
            end_time=start + timedelta(minutes=30),
        )
        appointment = Appointment(
            patient_id=patient.id,
            practitioner_id=practitioner.id,
            location_id=location.id,
            start_time=start,
            end_time=start + timedelta(minutes=30),
        )
        journey = Journey(name=f"{MARKER} Journey")
        session.add_all([slot, appointment, journey])
        await session.flush()
        stage = JourneyStage(
            journey_id=journey.id, name="Stage", order_index=1, trigger_event={"type": "manual"}, actions=[]
        )
        instance = JourneyInstance(journey_id=journey.id, patient_id=patient.id, definition_snapshot={})
        session.add_all([stage, instance])
        await session.flush()
        communication = Communication(
            patient_id=patient.id, channel="sms", message=f"hello {MARKER}", recipient="+14155550199"
        )
        ticket = Ticket(patient_id=patient.id, title=f"{MARKER} ticket")
        entry = WaitlistEntry(
            patient_id=patient.id,
            practitioner_id=practitioner.id,
            start_date=start.date(),
            end_date=start.date(),
        )
        session.add_all([communication, ticket, entry])
        await session.flush()
        offer = WaitlistOffer(
            waitlist_entry_id=entry.id,
            patient_id=patient.id,
            cancelled_appointment_id=appointment.id,
            practitioner_id=practitioner.id,
            start_time=start,
            end_time=start + timedelta(minutes=30),
            expires_at=start,
        )
        template = CommunicationTemplate(
            key=f"{MARKER.lower()}_note",
            name=f"{MARKER} note",
            channel="sms",
            category="general",
            body=f"Hello from {MARKER}",
            variables=[],
        )
        cohort = Cohort(name=f"{MARKER} cohort", criteria={})
        session.add_all([offer, template, cohort])
        await session.flush()
        campaign = Campaign(name=f"{MARKER} campaign", cohort_id=cohort.id, journey_id=journey.id)
        session.add(campaign)
        ehr = await create_client(
            session, tenant_id=tenant, name=f"{MARKER} EHR", scopes={Scope.FHIR}, actor=Actor(sub="seed")
        )
        await session.commit()
        return {
            "patient_id": str(patient.id),
            "practitioner_id": str(practitioner.id),
            "location_id": str(location.id),
            "slot_id": str(slot.id),
            "time_slot_id": str(slot.id),
            "appointment_id": str(appointment.id),
            "journey_id": str(journey.id),
            "stage_id": str(stage.id),
            "instance_id": str(instance.id),
            "communication_id": str(communication.id),
            "ticket_id": str(ticket.id),
            "entry_id": str(entry.id),
            "offer_id": str(offer.id),
            "template_id": template.key,
            "client_id": ehr.client.client_id,
            "secret_id": str(ehr.secret_id),
            "cohort_id": str(cohort.id),
            "campaign_id": str(campaign.id),
            "mrn": f"MRN-{MARKER}",
        }


def _body_naming(ids: dict[str, str]) -> dict[str, object]:
    """A request body that points at tenant A's records under every id name the API uses."""
    body: dict[str, object] = {key: value for key, value in ids.items() if key != "mrn"}
    body.update(
        primary_patient_id=ids["patient_id"],
        duplicate_patient_id=ids["patient_id"],
        assigned_to=ids["practitioner_id"],
        journey_instance_id=ids["instance_id"],
    )
    return body


def _routes(app: object) -> list[tuple[str, str]]:
    """Every (method, path) of the API, read from its OpenAPI document (which lists every route)."""
    paths = app.openapi()["paths"]  # type: ignore[attr-defined]
    return [
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith(PREFIX)
        for method in operations
        if method.upper() in {"GET", "POST", "PATCH", "PUT", "DELETE"}
    ]


async def _snapshot(client: httpx.AsyncClient, headers: dict, ids: dict[str, str]) -> list:
    paths = [f"/patients/{ids['patient_id']}", f"/practitioners/{ids['practitioner_id']}"]
    return [(await client.get(PREFIX + p, headers=headers)).json() for p in paths]


async def test_tenant_b_finds_no_trace_of_tenant_a_on_any_route(
    app: object,
    client: httpx.AsyncClient,
    make_tenant: Callable,
    headers_for: Callable,
    system_sessionmaker: Callable,
) -> None:
    tenant_a, tenant_b = await make_tenant(), await make_tenant()
    ids = await _seed_tenant_a(system_sessionmaker, tenant_a)
    a_headers, b_headers = headers_for(tenant_a, Role.ADMIN), headers_for(tenant_b, Role.ADMIN)
    before = await _snapshot(client, a_headers, ids)
    secrets = [MARKER, *(v for k, v in ids.items() if k != "mrn")]

    routes = _routes(app)
    assert len(routes) >= 80, "the walk should cover the whole API"
    leaks: list[str] = []
    for method, template in routes:
        params = re.findall(r"{(\w+)}", template)
        unknown = [p for p in params if p not in ids]
        assert not unknown, f"{method} {template}: add a tenant-A value for {unknown} to the walk"
        url = template.format(**ids)
        query = {"query": MARKER, "patient_id": ids["patient_id"], "practitioner_id": ids["practitioner_id"]}
        body = _body_naming(ids) if method in {"POST", "PATCH", "PUT"} else None
        resp = await client.request(
            method, url, headers=b_headers, params=query if method == "GET" else None, json=body
        )
        # The audit trail lists the ids tenant B's own requests named (a probe for another tenant's record
        # is what an administrator must see): there, only tenant A's data proper must not show.
        checked = [MARKER] if template == f"{PREFIX}/audit" else secrets
        if any(s in resp.text for s in checked):
            leaks.append(f"{method} {template} -> {resp.status_code} echoes tenant A data")
        if params and resp.status_code < 400:
            leaks.append(f"{method} {template} -> {resp.status_code} for tenant A's record")
        if resp.status_code >= 500:
            leaks.append(f"{method} {template} -> {resp.status_code}")
        if params and resp.status_code == 403:
            leaks.append(f"{method} {template} -> 403 reveals that the record exists (must be 404)")
    assert leaks == []
    assert await _snapshot(client, a_headers, ids) == before


async def test_other_tenants_patient_and_practitioner_are_404_not_403(
    client: httpx.AsyncClient, make_tenant: Callable, headers_for: Callable, system_sessionmaker: Callable
) -> None:
    tenant_a, tenant_b = await make_tenant(), await make_tenant()
    ids = await _seed_tenant_a(system_sessionmaker, tenant_a)
    b_headers = headers_for(tenant_b, Role.VIEWER)
    for path in (f"/patients/{ids['patient_id']}", f"/practitioners/{ids['practitioner_id']}"):
        resp = await client.get(PREFIX + path, headers=b_headers)
        assert resp.status_code == 404
