"""A journey started through the API is one trace from the HTTP request through the workflow start to
each activity, its request id reaches the activities (and their log lines), and its counters move; spans
carry no query string and no exception text."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities import ActivityDeps
from activities.journeys import JourneyActivities
from api.app import create_app
from api.observability import instrument_tracing
from core.logging import RequestIdFilter
from core.request_context import current_request_id
from core.tracing import temporal_interceptors, tracer_provider
from domain.journeys.plan import ProgressInput
from tests.journeys.app_support import app_on
from tests.journeys.conftest import INSTANCES, JOURNEYS, Clinic
from tests.polling import eventually

WELCOME_ONLY = {
    "name": "Welcome",
    "journey_type": "onboarding",
    "stages": [
        {
            "name": "Welcome",
            "order_index": 1,
            "trigger_event": "immediate",
            "actions": [{"type": "send_message", "channel": "sms", "template_id": "post_op_welcome"}],
        }
    ],
}


class RecordingJourneyActivities(JourneyActivities):
    """The real journey activities; recording a stage also notes the request id it runs under and logs."""

    def __init__(self, deps: ActivityDeps) -> None:
        super().__init__(deps)
        self.request_ids: list[str | None] = []

    @activity.defn(name="journey_record_progress")
    async def record_progress(self, data: ProgressInput) -> None:
        """Record the stages as the worker does, noting the bound request id."""
        self.request_ids.append(current_request_id())
        for stage in data.stages:
            logging.getLogger("activities.journeys").info("recording stage %s", stage.order_index)
        await super().record_progress(data)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """Where this test's spans go (through the same PHI-safe exporter production uses)."""
    return InMemorySpanExporter()


@pytest.fixture
def provider(spans: InMemorySpanExporter) -> TracerProvider:
    """A tracer provider of this test's own (the process's global one stays untouched)."""
    return tracer_provider(spans, "prm-test", batch=False)


@pytest.fixture
async def traced_app(settings: Any, database_url: str, provider: TracerProvider) -> AsyncIterator[Any]:
    """An app of its own whose requests are traced, as `install_observability` does with tracing on."""
    application = create_app(settings, database_url=database_url)
    instrument_tracing(application, provider)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def log_records() -> Any:
    """The records logged while the test runs, with the request id filter production installs."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.INFO)
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def counter(name: str, **labels: str) -> float:
    """A counter's current value in this process (0 before its first increment)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_journey_started_through_the_api_is_one_trace_with_its_request_id_in_activities(
    traced_app: Any,
    temporal_env: WorkflowEnvironment,
    activity_deps: ActivityDeps,
    provider: TracerProvider,
    spans: InMemorySpanExporter,
    clinic: Clinic,
    auth: dict[str, str],
    log_records: list[logging.LogRecord],
) -> None:
    traced = Client(**{**temporal_env.client.config(), "interceptors": temporal_interceptors(provider)})
    recording = RecordingJourneyActivities(activity_deps)
    started_before = counter("prm_journeys_started_total")
    completed_before = counter("prm_journeys_finished_total", outcome="completed")
    transport = httpx.ASGITransport(app=traced_app)
    async with (
        app_on(traced_app, temporal_env, activity_deps, recording, client=traced),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        journey = await client.post(JOURNEYS, json=WELCOME_ONLY, headers=auth)
        assert journey.status_code == 201, journey.text
        request_id = f"req-{uuid.uuid4().hex[:12]}"
        body = {"journey_id": journey.json()["id"], "patient_id": str(clinic.patient_id)}
        resp = await client.post(INSTANCES, json=body, headers={**auth, "X-Request-ID": request_id})
        assert resp.status_code == 201, resp.text
        searched = await client.get("/api/v1/prm/patients/search?query=Maria", headers=auth)
        assert searched.status_code == 200

        async def completed() -> bool:
            return (await clinic.instance(resp.json()["id"])).status == "completed"

        await eventually(completed, "the journey to complete")

    # One trace: the request, the workflow's start, the workflow and its activities.
    finished = spans.get_finished_spans()
    (request_span,) = [s for s in finished if s.name == f"POST {INSTANCES}" and s.kind == SpanKind.SERVER]
    trace_id = request_span.context.trace_id
    in_trace = {s.name for s in finished if s.context.trace_id == trace_id}
    assert "StartWorkflow:JourneyInstanceWorkflow" in in_trace
    assert "RunActivity:journey_record_progress" in in_trace
    assert "RunActivity:journey_send_message" in in_trace
    assert request_span.attributes is not None and request_span.attributes.get("http.route") == INSTANCES

    # No query string (a patient's name) in any exported attribute.
    for span in finished:
        assert "Maria" not in str(dict(span.attributes or {})), span.name

    # The request id reached the activities, and their log lines.
    assert recording.request_ids and set(recording.request_ids) == {request_id}
    stage_lines = [r for r in log_records if r.getMessage().startswith("recording stage")]
    assert stage_lines and {getattr(r, "request_id", None) for r in stage_lines} == {request_id}

    # The journey's counters moved: started by the API, completed by the worker's activity.
    assert counter("prm_journeys_started_total") == started_before + 1
    assert counter("prm_journeys_finished_total", outcome="completed") == completed_before + 1
