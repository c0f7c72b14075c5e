"""What an operator sees: `/metrics` labelled by route template (never an id), the worker's metrics with
the Temporal SDK's on a port of their own, log lines naming the request, and spans without PHI."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.middleware import RequestIdMiddleware
from core.logging import FORMAT, JsonFormatter, PhiSafeTextFormatter, RequestIdFilter
from core.metrics import free_loopback_port
from core.settings import Settings
from core.tracing import tracer_provider
from worker import start_worker_telemetry

PATIENTS = "/api/v1/prm/patients"
PHI_PHONE = "+14155550199"


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The (labels, value) of every sample called `name` in a Prometheus text exposition."""
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


async def test_metrics_count_requests_by_route_template_never_by_id(client: httpx.AsyncClient, auth) -> None:
    missing = [uuid.uuid4() for _ in range(3)]
    for patient_id in missing:
        assert (await client.get(f"{PATIENTS}/{patient_id}", headers=auth)).status_code == 404
    assert (await client.get(f"/no/such/page/{missing[0]}")).status_code == 404

    resp = await client.get("/metrics")

    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    counted = samples(resp.text, "prm_http_requests_total")
    by_template = {
        value
        for labels, value in counted
        if labels == {"method": "GET", "route": f"{PATIENTS}/{{patient_id}}", "status": "404"}
    }
    assert by_template and max(by_template) >= 3
    assert any(labels["route"] == "unmatched" and labels["status"] == "404" for labels, _ in counted)
    assert samples(resp.text, "prm_http_request_duration_seconds_count")
    assert not any(str(patient_id) in resp.text for patient_id in missing)


async def test_metrics_stay_out_of_the_api_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "/metrics" not in schema["paths"]


async def test_metrics_take_a_bearer_token_when_one_is_set(
    client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "metrics_token", "scrape-secret")
    assert (await client.get("/metrics")).status_code == 401
    wrong = {"Authorization": "Bearer guess"}
    assert (await client.get("/metrics", headers=wrong)).status_code == 401
    right = {"Authorization": "Bearer scrape-secret"}
    assert (await client.get("/metrics", headers=right)).status_code == 200


# ---- the worker's endpoint ---------------------------------------------------------------------------


def _read(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - a loopback URL of the test's
        return bytes(answer.read())


async def test_the_worker_serves_its_counters_and_the_temporal_sdks_metrics(
    settings: Settings, dev_env: WorkflowEnvironment
) -> None:
    port = free_loopback_port()
    telemetry = start_worker_telemetry(settings.model_copy(update={"worker_metrics_port": port}))
    try:
        assert telemetry.runtime is not None and telemetry.server is not None
        # A client on the worker's runtime: its calls show in the SDK's metrics.
        target = dev_env.client.service_client.config.target_host
        client = await Client.connect(target, runtime=telemetry.runtime)
        await client.count_workflows()
        text = (await asyncio.to_thread(_read, f"http://127.0.0.1:{port}/metrics")).decode()
    finally:
        telemetry.close()
    assert samples(text, "prm_journeys_started_total")  # ours
    assert "# TYPE prm_messages_sent_total counter" in text
    assert any(
        labels.get("operation") == "CountWorkflowExecutions"
        for labels, _ in samples(text, "temporal_request_total")
    )


def test_worker_metrics_port_0_serves_nothing(settings: Settings) -> None:
    telemetry = start_worker_telemetry(settings.model_copy(update={"worker_metrics_port": 0}))
    assert telemetry.runtime is None and telemetry.server is None


# ---- logs --------------------------------------------------------------------------------------------


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the root handler writes with PRM_LOG_FORMAT=json (production's formatter and filter)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def app_logging_then_failing() -> FastAPI:
    """An app behind the real request-id middleware whose route logs a line, then fails unexpectedly."""
    app = FastAPI()
    app.add_middleware(RequestIdMiddleware)

    @app.get("/work")
    async def work() -> None:
        logging.getLogger("prm.test").info("looking the patient up")
        raise ValueError(f"The 'To' number {PHI_PHONE} is not a valid phone number")

    return app


async def test_json_log_lines_logged_during_a_request_carry_its_id(json_lines: io.StringIO) -> None:
    transport = httpx.ASGITransport(app=app_logging_then_failing())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        resp = await client.get("/work", headers={"X-Request-ID": "req-42"})
    logging.getLogger("prm.test").info("after the request")

    assert resp.status_code == 500
    lines = {entry["message"]: entry for entry in map(json.loads, json_lines.getvalue().splitlines())}
    during, after = lines["looking the patient up"], lines["after the request"]
    (failure,) = [entry for message, entry in lines.items() if message.startswith("unexpected error")]
    assert (during["request_id"], during["level"], during["logger"]) == ("req-42", "INFO", "prm.test")
    assert failure["request_id"] == "req-42" and failure["logger"] == "api.middleware"
    assert "ValueError (message withheld" in failure["exception"]
    assert PHI_PHONE not in json_lines.getvalue()
    assert "request_id" not in after


def test_text_lines_name_the_request_id_when_there_is_one() -> None:
    formatter = PhiSafeTextFormatter(FORMAT)
    record = logging.LogRecord("prm.test", logging.INFO, __file__, 1, "stage %s recorded", (2,), None)
    assert formatter.format(record).endswith("prm.test: stage 2 recorded")
    record.request_id = "req-7"
    assert formatter.format(record).endswith("prm.test: stage 2 recorded [request_id=req-7]")


# ---- spans -------------------------------------------------------------------------------------------


def test_exported_spans_hold_no_exception_text_and_no_query_string() -> None:
    exported = InMemorySpanExporter()
    tracer = tracer_provider(exported, "prm-test", batch=False).get_tracer("test")
    with tracer.start_as_current_span(
        "GET /api/v1/prm/patients/search",
        attributes={
            "http.url": "http://api/api/v1/prm/patients/search?query=Jane",
            "url.query": "query=Jane",
        },
    ) as span:
        span.record_exception(ValueError(f"The 'To' number {PHI_PHONE} is invalid"))
        span.set_status(Status(StatusCode.ERROR, f"ValueError: The 'To' number {PHI_PHONE} is invalid"))

    (span_out,) = exported.get_finished_spans()
    rendered: Any = span_out.to_json()
    assert PHI_PHONE not in rendered and "Jane" not in rendered
    assert span_out.attributes is not None
    assert span_out.attributes["http.url"] == "http://api/api/v1/prm/patients/search"
    assert span_out.status.status_code == StatusCode.ERROR and span_out.status.description == "ValueError"
    (event,) = span_out.events
    assert event.attributes is not None and event.attributes["exception.type"] == "ValueError"
