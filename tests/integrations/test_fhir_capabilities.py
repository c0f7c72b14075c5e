"""The CapabilityStatement is what the server does: a client sends every interaction it declares, for every
type it declares, and each answers as FHIR (validated with fhir.resources). And the writes of one resource:
create (conditional), update by id (If-Match) and conditional update, with versions."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.routers import fhir, fhir_operations, fhir_writes
from core.database import bind_tenant
from core.events import DomainEvent
from domain.communications.models import Communication
from domain.fhir.capabilities import DECLARED
from domain.patients.models import Patient
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment
from tests.integrations.fhir_support import (
    API,
    EHR_APPT,
    EHR_MRN,
    FHIR,
    START,
    appointment,
    entry,
    fhir_request,
    patient,
    practitioner,
    valid,
)

# Not FHIR interactions: the statement itself, SMART discovery, and the subscription hook's own paths.
UNDECLARED_BY_DESIGN = {f"{FHIR}/metadata", f"{FHIR}/.well-known/smart-configuration"}


@dataclass
class Session:
    """A FHIR client's view of one tenant: its headers and one record of each type it made."""

    client: httpx.AsyncClient
    auth: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)
    examples: dict[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)

    async def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request whose answer must be FHIR JSON that validates."""
        return await fhir_request(self.client, self.auth, method, path, **kwargs)


def _examples(ids: dict[str, str]) -> dict[str, Callable[[], dict[str, Any]]]:
    """A fresh resource of each writable type, as an EHR would send it (a new identifier each time, and a new
    hour for an appointment)."""
    hours = itertools.count(1)
    return {
        "Patient": lambda: patient(uuid.uuid4().hex[:8], given="Ana", family=uuid.uuid4().hex[:10]),
        "Practitioner": lambda: practitioner(uuid.uuid4().hex[:8]),
        "Appointment": lambda: appointment(
            uuid.uuid4().hex[:8],
            f"Patient/{ids['Patient']}",
            f"Practitioner/{ids['Practitioner']}",
            START + timedelta(hours=next(hours)),
        ),
    }


async def _read(s: Session, kind: str) -> httpx.Response:
    return await s.send("GET", f"{kind}/{s.ids[kind]}")


async def _vread(s: Session, kind: str) -> httpx.Response:
    current = int((await _read(s, kind)).json()["meta"]["versionId"])
    assert current > 1, "arranged with a past version"
    response = await s.send("GET", f"{kind}/{s.ids[kind]}/_history/{current - 1}")
    assert response.json()["meta"]["versionId"] == str(current - 1)
    return response


async def _search(s: Session, kind: str) -> httpx.Response:
    response = await s.send("GET", kind, params={"_id": s.ids[kind]})
    assert [e["resource"]["id"] for e in response.json()["entry"]] == [s.ids[kind]]
    return response


async def _create(s: Session, kind: str) -> httpx.Response:
    response = await s.send("POST", kind, json=s.examples[kind]())
    assert response.status_code == 201, response.text
    return response


async def _update(s: Session, kind: str) -> httpx.Response:
    current = (await _read(s, kind)).json()
    return await s.send("PUT", f"{kind}/{s.ids[kind]}", json=current)


INTERACTIONS: dict[str, Callable[[Session, str], Awaitable[httpx.Response]]] = {
    "read": _read,
    "vread": _vread,
    "search-type": _search,
    "create": _create,
    "update": _update,
}


async def _everything(s: Session, kind: str) -> httpx.Response:
    response = await s.send("GET", f"{kind}/{s.ids[kind]}/$everything")
    kinds = {e["resource"]["resourceType"] for e in response.json()["entry"]}
    assert kinds == {"Patient", "Appointment", "Communication", "Practitioner"}
    return response


OPERATIONS: dict[str, Callable[[Session, str], Awaitable[httpx.Response]]] = {"everything": _everything}


async def _arrange(s: Session, sessionmaker: async_sessionmaker[AsyncSession], tenant: uuid.UUID) -> None:
    """One record of each served type, made through the FHIR API itself (a Communication directly)."""
    s.examples = _examples(s.ids)
    for kind in ("Practitioner", "Patient", "Appointment"):
        made = await s.send("POST", kind, json=s.examples[kind]())
        assert made.status_code == 201, made.text
        s.ids[kind] = made.json()["id"]
    async with sessionmaker() as session:
        bind_tenant(session, tenant)
        for model in (
            Patient,
            Practitioner,
            Appointment,
        ):  # a second version of each, so vread has a past one
            record = await session.get(model, uuid.UUID(s.ids[model.__name__]))
            assert record is not None
            record.updated_at = datetime.now(UTC)
        message = Communication(
            patient_id=uuid.UUID(s.ids["Patient"]),
            channel="sms",
            direction="outbound",
            status="delivered",
            message="See you soon",
            sent_at=datetime.now(UTC),
        )
        session.add(message)
        await session.commit()
        s.ids["Communication"] = str(message.id)


async def test_every_declared_interaction_of_every_declared_type_is_served(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    s = Session(client, fhir_auth)
    statement = (await s.send("GET", "metadata")).json()
    await _arrange(s, system_sessionmaker, tenant_id)
    [rest] = statement["rest"]

    sent = []
    for resource in rest["resource"]:
        kind = resource["type"]
        for interaction in resource["interaction"]:
            code = interaction["code"]
            assert code in INTERACTIONS, f"{kind} declares {code}, which this test cannot send"
            response = await INTERACTIONS[code](s, kind)
            assert response.status_code < 300, (kind, code, response.text)
            sent.append((kind, code))
        for operation in resource.get("operation", []):
            assert operation["name"] in OPERATIONS, f"{kind} declares ${operation['name']}, unsent here"
            response = await OPERATIONS[operation["name"]](s, kind)
            assert response.status_code == 200, (kind, operation, response.text)
            sent.append((kind, f"${operation['name']}"))
        for include in resource.get("searchInclude", []):
            response = await s.send("GET", kind, params={"_id": s.ids[kind], "_include": include})
            included = [e["resource"] for e in response.json()["entry"] if e["search"]["mode"] == "include"]
            target = include.split(":")[1].capitalize()
            assert [(r["resourceType"], r["id"]) for r in included] == [(target, s.ids[target])], include
            sent.append((kind, f"_include={include}"))
        if resource["conditionalCreate"]:
            example = s.examples[kind]()
            [identifier] = example["identifier"]
            condition = {"If-None-Exist": f"identifier={identifier['system']}|{identifier['value']}"}
            first = await s.send("POST", kind, json=example, headers=condition)
            again = await s.send("POST", kind, json=example, headers=condition)
            assert (first.status_code, again.status_code) == (201, 200), again.text
            assert again.json()["id"] == first.json()["id"]
        if resource["conditionalUpdate"]:
            example = s.examples[kind]()
            [identifier] = example["identifier"]
            query = {"identifier": f"{identifier['system']}|{identifier['value']}"}
            made = await s.send("PUT", kind, json=example, params=query)
            kept = await s.send("PUT", kind, json=example, params=query)
            assert (made.status_code, kept.status_code) == (201, 200), kept.text
            assert kept.json()["id"] == made.json()["id"]
    for interaction in rest["interaction"]:
        assert interaction["code"] == "transaction"
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry(s.examples["Patient"]())]}
        assert (await s.send("POST", "", json=bundle)).status_code == 200

    assert ("Patient", "create") in sent
    assert ("Patient", "$everything") in sent
    assert ("Appointment", "_include=Appointment:practitioner") in sent
    assert ("Communication", "read") in sent
    assert ("Communication", "create") not in sent  # not declared: Communications are not written here


async def test_the_statement_claims_no_write_for_a_type_that_has_none(client: httpx.AsyncClient) -> None:
    statement = valid((await client.get(f"{FHIR}/metadata")).json())

    by_type = {r["type"]: r for r in statement["rest"][0]["resource"]}
    codes = {t: [i["code"] for i in r["interaction"]] for t, r in by_type.items()}
    assert codes["Communication"] == ["search-type", "read"]
    assert by_type["Communication"]["conditionalCreate"] is False
    assert by_type["Patient"]["versioning"] == "versioned"
    assert by_type["Patient"]["readHistory"] is True
    assert {"create", "update", "vread"} <= set(codes["Patient"])


async def test_a_write_answers_the_stored_resource_with_its_version(
    client: httpx.AsyncClient, fhir_auth: dict[str, str]
) -> None:
    s = Session(client, fhir_auth)

    created = await s.send("POST", "Patient", json=patient("W-1"))

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["meta"]["versionId"] == "1"
    assert created.headers["etag"] == 'W/"1"'
    assert created.headers["location"].endswith(f"/fhir/R4/Patient/{body['id']}/_history/1")
    assert {"system": EHR_MRN, "value": "W-1"} in body["identifier"]


async def test_update_with_a_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, fhir_auth: dict[str, str]
) -> None:
    s = Session(client, fhir_auth)
    made = (await s.send("POST", "Patient", json=patient("W-2"))).json()
    moved = {**made, "address": [{"city": "Lisbon"}]}

    first = await s.send("PUT", f"Patient/{made['id']}", json=moved, headers={"If-Match": 'W/"1"'})
    stale = await s.send(
        "PUT",
        f"Patient/{made['id']}",
        json={**made, "address": [{"city": "Porto"}]},
        headers={"If-Match": 'W/"1"'},
    )

    assert first.status_code == 200, first.text
    assert first.json()["meta"]["versionId"] == "2"
    assert first.headers["etag"] == 'W/"2"'
    assert stale.status_code == 412
    assert stale.json()["issue"][0]["code"] == "conflict"
    current = await s.send("GET", f"Patient/{made['id']}")
    assert current.json()["address"][0]["city"] == "Lisbon"
    assert current.headers["etag"] == 'W/"2"'
    old = await s.send("GET", f"Patient/{made['id']}/_history/1")
    assert old.status_code == 200
    assert "address" not in old.json()


async def test_an_update_that_changes_nothing_keeps_the_version(
    client: httpx.AsyncClient, fhir_auth: dict[str, str]
) -> None:
    s = Session(client, fhir_auth)
    made = (await s.send("POST", "Practitioner", json=practitioner("W-3"))).json()

    again = await s.send("PUT", f"Practitioner/{made['id']}", json=made)

    assert again.status_code == 200
    assert again.json()["meta"]["versionId"] == made["meta"]["versionId"]


async def test_update_by_id_never_creates_and_checks_the_id(
    client: httpx.AsyncClient, fhir_auth: dict[str, str]
) -> None:
    s = Session(client, fhir_auth)
    made = (await s.send("POST", "Patient", json=patient("W-4"))).json()

    unknown = await s.send("PUT", f"Patient/{uuid.uuid4()}", json=patient("W-5"))
    mismatched = await s.send("PUT", f"Patient/{made['id']}", json={**made, "id": str(uuid.uuid4())})
    wrong_type = await s.send("PUT", f"Patient/{made['id']}", json=practitioner("W-6"))

    assert unknown.status_code == 404
    assert mismatched.status_code == 400
    assert wrong_type.status_code == 400


async def test_create_goes_through_the_duplicate_matcher_and_emits_the_domains_events(
    client: httpx.AsyncClient,
    fhir_auth: dict[str, str],
    auth: dict[str, str],
    tenant_id: uuid.UUID,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    existing = await client.post(
        f"{API}/patients",
        json={
            "first_name": "Maria",
            "last_name": "Garcia",
            "date_of_birth": "1975-06-01",
            "gender": "female",
        },
        headers=auth,
    )
    s = Session(client, fhir_auth)

    matched = await s.send("POST", "Patient", json=patient("W-7"))
    staff = (await s.send("POST", "Practitioner", json=practitioner("W-8"))).json()
    booked = await s.send(
        "POST",
        "Appointment",
        json=appointment("W-9", f"Patient/{existing.json()['id']}", f"Practitioner/{staff['id']}", START),
    )

    assert matched.status_code == 200, matched.text
    assert matched.json()["id"] == existing.json()["id"]  # linked, not created again
    assert booked.status_code == 201, booked.text
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        events = (await session.execute(select(DomainEvent.type, DomainEvent.source))).all()
    assert ("appointment.booked", "fhir") in events


async def test_writes_refuse_types_not_written_and_bodies_not_fhir(
    client: httpx.AsyncClient, fhir_auth: dict[str, str]
) -> None:
    s = Session(client, fhir_auth)

    communication = await s.send(
        "POST", "Communication", json={"resourceType": "Communication", "status": "completed"}
    )
    invalid = await s.send("POST", "Patient", json={"resourceType": "Patient", "gender": 12})
    no_identifier = await s.send(
        "POST", "Patient", json={"resourceType": "Patient", "name": [{"family": "X", "given": ["Y"]}]}
    )
    xml = await client.post(
        f"{FHIR}/Patient",
        content=b"<Patient/>",
        headers={**fhir_auth, "Content-Type": "application/fhir+xml"},
    )

    assert communication.status_code == 404
    assert invalid.status_code == 400
    assert no_identifier.status_code == 422
    assert xml.status_code == 415


async def test_appointment_update_by_id_moves_it(
    client: httpx.AsyncClient, fhir_auth: dict[str, str]
) -> None:
    s = Session(client, fhir_auth)
    person = (await s.send("POST", "Patient", json=patient("W-10", family="Lopez"))).json()
    staff = (await s.send("POST", "Practitioner", json=practitioner("W-11"))).json()
    booked = (
        await s.send(
            "POST",
            "Appointment",
            json=appointment("W-12", f"Patient/{person['id']}", f"Practitioner/{staff['id']}", START),
        )
    ).json()
    later = START + timedelta(days=2)

    moved = await s.send(
        "PUT",
        f"Appointment/{booked['id']}",
        json={**booked, "start": later.isoformat(), "end": (later + timedelta(minutes=30)).isoformat()},
        headers={"If-Match": f'W/"{booked["meta"]["versionId"]}"'},
    )

    assert moved.status_code == 200, moved.text
    assert datetime.fromisoformat(moved.json()["start"]) == later
    assert int(moved.json()["meta"]["versionId"]) > int(booked["meta"]["versionId"])
    assert {"system": EHR_APPT, "value": "W-12"} in moved.json()["identifier"]


def test_every_fhir_route_declares_what_it_does() -> None:
    # The statement is generated from declarations: a route without one would serve what it never claims.
    routes = [r for module in (fhir, fhir_writes, fhir_operations) for r in module.router.routes]
    undeclared = [
        f"{sorted(route.methods)} {route.path}"
        for route in routes
        if isinstance(route, APIRoute)
        and route.path not in UNDECLARED_BY_DESIGN
        and not hasattr(route.endpoint, DECLARED)
    ]

    assert len(routes) >= 8
    assert undeclared == []
