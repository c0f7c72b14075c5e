"""What an operator watches the API with: `/metrics` for Prometheus, the access log (`prm.access`, one line
per answer, written beside the request metrics instead of uvicorn's), and traces when tracing is on.

`/metrics` counts every answer by method, route TEMPLATE (`/api/v1/prm/patients/{patient_id}`, never the
path a caller sent: ids are not labels; `unmatched` for a path no route serves) and status, with a latency
histogram, beside the business counters of `core.metrics` that this process moved. It is left out of the
OpenAPI schema and takes no user token: it holds no patient data and no tenant ids. Operators who expose
the API beyond their network set `PRM_METRICS_TOKEN` (then a scrape sends it as a bearer token) or
block the path at the ingress; `PRM_METRICS_ENABLED=false` removes it.
"""

from __future__ import annotations

import functools
import hmac
import logging
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.settings import Settings
from core.tracing import active_tracer_provider

access_log = logging.getLogger("prm.access")
METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Never traced: probes and scrapes, every few seconds, would drown the requests worth reading.
_UNTRACED = f"/health$,/ready$,{METRICS_PATH}$"

HTTP_REQUESTS = Counter(
    "prm_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "prm_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def route_template(scope: Scope) -> str:
    """The template of the route that served the request, never its raw path; `unmatched` when no route
    did (an unknown path, or a request a guard answered before routing: 413, a CORS preflight)."""
    # FastAPI (0.16x) keeps an included router's routes without their prefix and records the full
    # template in its effective route context; app-level routes (and older FastAPI) carry it themselves.
    effective = scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(effective, "path_format", None) or getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class HttpMetricsMiddleware:
    """Count every answer and time it, labelled by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, then record it (a request that raised counts as a 500)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = route_template(scope)
            counter, histogram = _series(method, route, status)
            counter.inc()
            histogram.observe(seconds)
            if access_log.isEnabledFor(logging.INFO):
                _log_access(scope, method, route, status, seconds)


@functools.lru_cache(maxsize=4096)  # routes and statuses are few: the labelled series, looked up once each
def _series(method: str, route: str, status: int) -> tuple[Any, Any]:
    return (
        HTTP_REQUESTS.labels(method=method, route=route, status=str(status)),
        HTTP_DURATION.labels(method=method, route=route),
    )


def _log_access(scope: Scope, method: str, route: str, status: int, seconds: float) -> None:
    """The access log: one line per answer with the route template (never the query string, which can
    hold a searched name), the status and the time taken; `http` holds the same fields for JSON logs."""
    client = scope.get("client")
    fields = {
        "method": method,
        "route": route,
        "status": status,
        "ms": round(seconds * 1000, 1),
        "client": client[0] if client else None,
    }
    access_log.info(
        "%s %s %d %.1f ms",
        method,
        route,
        status,
        fields["ms"],
        extra={"http": fields, "request_id": scope.get("state", {}).get("request_id")},
    )


async def metrics(request: Request) -> Response:
    """The process's metrics in Prometheus' text format (with `PRM_METRICS_TOKEN`, for its bearer only)."""
    token = request.app.state.settings.metrics_token
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def instrument_tracing(app: FastAPI, provider: TracerProvider) -> None:
    """Trace each request (span named by method and route template; probes and scrapes left out)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls=_UNTRACED, exclude_spans=["receive", "send"]
    )


def install_observability(app: FastAPI, settings: Settings) -> None:
    """Request metrics around everything the app answers, `/metrics` (unless turned off), and request
    traces when tracing is on (`core.tracing.configure_tracing`). Call after the app's other middleware:
    the metrics middleware is then the outermost, and counts the answers they give too."""
    app.add_middleware(HttpMetricsMiddleware)
    if settings.metrics_enabled:
        app.add_api_route(METRICS_PATH, metrics, methods=["GET"], include_in_schema=False)
    provider = active_tracer_provider()
    if provider is not None:
        instrument_tracing(app, provider)
