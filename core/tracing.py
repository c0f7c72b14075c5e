"""OpenTelemetry traces: from the API request through the workflow start to each activity, one trace.

Off unless an OTLP endpoint is configured (`PRM_OTLP_ENDPOINT`, or the standard
`OTEL_EXPORTER_OTLP_ENDPOINT`): then `configure_tracing` installs the process's tracer provider, exporting
in batches over OTLP, the API's requests are traced (`api.observability`), and every Temporal client of
the service carries `TracingInterceptor` (`temporal_interceptors`), which continues the trace in the
workflow and the activities it runs. Without an endpoint nothing is installed: no exporter, no spans, and
the API's requests run without the tracing middleware.

Spans never carry PHI. Span attributes hold methods, route templates, status codes and Temporal ids, and
the exporter (`PhiSafeSpanExporter`) drops what could quote patient data before anything leaves the
process: query strings (`?query=Jane`), exception messages and stack traces (a provider's error quotes the
number it refused; see `core.logging`), and the text of error statuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Status

from core.logging import WITHHELD
from core.request_context import RequestIdInterceptor
from core.settings import Settings

# Attributes that hold a URL or a target: kept without their query string.
_URL_ATTRIBUTES = ("http.url", "http.target", "url.full")
_DROPPED_ATTRIBUTES = frozenset({"url.query"})
_EXCEPTION_KEPT = ("exception.type", "exception.escaped")


def _safe_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    safe: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if key in _DROPPED_ATTRIBUTES:
            continue
        if key in _URL_ATTRIBUTES and isinstance(value, str):
            value = value.split("?", 1)[0]
        safe[key] = value
    return safe


def _safe_event(event: Event) -> Event:
    if event.name != "exception":
        return Event(event.name, _safe_attributes(event.attributes), event.timestamp)
    attributes = {k: v for k, v in (event.attributes or {}).items() if k in _EXCEPTION_KEPT}
    attributes["exception.message"] = WITHHELD
    return Event(event.name, attributes, event.timestamp)


def phi_safe(span: ReadableSpan) -> ReadableSpan:
    """`span` without query strings, exception messages, stack traces or error texts."""
    status = span.status
    if status.description:  # "ProviderError: the 'To' number +1415... is invalid": keep the type only
        status = Status(status.status_code, status.description.split(":", 1)[0])
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_safe_attributes(span.attributes),
        events=[_safe_event(event) for event in span.events],
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class PhiSafeSpanExporter(SpanExporter):
    """Wraps the real exporter: every span is made PHI-safe (`phi_safe`) before it is exported."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export the spans, made PHI-safe."""
        return self.exporter.export([phi_safe(span) for span in spans])

    def shutdown(self) -> None:
        """Shut the real exporter down."""
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the real exporter."""
        return self.exporter.force_flush(timeout_millis)


def tracer_provider(exporter: SpanExporter, service_name: str, *, batch: bool = True) -> TracerProvider:
    """A tracer provider for `service_name` sending PHI-safe spans to `exporter` (in batches, or each span
    as it ends: tests)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    safe = PhiSafeSpanExporter(exporter)
    provider.add_span_processor(BatchSpanProcessor(safe) if batch else SimpleSpanProcessor(safe))
    return provider


def otlp_exporter(settings: Settings) -> SpanExporter:
    """The OTLP exporter for the configured endpoint and protocol (gRPC by default)."""
    if settings.otlp_protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        endpoint = settings.otlp_endpoint or ""
        return HttpExporter(endpoint=endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces")
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    return GrpcExporter(endpoint=settings.otlp_endpoint)


def configure_tracing(settings: Settings, service_name: str) -> TracerProvider | None:
    """Install the process's tracer provider when an OTLP endpoint is configured; None (tracing off)
    otherwise. Call once, at start-up, before the Temporal clients connect."""
    if not settings.otlp_endpoint:
        return None
    provider = tracer_provider(otlp_exporter(settings), service_name)
    trace.set_tracer_provider(provider)
    return provider


def active_tracer_provider() -> TracerProvider | None:
    """The process's tracer provider when tracing is on (`configure_tracing` installed one), else None."""
    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None


def temporal_interceptors(provider: TracerProvider | None = None) -> list[Any]:
    """The interceptors every Temporal client of the service carries (and the workers built on it): the
    request id always; the tracing interceptor when tracing is on (`provider`, or the process's)."""
    interceptors: list[Any] = [RequestIdInterceptor()]
    provider = provider or active_tracer_provider()
    if provider is not None:
        from temporalio.contrib.opentelemetry import TracingInterceptor

        interceptors.append(TracingInterceptor(provider.get_tracer("prm.temporal")))
    return interceptors
