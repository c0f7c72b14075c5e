"""Schemathesis over every operation of the OpenAPI schema, in the app's own process, on a reachable Temporal
with a worker: whatever it sends, the API answers no 5xx, only statuses and content types the schema
declares for the operation, and bodies that match their declared schema; it accepts what the schema allows
(or refuses it by a rule the schema names, `x-rules`) and refuses what the schema does not allow; a 405's
`Allow` lists the path's methods. Without a token every operation but the public and the signed ones is
401."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import CheckContext
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.python.asgi import ASGIClient, get_client, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from activities import ActivityDeps
from api.app import create_app
from api.content_rules import RULES
from core.auth import Role, issue_dev_token
from core.database import make_engine, make_sessionmaker, mark_system
from core.settings import Settings
from core.temporal import connect_temporal
from domain.tenants.schemas import TenantCreate
from domain.tenants.service import create_tenant
from tests.temporal_envs import app_workers

# Examples per operation in the fuzzing phase (the coverage phase adds its own boundary cases): enough to
# keep the run near 4 minutes on a shared 2-core machine (positive and negative cases, the coverage phase
# taking most of it, on a reachable Temporal with a worker);
# `PRM_FUZZ_EXAMPLES=200` digs deeper.
MAX_EXAMPLES = int(os.environ.get("PRM_FUZZ_EXAMPLES", "15"))
BASE_URL = "http://testserver"
# `/analytics/realtime` is an endless event stream when asked for `text/event-stream` (to schemathesis, which
# asks for JSON, it answers one snapshot). Any stream is cut at this deadline, keeping the events it sent, and
# no operation is left out of the run.
READ_TIMEOUT_SECONDS = 10
API = "/api/v1/prm"
SPEC = create_app(Settings(env="test")).openapi()  # building the schema needs no database
# One test per operation, made at collection time by schemathesis's pytest plugin. (Its fixture-based
# loader, `schemathesis.pytest.from_fixture`, reaches into pytest internals that pytest 9.2 renamed.)
schema = schemathesis.openapi.from_dict(SPEC)


def _resolved(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return SPEC["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def _branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema and each alternative it allows (`anyOf`, `oneOf`, `allOf`), resolved."""
    schema = _resolved(schema)
    found = [schema]
    for keyword in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(keyword, []):
            found.extend(_branches(branch))
    return found


def _stated_along(schema: dict[str, Any], path: list[Any]) -> bool:
    """Whether a schema on the way to `path` (a 422's `loc` inside a body) names its rules (`x-rules`):
    the field's own, or those of an object around it (rules across its fields). A step that is no
    property (the tag of a tagged union, a validator's name) stays where it is."""
    nodes = _branches(schema)
    for step in path:
        if any(RULES in node for node in nodes):
            return True
        if isinstance(step, int):
            nexts = [node["items"] for node in nodes if isinstance(node.get("items"), dict)]
        else:
            nexts = [node["properties"][step] for node in nodes if step in node.get("properties", {})]
            nexts += [
                node["additionalProperties"]
                for node in nodes
                if isinstance(node.get("additionalProperties"), dict)
                and step not in node.get("properties", {})
            ]
        if nexts:
            nodes = [branch for nxt in nexts for branch in _branches(nxt)]
    return any(RULES in node for node in nodes)


def _refused_by_stated_rules(case: Any, response: Any) -> bool:
    """Whether a 422 names only problems with rules the schema states in `x-rules` (`api.content_rules`):
    on the operation, on a query parameter, or along the problem's place in the body."""
    operation = SPEC["paths"][case.operation.path][case.method.lower()]
    if RULES in operation:
        return True
    if "\\u0000" in json.dumps([case.body, case.query, case.path_parameters], default=str):
        return bool(SPEC["info"].get(RULES))  # the rule of every request (`api.input_guard`)
    try:
        problems = json.loads(response.content)["detail"]
    except (ValueError, KeyError, TypeError):
        return False
    if not isinstance(problems, list) or not problems:
        return False
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    parameters = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}
    for problem in problems:
        if problem.get("type") == "none_required":
            continue  # a union's `null` branch refusing the value another branch refused for its reason
        where, *path = problem.get("loc") or [None]
        if where == "body" and body and _stated_along(body, path):
            continue
        if where == "query" and path and RULES in parameters.get(str(path[0]), {}):
            continue
        return False
    return True


@schemathesis.check
def schema_valid_data_accepted(ctx: CheckContext, response: Any, case: Any) -> bool | None:
    """`positive_data_acceptance`, where a 422 is also an answer to a request the schema allows if its
    every problem breaks a rule the schema names beyond JSON Schema (`x-rules`: a phone number valid in its
    region, `end_time` after `start_time`)."""
    if response.status_code == 422 and _refused_by_stated_rules(case, response):
        return None
    return positive_data_acceptance(ctx, response, case)


CHECKS = [
    not_a_server_error,  # Temporal is reachable (with a worker): no 503 is expected either
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    unsupported_method,  # a method the path does not take is 405 (with `Allow`), not the route beside it
    allow_header_conformance,  # an OPTIONS is 405 with every method of the path in `Allow`
    schema_valid_data_accepted,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def fuzzed_settings(settings: Settings, dev_env: WorkflowEnvironment) -> Settings:
    """The suite's settings on the run's Temporal dev server, with a task queue of this module's own."""
    address = dev_env.client.service_client.config.target_host
    return settings.model_copy(
        update={"temporal_address": address, "temporal_task_queue": f"fuzz-{uuid.uuid4().hex[:8]}"}
    )


@pytest.fixture(scope="module")
def worker(fuzzed_settings: Settings, database_url: str) -> Iterator[None]:
    """A worker with every workflow and activity on the fuzzed app's task queue, so what waits on a
    workflow's answer (advancing a journey instance) gets one. It runs on an event loop of its own, in a
    thread: the fuzzing test is synchronous and leaves the suite's loop idle."""
    loop = asyncio.new_event_loop()
    ready, stop = threading.Event(), asyncio.Event()

    async def run() -> None:
        engine = make_engine(database_url, fuzzed_settings)
        deps = ActivityDeps(settings=fuzzed_settings, sessionmaker=make_sessionmaker(engine))
        client = await connect_temporal(fuzzed_settings)
        try:
            async with app_workers(client, fuzzed_settings.temporal_task_queue, deps):
                ready.set()
                await stop.wait()
        finally:
            await engine.dispose()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), name="fuzz-worker")
    thread.start()
    assert ready.wait(30), "the worker did not start"
    yield
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    loop.close()


@pytest.fixture(scope="module")
def api(fuzzed_settings: Settings, database_url: str, worker: None) -> Iterator[ASGIClient]:
    """The app under test, reached in-process through schemathesis's ASGI client, on a reachable Temporal
    with a worker. That client runs the app (and its lifespan: the engine, the pool) on an event loop of
    its own, in a thread, so the suite's `app`, whose connections belong to the suite's loop, cannot be
    shared. Rate limits stay off (the suite's settings)."""
    with get_client(create_app(fuzzed_settings, database_url=database_url)) as client:
        yield client
    shutdown_lifespans()  # close the pool before the run drops its database


@pytest.fixture(scope="module")
async def fuzz_tenant(system_sessionmaker: async_sessionmaker[AsyncSession]) -> uuid.UUID:
    """One tenant for the whole run: what one operation creates, the next one lists, reads and changes."""
    async with system_sessionmaker() as session:
        mark_system(session)
        tenant = await create_tenant(session, TenantCreate(name="Fuzzed Clinic", timezone="Europe/Paris"))
        await session.commit()
        return tenant.id


@pytest.fixture(scope="module")
def admin_headers(fuzz_tenant: uuid.UUID, settings: Settings) -> dict[str, str]:
    """An admin of the fuzzed tenant: every operation is allowed."""
    return {"Authorization": f"Bearer {issue_dev_token(settings, tenant_id=fuzz_tenant, roles=[Role.ADMIN])}"}


# What `records` created, by the name of the parameter or body field that takes it.
REAL_IDS: dict[str, str] = {}


@pytest.fixture(scope="module")
def records(api: ASGIClient, admin_headers: dict[str, str], fuzz_tenant: uuid.UUID) -> Iterator[None]:
    """A record of each kind in the fuzzed tenant, so that the ids the fuzzer sends (in the path, the query
    or the body) are often real ones and its requests get past the 404 (see `REAL_IDS`)."""

    def create(path: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = api.post(f"{BASE_URL}{API}{path}", json=body, headers=admin_headers)
        assert resp.status_code == 201, (path, resp.text)
        return resp.json()

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    person = {"first_name": "Ada", "last_name": "Lovelace", "date_of_birth": "1990-01-01"}
    patient = create(
        "/patients", {**person, "phone_primary": "+14155550100", "email_primary": "ada@example.com"}
    )
    duplicate = create("/patients", person)
    practitioner = create(
        "/practitioners", {"first_name": "Grace", "last_name": "Hopper", "speciality": "GP"}
    )
    location = create("/locations", {"name": "Main", "timezone": "Europe/Paris"})
    slot = create(
        "/time-slots",
        {
            "practitioner_id": practitioner["id"],
            "location_id": location["id"],
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(minutes=30)).isoformat(),
            "capacity": 3,
        },
    )
    appointment = create("/appointments", {"patient_id": patient["id"], "time_slot_id": slot["id"]})
    entry = create(
        "/waitlist",
        {
            "patient_id": patient["id"],
            "practitioner_id": practitioner["id"],
            "start_date": start.date().isoformat(),
            "end_date": (start + timedelta(days=14)).date().isoformat(),
        },
    )
    journey = create(
        "/journeys",
        {"name": "Onboarding", "stages": [{"name": "Wait", "order_index": 0, "trigger_event": "manual"}]},
    )
    template = create(
        "/communications/templates",
        {
            "id": "fuzz_hello",
            "name": "Hello",
            "channel": "sms",
            "category": "general",
            "body": "Hi {{ name }}",
        },
    )
    message = create("/communications", {"patient_id": patient["id"], "channel": "sms", "message": "Hello"})
    ticket = create("/tickets", {"title": "Call back", "patient_id": patient["id"]})
    # Placing a patient on a journey needs no Temporal: the instance and its workflow's start are saved
    # together (the relay delivers the start once a Temporal answers).
    started = api.post(
        f"{BASE_URL}{API}/journeys/instances",
        json={"journey_id": journey["id"], "patient_id": patient["id"], "appointment_id": appointment["id"]},
        headers=admin_headers,
    )
    assert started.status_code == 201, started.text
    REAL_IDS.update(
        tenant_id=str(fuzz_tenant),
        patient_id=patient["id"],
        primary_patient_id=patient["id"],
        duplicate_patient_id=duplicate["id"],
        mrn=patient["mrn"],
        practitioner_id=practitioner["id"],
        location_id=location["id"],
        slot_id=slot["id"],
        time_slot_id=slot["id"],
        appointment_id=appointment["id"],
        entry_id=entry["id"],
        journey_id=journey["id"],
        stage_id=journey["stages"][0]["id"],
        instance_id=started.json()["id"],
        journey_instance_id=started.json()["id"],
        template_id=template["id"],
        communication_id=message["id"],
        ticket_id=ticket["id"],
    )
    yield
    REAL_IDS.clear()


def _with_real_ids(values: Any) -> Any:
    """Replace about half of the generated ids (those the fuzzer drew as strings) with the real record's: the
    half is chosen by the drawn value's hash, so a run is as reproducible as the values themselves."""
    if not isinstance(values, dict):
        return values
    replaced = dict(values)
    for name, value in values.items():
        if name in REAL_IDS and isinstance(value, str):
            if hashlib.sha256(value.encode()).digest()[0] % 2 == 0:
                replaced[name] = REAL_IDS[name]
    return replaced


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@pytest.mark.usefixtures("records")
def test_every_operation_answers_within_its_schema(
    case: Any, api: ASGIClient, admin_headers: dict[str, str]
) -> None:
    # What the case made invalid on purpose (a negative case) reaches the API as made: no real id replaces
    # a malformed one, and a mangled `Authorization` stays (a 401 is its refusal).
    negated = {
        where for where, part in (case.meta.components if case.meta else {}).items() if part.mode.is_negative
    }
    if ParameterLocation.PATH not in negated:
        case.path_parameters = _with_real_ids(case.path_parameters)
    if ParameterLocation.QUERY not in negated:
        case.query = _with_real_ids(case.query)
    if ParameterLocation.BODY not in negated:
        case.body = _with_real_ids(case.body)
    headers = dict(case.headers or {})
    if ParameterLocation.HEADER not in negated or "Authorization" not in headers:
        headers.update(admin_headers)
    case.headers = headers
    case.call_and_validate(session=api, base_url=BASE_URL, checks=CHECKS, timeout=READ_TIMEOUT_SECONDS)


# ---- without a token -----------------------------------------------------------------------------------

PUBLIC = {"/health": {200}, "/ready": {200, 503}}
SIGNED_PREFIX = "/api/v1/prm/webhooks/"
DOCS_PAGES = ["/docs", "/redoc", "/openapi.json"]


def _without_token() -> Iterator[tuple[str, str, str]]:
    """(method, path template, URL with every path parameter filled) of each operation in the schema."""
    for template, methods in SPEC["paths"].items():
        for method, operation in methods.items():
            url = template
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    value = str(uuid.uuid4()) if parameter["schema"].get("format") == "uuid" else "x"
                    url = url.replace(f"{{{parameter['name']}}}", value)
            yield method.upper(), template, url


async def test_without_a_token_every_operation_is_401_but_health_docs_and_webhooks(
    client: httpx.AsyncClient,
) -> None:
    wrong = []
    for method, template, url in _without_token():
        body = {"json": {}} if method in {"POST", "PATCH", "PUT"} else {}
        resp = await client.request(method, url, **body)
        if template in PUBLIC:
            expected = PUBLIC[template]
        elif template.startswith(SIGNED_PREFIX):
            expected = {403}  # no bearer token there: a missing signature is refused
        else:
            expected = {401}
            if resp.status_code == 401 and resp.headers.get("WWW-Authenticate") != "Bearer":
                wrong.append((method, template, "401 without WWW-Authenticate: Bearer"))
        if resp.status_code not in expected:
            wrong.append((method, template, resp.status_code))
        elif resp.status_code in {401, 403}:
            assert isinstance(resp.json()["detail"], str), (method, template)
    for page in DOCS_PAGES:
        resp = await client.get(page)
        if resp.status_code != 200:
            wrong.append(("GET", page, resp.status_code))
    assert not wrong
    assert len(list(_without_token())) > 90  # every operation was tried
