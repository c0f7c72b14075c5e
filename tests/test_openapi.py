"""The OpenAPI schema: readable operation ids, one tag per resource, every error declared with its body, the
stream documented as a stream, TwiML as XML, the legacy alias deprecated (and saying so in its answers), the
rules beyond JSON Schema named (`x-rules`); and a client generated from it that works."""

from __future__ import annotations

import asyncio
import importlib
import re
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import BaseModel
from temporalio.testing import WorkflowEnvironment

from activities import ActivityDeps
from api.app import create_app
from api.errors import ErrorDetail, InternalErrorDetail, UnprocessableDetail, internal_error_response
from api.openapi import TAGS
from core.settings import Settings
from tests.journeys.app_support import app_on
from tests.polling import eventually

API = "/api/v1/prm"
WRITES = {"post", "patch", "put", "delete"}
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """The schema as `/openapi.json` serves it (building it needs no database)."""
    return create_app(Settings(env="test")).openapi()


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every (path, method, operation) of the schema."""
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def json_schema(response: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON body schema a declared response names, if any."""
    return response.get("content", {}).get("application/json", {}).get("schema")


def test_operation_ids_are_unique_and_read_as_resource_dot_action(spec: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(spec)]
    print("\n".join(sorted(ids)))
    assert len(ids) == len(set(ids))
    assert not [i for i in ids if "_api_v1_" in i]
    assert all(re.fullmatch(r"[a-z_]+\.[a-z0-9_]+", i) for i in ids), ids
    assert {"patients.list", "patients.get", "patients.get_360", "journey_instances.advance"} <= set(ids)


def test_each_operation_has_one_declared_tag_and_each_tag_a_description(spec: dict[str, Any]) -> None:
    declared = [t["name"] for t in spec["tags"]]
    assert declared[:3] == ["patients", "practitioners", "appointments"]
    assert all(t["description"] for t in spec["tags"]) and declared == [t["name"] for t in TAGS]
    for path, method, op in operations(spec):
        assert len(op["tags"]) == 1 and op["tags"][0] in declared, (method, path)


def test_authenticated_operations_declare_401_403_422_and_503_with_bodies(spec: dict[str, Any]) -> None:
    authenticated = [(path, method, op) for path, method, op in operations(spec) if "security" in op]
    assert len(authenticated) > 80
    for path, method, op in authenticated:
        for status in ("401", "403", "422", "500", "503"):
            assert json_schema(op["responses"].get(status, {})), (method, path, status)


def test_operations_reading_a_path_id_declare_404(spec: dict[str, Any]) -> None:
    for path, method, op in operations(spec):
        if "{" in path:
            assert json_schema(op["responses"].get("404", {})), (method, path)


def test_operations_taking_the_callers_tenant_id_declare_403_for_another_tenants(
    spec: dict[str, Any],
) -> None:
    schemas = spec["components"]["schemas"]
    for path, method, op in operations(spec):
        if "security" not in op:
            continue  # a webhook's `tenant_id` is a hint of the provider's, not the caller's tenant
        in_query = any(p["name"] == "tenant_id" for p in op.get("parameters", []))
        body_ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        body = schemas.get(body_ref.get("$ref", "").rsplit("/", 1)[-1], {})
        if in_query or "tenant_id" in body.get("properties", {}):
            forbidden = op["responses"].get("403", {})
            assert json_schema(forbidden) and "tenant_id" in forbidden["description"], (method, path)


def test_every_declared_error_names_its_body(spec: dict[str, Any]) -> None:
    bodies = {"400": "ErrorDetail", "401": "ErrorDetail", "404": "ErrorDetail", "409": "ErrorDetail"}
    bodies |= {"422": "UnprocessableDetail", "500": "InternalErrorDetail"}
    for path, method, op in operations(spec):
        for status, response in op["responses"].items():
            if status == "409" and json_schema(response) == {"$ref": "#/components/schemas/AppointmentClash"}:
                continue  # an ErrorDetail with the clashing appointments (test below)
            if status in bodies:
                assert json_schema(response) == {"$ref": f"#/components/schemas/{bodies[status]}"}, (
                    method,
                    path,
                    status,
                )


def test_realtime_stream_is_documented_as_an_event_stream(spec: dict[str, Any]) -> None:
    content = spec["paths"][f"{API}/analytics/realtime"]["get"]["responses"]["200"]["content"]
    assert next(iter(content)) == "text/event-stream"
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/RealtimeSnapshot"}
    assert "RealtimeSnapshot" in spec["components"]["schemas"]


def test_legacy_instances_alias_is_deprecated_in_the_schema(spec: dict[str, Any]) -> None:
    legacy = [(path, op) for path, _, op in operations(spec) if path.startswith(f"{API}/instances")]
    current = [path for path in spec["paths"] if path.startswith(f"{API}/journeys/instances")]
    assert len({path for path, _ in legacy}) == len(current) == 5
    assert all(op["deprecated"] is True and op["operationId"].endswith("_legacy") for _, op in legacy)
    assert not [op for path, _, op in operations(spec) if path in current and op.get("deprecated")]


async def test_legacy_instances_alias_answers_with_deprecation_and_its_successor(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    resp = await client.get(f"{API}/instances", headers=auth)
    assert resp.status_code == 200 and resp.json()["items"] == []
    assert resp.headers["Deprecation"] == "@1796083200"  # 2026-12-01T00:00:00Z, an RFC 9745 date
    assert resp.headers["Link"] == f'<{API}/journeys/instances>; rel="successor-version"'
    missing = await client.get(f"{API}/instances/{uuid.uuid4()}", headers=auth)
    assert missing.status_code == 404 and "Deprecation" in missing.headers  # every answer, errors too
    assert missing.headers["Link"].startswith(f"<{API}/journeys/instances/")
    current = await client.get(f"{API}/journeys/instances", headers=auth)
    assert "Deprecation" not in current.headers and "Link" not in current.headers


def test_booking_clash_declares_the_conflicting_appointments(spec: dict[str, Any]) -> None:
    for path, method in [
        (f"{API}/appointments", "post"),
        (f"{API}/appointments/{{appointment_id}}", "patch"),
    ]:
        clash = spec["paths"][path][method]["responses"]["409"]
        assert json_schema(clash) == {"$ref": "#/components/schemas/AppointmentClash"}, (method, path)
    body = spec["components"]["schemas"]["AppointmentClash"]
    assert body["required"] == ["detail"]
    items = body["properties"]["conflicting_appointments"]["items"]
    assert items == {"$ref": "#/components/schemas/ConflictingAppointment"}
    assert {"appointment_id", "start_time", "end_time"} <= set(
        spec["components"]["schemas"]["ConflictingAppointment"]["properties"]
    )


def test_twilio_inbound_webhook_answers_twiml_documented_as_xml(spec: dict[str, Any]) -> None:
    ok = spec["paths"][f"{API}/webhooks/twilio/messages"]["post"]["responses"]["200"]
    assert list(ok["content"]) == ["text/xml"]  # TwiML as Twilio documents it (XML)
    assert ok["content"]["text/xml"]["schema"] == {"type": "string"}


def test_rules_beyond_json_schema_are_named_where_they_apply(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    patient = schemas["PatientCreate"]["properties"]
    assert any("phone number" in rule for rule in patient["phone_primary"]["x-rules"])
    assert any("language tag" in rule for rule in patient["preferred_language"]["x-rules"])
    assert any("1900-01-01" in rule for rule in patient["date_of_birth"]["x-rules"])
    assert "x-rules" not in patient["first_name"]  # its JSON Schema says it all (a length)
    assert schemas["TimeSlotCreate"]["x-rules"]  # end after start: a rule across its fields
    until = next(p for p in spec["paths"][f"{API}/audit"]["get"]["parameters"] if p["name"] == "until")
    assert until["schema"]["anyOf"][0] == {"type": "string", "format": "date-time"} and until["x-rules"]


@pytest.mark.parametrize(
    ("request_args", "status", "body"),
    [
        ({"method": "GET", "url": f"{API}/patients", "headers": {}}, 401, ErrorDetail),
        ({"method": "GET", "url": f"{API}/patients/{uuid.uuid4()}"}, 404, ErrorDetail),
        ({"method": "GET", "url": f"{API}/patients?page_size=1000"}, 422, UnprocessableDetail),
        ({"method": "GET", "url": f"{API}/analytics/dashboard?time_period=CUSTOM"}, 422, UnprocessableDetail),
        ({"method": "GET", "url": f"{API}/patients?tenant_id={uuid.uuid4()}"}, 403, ErrorDetail),
    ],
    ids=["401", "404", "422-validation", "422-domain", "403-foreign-tenant"],
)
async def test_error_answers_have_the_declared_bodies(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    request_args: dict[str, Any],
    status: int,
    body: type[BaseModel],
) -> None:
    resp = await client.request(**{"headers": auth, **request_args})
    assert resp.status_code == status, resp.text
    body.model_validate(resp.json())


@pytest.mark.parametrize(
    ("method", "url", "body", "where"),
    [
        ("GET", f"{API}/appointments?start_date=0", None, ["query", "start_date"]),
        ("GET", f"{API}/time-slots?end_date=20260101", None, ["query", "end_date"]),
        ("GET", f"{API}/audit?until=0.5", None, ["query", "until"]),
        (
            "GET",
            f"{API}/appointments/conflicts?practitioner_id={uuid.uuid4()}&start_time=1&end_time=2",
            None,
            None,
        ),
        ("POST", f"{API}/patients/search", {"created_from": 0}, ["body", "created_from"]),
        ("POST", f"{API}/locations", {"name": "Main", "is_active": 0}, ["body", "is_active"]),
        (
            "POST",
            f"{API}/journeys",
            {"name": "J", "stages": [{"name": "S", "order_index": "1"}]},
            ["body", "stages", 0, "order_index"],
        ),
    ],
    ids=[
        "date-as-number",
        "date-without-dashes",
        "date-time-as-number",
        "date-times-as-numbers",
        "body-date-time-as-number",
        "boolean-as-number",
        "integer-as-text",
    ],
)
async def test_what_a_format_or_type_refuses_the_api_refuses_with_422(
    client: httpx.AsyncClient,
    headers_for: Any,
    tenant_id: uuid.UUID,
    method: str,
    url: str,
    body: dict[str, Any] | None,
    where: list[str] | None,
) -> None:
    resp = await client.request(method, url, json=body, headers=headers_for(tenant_id, "admin"))
    assert resp.status_code == 422, resp.text
    problems = UnprocessableDetail.model_validate(resp.json()).detail
    if where is not None:
        assert [p.loc[: len(where)] for p in problems] == [where], problems


def test_internal_error_body_is_declared_as_sent() -> None:
    InternalErrorDetail.model_validate_json(internal_error_response("req-1").body)


# ---- a generated client ----------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def served(app: Any, dev_env: WorkflowEnvironment, activity_deps: ActivityDeps) -> AsyncIterator[str]:
    """The test app served by uvicorn on a free port, on the Temporal dev server with a journey worker."""
    async with app_on(app, dev_env, activity_deps):
        port = free_port()
        # The app's lifespan is already running (the `app` fixture): uvicorn only serves it.
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no start event
            await asyncio.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)


@pytest.fixture
async def prm_client(served: str, tmp_path: Path) -> AsyncIterator[ModuleType]:
    """A Python client generated by openapi-python-client from the served `/openapi.json`, imported."""
    async with httpx.AsyncClient(base_url=served) as http:
        (tmp_path / "openapi.json").write_bytes((await http.get("/openapi.json")).content)
    (tmp_path / "config.yaml").write_text("post_hooks: []\n")  # no formatter run: nothing to fetch or find
    generator = await asyncio.create_subprocess_exec(
        GENERATOR,
        "generate",
        "--path",
        tmp_path / "openapi.json",
        "--meta",
        "none",
        "--output-path",
        tmp_path / "prm_client",
        "--config",
        tmp_path / "config.yaml",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await asyncio.wait_for(generator.communicate(), 60))[0].decode()
    assert generator.returncode == 0, output
    assert "Warning" not in output, output  # every operation made it into the client
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("prm_client")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "prm_client" or m.startswith("prm_client.")]:
            del sys.modules[name]


async def test_generated_client_books_places_advances_and_reads_the_360_view(
    prm_client: ModuleType, served: str, tenant_id: uuid.UUID, token_for: Any
) -> None:
    def load(module: str) -> Any:
        return importlib.import_module(f"prm_client.{module}")

    models = load("models")
    patients, practitioners = load("api.patients"), load("api.practitioners")
    appointments, journeys, instances = (
        load("api.appointments"),
        load("api.journeys"),
        load("api.journey_instances"),
    )
    for package, names in [
        (patients, ["patients_create", "patients_get_360"]),
        (practitioners, ["practitioners_create"]),
        (appointments, ["appointments_create"]),
        (journeys, ["journeys_create"]),
        (instances, ["journey_instances_create", "journey_instances_get", "journey_instances_advance"]),
    ]:
        for name in names:
            importlib.import_module(f"{package.__name__}.{name}")

    async with prm_client.AuthenticatedClient(base_url=served, token=token_for(tenant_id)) as api:
        patient = await patients.patients_create.asyncio(
            client=api,
            body=models.PatientCreate(first_name="Maria", last_name="Garcia", phone_primary="+14155550123"),
        )
        assert isinstance(patient, models.PatientResponse), patient

        practitioner = await practitioners.practitioners_create.asyncio(
            client=api, body=models.PractitionerCreate(first_name="John", last_name="Smith")
        )
        assert isinstance(practitioner, models.PractitionerResponse), practitioner

        start = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
        appointment = await appointments.appointments_create.asyncio(
            client=api,
            body=models.AppointmentDirectCreate(
                patient_id=patient.id,
                practitioner_id=practitioner.id,
                start_time=start,
                end_time=start + timedelta(minutes=30),
            ),
        )
        assert isinstance(appointment, models.AppointmentDetailResponse), appointment

        stage = models.JourneyStageCreate(
            name="Check-in call", order_index=1, trigger_event=models.ManualTrigger()
        )
        journey = await journeys.journeys_create.asyncio(
            client=api, body=models.JourneyCreate(name="Post-visit follow-up", stages=[stage])
        )
        assert isinstance(journey, models.JourneyResponse), journey

        instance = await instances.journey_instances_create.asyncio(
            client=api,
            body=models.JourneyInstanceCreate(
                journey_id=journey.id, patient_id=patient.id, appointment_id=appointment.id
            ),
        )
        assert isinstance(instance, models.JourneyInstanceResponse), instance

        async def stage_waits() -> bool:
            current = await instances.journey_instances_get.asyncio(client=api, instance_id=instance.id)
            return [s.status for s in current.stages] == ["active"]

        await eventually(stage_waits)
        advanced = await instances.journey_instances_advance.asyncio(
            client=api, instance_id=instance.id, body=models.AdvanceStageRequest(notes="Called, all well")
        )
        assert isinstance(advanced, models.AdvanceStageResponse), advanced
        assert advanced.status == "completed" and advanced.advanced_stage.name == "Check-in call"

        view = await patients.patients_get_360.asyncio(client=api, patient_id=patient.id)
        assert isinstance(view, models.Patient360Response), view
        assert [a.id for a in view.appointments] == [appointment.id]
        assert view.upcoming_appointments == 1 and view.patient.full_name == "Maria Garcia"

        missing = await patients.patients_get_360.asyncio_detailed(client=api, patient_id=uuid.uuid4())
        assert missing.status_code == 404 and isinstance(missing.parsed, models.ErrorDetail)
