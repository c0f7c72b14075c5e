"""Every read and write of patient data leaves an audit record naming who, what, which record and patient,
when, from where and how it ended; ids only."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import api.audit
from activities import ActivityDeps
from core.audit import AuditPending
from core.auth import Role
from core.database import bind_tenant
from core.periodic import PeriodicRunner
from core.settings import Settings
from domain.patients.models import Patient
from tests.audit.conftest import API, Trail
from tests.garbage import left_for_the_collector
from tests.outbox import unreachable_gateway
from tests.patients.support import CreatePatient, patient_body
from worker import periodic_jobs


async def test_a_read_records_the_user_the_operation_the_patient_and_the_request(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    create_patient: CreatePatient,
    trail: Trail,
    tenant_id: uuid.UUID,
) -> None:
    patient = await create_patient()

    resp = await client.get(
        f"{API}/patients/{patient['id']}/360", headers={**auth, "X-Request-ID": "req-360"}
    )

    assert resp.status_code == 200
    [record] = [r for r in await trail() if r.action == "patients.get_360"]
    assert (record.tenant_id, record.user_sub, record.user_roles) == (tenant_id, "tester", ["coordinator"])
    assert (record.resource_type, record.resource_id) == ("patients", uuid.UUID(patient["id"]))
    assert record.patient_id == uuid.UUID(patient["id"])
    assert (record.outcome, record.status_code) == ("allowed", 200)
    assert record.request_id == "req-360" and record.client_address == "127.0.0.1"


async def test_a_read_of_a_patients_record_names_the_patient_from_the_answer(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    create_patient: CreatePatient,
    trail: Trail,
    records: Any,
) -> None:
    patient = await create_patient()
    ticket = await records.ticket(patient["id"])

    resp = await client.get(f"{API}/tickets/{ticket.id}", headers=auth)

    assert resp.status_code == 200
    [record] = [r for r in await trail() if r.action == "tickets.get"]
    assert (record.resource_id, record.patient_id) == (ticket.id, uuid.UUID(patient["id"]))


async def test_a_write_commits_its_record_with_it_and_a_crash_before_chaining_loses_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    trail: Trail,
    suite_appender_off: None,
    system_sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    tenant_id: uuid.UUID,
) -> None:
    resp = await client.post(f"{API}/patients", json=patient_body(), headers=auth)

    assert resp.status_code == 201
    patient_id = uuid.UUID(resp.json()["id"])
    async with system_sessionmaker() as session:
        waiting = list(await session.scalars(select(AuditPending).where(AuditPending.tenant_id == tenant_id)))
    assert [(w.action, w.patient_id) for w in waiting] == [("patients.create", patient_id)]
    assert await trail(flush=False) == []

    # The next appender to run (here the worker's audit-chain job, under its periodic runner) chains it and
    # empties the table.
    deps = ActivityDeps(settings=settings, sessionmaker=system_sessionmaker)
    (job,) = [j for j in periodic_jobs(deps, unreachable_gateway()) if j.name == "audit-chain"]
    engine = system_sessionmaker.kw["bind"]
    assert await PeriodicRunner(engine, [job]).run_once(job) is False
    [record] = await trail(flush=False)
    assert (record.action, record.outcome, record.status_code) == ("patients.create", "allowed", None)
    assert record.resource_id == patient_id and record.patient_id == patient_id
    async with system_sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(AuditPending)) == 0


async def test_a_write_whose_record_cannot_be_appended_is_not_made(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    system_sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
) -> None:
    async def broken(*_args: Any) -> None:
        raise RuntimeError("audit table unreachable")

    monkeypatch.setattr(api.audit, "append", broken)

    resp = await client.post(f"{API}/patients", json=patient_body(), headers=auth)

    assert resp.status_code == 500
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        assert await session.scalar(select(func.count()).select_from(Patient)) == 0


async def test_a_merge_is_recorded_under_both_patients(
    client: httpx.AsyncClient,
    headers_for: Callable[..., dict[str, str]],
    tenant_id: uuid.UUID,
    create_patient: CreatePatient,
    trail: Trail,
) -> None:
    primary, duplicate = await create_patient(), await create_patient(first_name="Jon")
    body = {"primary_patient_id": primary["id"], "duplicate_patient_id": duplicate["id"]}

    resp = await client.post(f"{API}/patients/merge", json=body, headers=headers_for(tenant_id, Role.ADMIN))

    assert resp.status_code == 200, resp.text
    merges = [r for r in await trail() if r.action == "patients.merge"]
    assert {r.patient_id for r in merges} == {uuid.UUID(primary["id"]), uuid.UUID(duplicate["id"])}
    assert {r.request_id for r in merges} == {resp.headers["X-Request-ID"]}


async def test_a_denied_attempt_is_recorded(
    client: httpx.AsyncClient,
    headers_for: Callable[..., dict[str, str]],
    tenant_id: uuid.UUID,
    create_patient: CreatePatient,
    trail: Trail,
) -> None:
    patient = await create_patient()

    resp = await client.delete(f"{API}/patients/{patient['id']}", headers=headers_for(tenant_id, Role.VIEWER))

    assert resp.status_code == 403
    [record] = [r for r in await trail() if r.action == "patients.delete"]
    assert (record.outcome, record.status_code, record.user_roles) == ("denied", 403, ["viewer"])
    assert record.patient_id == uuid.UUID(patient["id"])


async def test_a_read_of_a_missing_record_is_recorded_as_not_found(
    client: httpx.AsyncClient, auth: dict[str, str], trail: Trail
) -> None:
    missing = uuid.uuid4()

    resp = await client.get(f"{API}/appointments/{missing}", headers=auth)

    assert resp.status_code == 404
    [record] = await trail()
    assert (record.action, record.outcome, record.status_code) == ("appointments.get", "not_found", 404)
    assert record.resource_id == missing and record.patient_id is None


async def test_a_request_without_a_valid_token_is_not_recorded(
    client: httpx.AsyncClient, trail: Trail, tenant_id: uuid.UUID
) -> None:
    resp = await client.get(f"{API}/patients", headers={"Authorization": "Bearer not-a-token"})

    assert resp.status_code == 401
    assert await trail() == []


async def test_operations_on_no_patient_data_are_not_recorded(
    client: httpx.AsyncClient, auth: dict[str, str], trail: Trail
) -> None:
    resp = await client.get(f"{API}/practitioners", headers=auth)

    assert resp.status_code == 200
    assert await trail() == []


async def test_records_hold_ids_never_patient_data(
    client: httpx.AsyncClient, auth: dict[str, str], create_patient: CreatePatient, trail: Trail
) -> None:
    patient = await create_patient(first_name="Zebulon", last_name="Quartermaine", mrn="MRN-SECRET-42")
    pid = patient["id"]
    answers = [
        await client.get(f"{API}/patients/search", params={"query": "Quartermaine"}, headers=auth),
        await client.get(f"{API}/patients/mrn/MRN-SECRET-42", headers=auth),
        await client.patch(f"{API}/patients/{pid}", json={"phone_primary": "+1 415 555 0199"}, headers=auth),
        await client.post(
            f"{API}/communications",
            json={"patient_id": pid, "channel": "sms", "message": "Your biopsy results are in"},
            headers=auth,
        ),
    ]

    assert [a.status_code for a in answers] == [200, 200, 200, 201], [a.text for a in answers]
    records = await trail()

    assert {"patients.search", "patients.get_by_mrn", "patients.update", "communications.create"} <= {
        r.action for r in records
    }
    by_mrn = next(r for r in records if r.action == "patients.get_by_mrn")
    assert by_mrn.patient_id == uuid.UUID(pid)
    stored = " ".join(str(value) for r in records for value in vars(r).values()).lower()
    for phi in ("zebulon", "quartermaine", "mrn-secret", "+1415555", "biopsy", "example.com"):
        assert phi not in stored, phi


async def test_a_message_search_records_the_operation_the_patient_filtered_by_and_no_words(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    create_patient: CreatePatient,
    trail: Trail,
) -> None:
    patient = await create_patient()
    sent = await client.post(
        f"{API}/communications",
        json={"patient_id": patient["id"], "channel": "sms", "message": "your quokkaword refill"},
        headers=auth,
    )
    assert sent.status_code == 201, sent.text

    resp = await client.get(
        f"{API}/communications/search",
        params={"query": "quokkaword", "patient_id": patient["id"]},
        headers=auth,
    )

    assert resp.status_code == 200 and resp.json()["total"] == 1
    [record] = [r for r in await trail() if r.action == "communications.search"]
    assert (record.resource_type, record.resource_id) == ("communications", None)
    assert record.patient_id == uuid.UUID(patient["id"])
    assert (record.outcome, record.status_code) == ("allowed", 200)
    assert "quokkaword" not in repr(vars(record))  # ids only, never the words searched for


async def test_an_answered_request_leaves_no_cycle_for_the_garbage_collector(
    client: httpx.AsyncClient, auth: dict[str, str], create_patient: CreatePatient
) -> None:
    """A request's trail, its scope and FastAPI's exit stacks in it are freed by reference counting once it
    is answered. The serving process collects young objects rarely (`core.process.tune_collector`): a cycle
    per request would wait for the collector, and make every full collection longer."""
    patient = await create_patient()
    with left_for_the_collector() as garbage:
        for _ in range(3):
            read = await client.get(f"{API}/patients/{patient['id']}", headers=auth)
            write = await client.patch(f"{API}/patients/{patient['id']}", json={"city": "Lyon"}, headers=auth)
            assert (read.status_code, write.status_code) == (200, 200)
    left = [
        type(o).__name__ for o in garbage if isinstance(o, api.audit.AuditTrail | contextlib.AsyncExitStack)
    ]
    assert left == []
