"""Tickets API: create, list with every filter, get, PATCH through the status lifecycle, tenant isolation.

No Temporal here (the app's Temporal address is unreachable): the ticket is saved with the start of its SLA
workflow, which waits for the relay, as it does whenever Temporal is down."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

from core.auth import Role
from core.database import bind_tenant
from domain.journeys.models import Journey, JourneyInstance
from domain.tickets.plan import ticket_workflow_id
from tests.outbox import commands_for
from tests.tickets.conftest import TICKETS, Desk


async def test_create_returns_the_ticket_with_201(new_ticket: Callable, desk: Desk) -> None:
    ticket = await new_ticket(
        description="Needs refill of medication X", priority="high", category="prescription"
    )
    assert ticket["status"] == "open"
    assert ticket["priority"] == "high"
    assert ticket["category"] == "prescription"
    assert ticket["patient_id"] == str(desk.patient_id)
    assert ticket["tenant_id"] == str(desk.tenant_id)
    assert ticket["response_breached"] is False and ticket["first_response_at"] is None
    # Due when opened, not once its SLA workflow has run (Temporal may be down: see below)
    row = await desk.ticket(ticket["id"])
    assert row.response_due_at is not None and row.resolution_due_at is not None
    assert row.sla_started_at < row.response_due_at < row.resolution_due_at
    assert (ticket["response_due_at"], ticket["resolution_due_at"]) == (
        row.response_due_at.isoformat().replace("+00:00", "Z"),
        row.resolution_due_at.isoformat().replace("+00:00", "Z"),
    )


async def test_ticket_is_saved_when_temporal_is_down_and_its_sla_start_waits_for_the_relay(
    new_ticket: Callable, desk: Desk
) -> None:
    ticket = await new_ticket()  # 201
    row = await desk.ticket(ticket["id"])
    assert row.sla_started_at is not None
    (start,) = await commands_for(desk.sessionmaker, ticket_workflow_id(ticket["id"]))
    assert (start.kind, start.start_workflow, start.delivered_at, start.outcome) == (
        "start",
        "TicketSlaWorkflow",
        None,
        None,
    )
    assert start.start_input == {  # the workflow starts from the due times set with the ticket
        "tenant_id": str(desk.tenant_id),
        "ticket_id": ticket["id"],
        "paused_since": None,
        "state": {
            "status": "open",
            "responded": False,
            "response_due_at": row.response_due_at.isoformat(),
            "resolution_due_at": row.resolution_due_at.isoformat(),
            "response_breached": False,
            "resolution_breached": False,
            "cycle": row.sla_started_at.isoformat(),
        },
    }


async def test_missing_title_is_422(client: httpx.AsyncClient, auth: dict, desk: Desk) -> None:
    resp = await client.post(TICKETS, json={"patient_id": str(desk.patient_id)}, headers=auth)
    assert resp.status_code == 422


async def test_unknown_priority_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.post(TICKETS, json={"title": "x", "priority": "whenever"}, headers=auth)
    assert resp.status_code == 422


async def test_other_tenants_patient_is_404(
    client: httpx.AsyncClient, make_tenant: Callable, headers_for: Callable, desk: Desk
) -> None:
    other = await make_tenant()
    body = {"patient_id": str(desk.patient_id), "title": "Call back"}
    resp = await client.post(TICKETS, json=body, headers=headers_for(other))
    assert resp.status_code == 404


async def test_other_tenants_journey_instance_is_404(
    client: httpx.AsyncClient, make_tenant: Callable, headers_for: Callable, desk: Desk
) -> None:
    instance_id = await _journey_instance(desk)
    other = await make_tenant()
    resp = await client.post(
        TICKETS, json={"journey_instance_id": str(instance_id), "title": "x"}, headers=headers_for(other)
    )
    assert resp.status_code == 404


async def test_a_journey_instance_links_its_patient(
    client: httpx.AsyncClient, auth: dict, desk: Desk
) -> None:
    instance_id = await _journey_instance(desk)
    resp = await client.post(
        TICKETS, json={"journey_instance_id": str(instance_id), "title": "x"}, headers=auth
    )
    assert resp.status_code == 201
    assert resp.json()["patient_id"] == str(desk.patient_id)


async def test_foreign_tenant_id_in_body_is_403(
    client: httpx.AsyncClient, auth: dict, make_tenant: Callable
) -> None:
    resp = await client.post(
        TICKETS, json={"title": "x", "tenant_id": str(await make_tenant())}, headers=auth
    )
    assert resp.status_code == 403


async def test_viewer_cannot_create(client: httpx.AsyncClient, headers_for: Callable, desk: Desk) -> None:
    resp = await client.post(TICKETS, json={"title": "x"}, headers=headers_for(desk.tenant_id, Role.VIEWER))
    assert resp.status_code == 403


async def test_list_filters_by_each_field(
    client: httpx.AsyncClient, auth: dict, new_ticket: Callable
) -> None:
    assignee = uuid.uuid4()
    a = await new_ticket(priority="urgent", category="billing", assigned_to=str(assignee))
    b = await new_ticket(priority="low", category="prescription")
    await client.patch(f"{TICKETS}/{b['id']}", json={"status": "in_progress"}, headers=auth)

    async def ids(**params: Any) -> set[str]:
        resp = await client.get(TICKETS, params=params, headers=auth)
        assert resp.status_code == 200, resp.text
        return {t["id"] for t in resp.json()["items"]}

    assert await ids(priority="urgent") == {a["id"]}
    assert await ids(category="prescription") == {b["id"]}
    assert await ids(assigned_to=str(assignee)) == {a["id"]}
    assert await ids(status="in_progress") == {b["id"]}
    assert await ids(patient_id=a["patient_id"]) == {a["id"], b["id"]}
    assert await ids(breached="false") == {a["id"], b["id"]}
    assert await ids(breached="true") == set()


async def test_list_paginates(client: httpx.AsyncClient, auth: dict, new_ticket: Callable) -> None:
    for _ in range(3):
        await new_ticket()
    page = (await client.get(TICKETS, params={"page_size": 2}, headers=auth)).json()
    assert (page["total"], len(page["items"]), page["has_next"], page["has_previous"]) == (3, 2, True, False)


async def test_list_rejects_an_unknown_status(client: httpx.AsyncClient, auth: dict) -> None:
    assert (await client.get(TICKETS, params={"status": "lost"}, headers=auth)).status_code == 422


async def test_list_shows_no_other_tenants_tickets(
    client: httpx.AsyncClient, new_ticket: Callable, make_tenant: Callable, headers_for: Callable
) -> None:
    await new_ticket()
    page = (await client.get(TICKETS, headers=headers_for(await make_tenant()))).json()
    assert page["total"] == 0


async def test_other_tenant_gets_404_for_ticket(
    client: httpx.AsyncClient, new_ticket: Callable, make_tenant: Callable, headers_for: Callable
) -> None:
    ticket = await new_ticket()
    other = headers_for(await make_tenant())
    assert (await client.get(f"{TICKETS}/{ticket['id']}", headers=other)).status_code == 404
    resp = await client.patch(f"{TICKETS}/{ticket['id']}", json={"status": "closed"}, headers=other)
    assert resp.status_code == 404
    assert (await client.get(f"{TICKETS}/{ticket['id']}/events", headers=other)).status_code == 404


async def test_leaving_open_records_the_first_response(
    client: httpx.AsyncClient, auth: dict, new_ticket: Callable
) -> None:
    ticket = await new_ticket()
    resp = await client.patch(f"{TICKETS}/{ticket['id']}", json={"status": "in_progress"}, headers=auth)
    assert resp.status_code == 200
    assert resp.json()["first_response_at"] is not None


async def test_responded_records_the_first_response_without_a_status_change(
    client: httpx.AsyncClient, auth: dict, new_ticket: Callable
) -> None:
    ticket = await new_ticket()
    resp = await client.patch(f"{TICKETS}/{ticket['id']}", json={"responded": True}, headers=auth)
    assert resp.json()["status"] == "open" and resp.json()["first_response_at"] is not None


async def test_full_lifecycle_with_resolution_notes_and_reopen(
    client: httpx.AsyncClient, auth: dict, new_ticket: Callable
) -> None:
    ticket = await new_ticket()
    url = f"{TICKETS}/{ticket['id']}"
    for status in ("in_progress", "waiting_on_patient", "in_progress"):
        assert (await client.patch(url, json={"status": status}, headers=auth)).status_code == 200
    resolved = await client.patch(
        url, json={"status": "resolved", "resolution_notes": "Refill approved and sent"}, headers=auth
    )
    assert resolved.json()["resolution_notes"] == "Refill approved and sent"
    assert resolved.json()["resolved_at"] is not None
    closed = (await client.patch(url, json={"status": "closed"}, headers=auth)).json()
    assert closed["closed_at"] is not None
    reopened = (await client.patch(url, json={"status": "open"}, headers=auth)).json()
    assert reopened["status"] == "open"
    assert reopened["reopened_at"] is not None
    assert reopened["resolved_at"] is None and reopened["closed_at"] is None
    assert reopened["first_response_at"] == closed["first_response_at"]


async def test_invalid_moves_are_409(client: httpx.AsyncClient, auth: dict, new_ticket: Callable) -> None:
    ticket = await new_ticket()
    url = f"{TICKETS}/{ticket['id']}"
    await client.patch(url, json={"status": "in_progress"}, headers=auth)
    assert (await client.patch(url, json={"status": "open"}, headers=auth)).status_code == 409
    await client.patch(url, json={"status": "closed"}, headers=auth)
    assert (await client.patch(url, json={"status": "resolved"}, headers=auth)).status_code == 409


async def test_patch_updates_fields_and_refuses_null_title(
    client: httpx.AsyncClient, auth: dict, new_ticket: Callable
) -> None:
    ticket = await new_ticket()
    url = f"{TICKETS}/{ticket['id']}"
    assignee = str(uuid.uuid4())
    resp = await client.patch(url, json={"priority": "urgent", "assigned_to": assignee}, headers=auth)
    assert (resp.json()["priority"], resp.json()["assigned_to"]) == ("urgent", assignee)
    assert (await client.patch(url, json={"title": None}, headers=auth)).status_code == 422
    assert (await client.patch(url, json={"id": str(uuid.uuid4())}, headers=auth)).status_code == 422


async def test_events_tell_the_ticket_history(
    client: httpx.AsyncClient, auth: dict, new_ticket: Callable
) -> None:
    ticket = await new_ticket()
    await client.patch(f"{TICKETS}/{ticket['id']}", json={"status": "in_progress"}, headers=auth)
    events = (await client.get(f"{TICKETS}/{ticket['id']}/events", headers=auth)).json()
    assert [e["kind"] for e in events] == ["created", "responded", "status_changed"]
    assert events[-1]["details"] == {"from": "open", "to": "in_progress"}
    assert events[0]["actor"] == "tester"


async def _journey_instance(desk: Desk) -> uuid.UUID:
    async with desk.sessionmaker() as session:
        bind_tenant(session, desk.tenant_id)
        journey = Journey(name="Post-op")
        session.add(journey)
        await session.flush()
        instance = JourneyInstance(journey_id=journey.id, patient_id=desk.patient_id, definition_snapshot={})
        session.add(instance)
        await session.commit()
        return instance.id
