"""The service's business counters, and the worker's metrics endpoint.

Each counter is moved by the one function that records its fact, through the small functions below
(`message_sent`, `journey_finished`, ...), after the fact is committed; the domain's logic never sees a
metric. Every label is bounded: channels, providers, statuses and reasons from fixed sets (anything else
counts as `other`), never an id, a name or a number: a label value is a new time series, and Prometheus
is read by operators who may not see patient data.

The API serves these counters on its `/metrics` (`api.observability`); the worker, where most of them
move, serves its own (`serve_worker_metrics`) together with the Temporal SDK's worker metrics, which the
SDK's runtime exposes on a loopback port of its own and which are read from there at each scrape, so one
scrape of one port sees both.
"""

from __future__ import annotations

import logging
import socket
import urllib.request
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
disable_created_metrics()  # no `*_created` series beside every counter: noise to a dashboard

OTHER = "other"
CHANNELS = frozenset({"whatsapp", "sms", "email"})
PROVIDERS = frozenset({"twilio", "sendgrid", "outbox", "none"})
FAILURE_REASONS = frozenset({"rejected", "opted_out", "window_closed", "policy", "gave_up"})
JOURNEY_OUTCOMES = frozenset({"completed", "failed", "cancelled"})
BOOKING_SOURCES = frozenset({"whatsapp", "sms", "email", "waitlist", "web", "phone", "app", "api"})
SLA_TARGETS = frozenset({"response", "resolution"})


def bounded(value: str | None, allowed: frozenset[str], *, missing: str = "none") -> str:
    """`value` when it is one of `allowed`, `missing` when absent, else `other`: labels stay bounded."""
    if value is None or value == "":
        return missing
    value = value.lower()
    return value if value in allowed else OTHER


JOURNEYS_STARTED = Counter(
    "prm_journeys_started", "Journey instances placed (their workflow's start recorded)."
)
JOURNEYS_FINISHED = Counter(
    "prm_journeys_finished",
    "Journey instances that ended, by outcome (completed, failed, cancelled).",
    ["outcome"],
)
MESSAGES_SENT = Counter(
    "prm_messages_sent",
    "Outbound messages handed to their provider, by channel and provider.",
    ["channel", "provider"],
)
MESSAGES_FAILED = Counter(
    "prm_messages_failed",
    "Outbound messages that failed, by channel, provider (none: never handed to one) and reason "
    "(rejected by the provider, opted_out, window_closed: outside WhatsApp's 24 h window, policy, gave_up: "
    "retries exhausted).",
    ["channel", "provider", "reason"],
)
APPOINTMENTS_BOOKED = Counter(
    "prm_appointments_booked", "Appointments booked, by the source channel the booking names.", ["source"]
)
SLA_BREACHES = Counter(
    "prm_ticket_sla_breaches", "Ticket SLA targets missed (and escalated), by target.", ["target"]
)
EVENTS_SET_ASIDE = Counter(
    "prm_domain_events_set_aside",
    "Domain events the trigger dispatcher set aside after failing to dispatch them 5 times "
    "(an operator retries one with `prm events retry ID`).",
)


COMMANDS_PENDING = Gauge(
    "prm_workflow_commands_pending",
    "Workflow commands (starts, signals, cancels) recorded and not yet delivered to Temporal, as the relay "
    "last counted them.",
)
COMMAND_OLDEST_PENDING = Gauge(
    "prm_workflow_command_oldest_pending_seconds",
    "Age of the oldest due workflow command not yet delivered (0: none); above a few seconds, Temporal is "
    "unreachable or a command is stuck (`prm commands pending`).",
)


def workflow_commands_pending(count: int, oldest_seconds: float) -> None:
    """What the relay found waiting after its round."""
    COMMANDS_PENDING.set(count)
    COMMAND_OLDEST_PENDING.set(oldest_seconds)


def journey_started() -> None:
    """A journey instance was placed (its workflow's start is recorded with it)."""
    JOURNEYS_STARTED.inc()


def journey_finished(outcome: str) -> None:
    """A journey instance completed, failed or was cancelled."""
    JOURNEYS_FINISHED.labels(outcome=bounded(outcome, JOURNEY_OUTCOMES)).inc()


def message_sent(channel: str, provider: str | None) -> None:
    """A message was handed to its provider (or recorded by the outbox)."""
    MESSAGES_SENT.labels(channel=bounded(channel, CHANNELS), provider=bounded(provider, PROVIDERS)).inc()


def message_failed(channel: str, provider: str | None, reason: str) -> None:
    """A message failed for good."""
    MESSAGES_FAILED.labels(
        channel=bounded(channel, CHANNELS),
        provider=bounded(provider, PROVIDERS),
        reason=bounded(reason, FAILURE_REASONS),
    ).inc()


def appointment_booked(source: str | None) -> None:
    """An appointment was booked (its transaction committed)."""
    APPOINTMENTS_BOOKED.labels(source=bounded(source, BOOKING_SOURCES, missing="api")).inc()


def sla_breached(target: str) -> None:
    """A ticket missed its response or resolution target and was escalated."""
    SLA_BREACHES.labels(target=bounded(target, SLA_TARGETS)).inc()


def event_set_aside() -> None:
    """The trigger dispatcher gave up on a domain event (its set-aside is committed)."""
    EVENTS_SET_ASIDE.inc()


def later(count: Callable[..., None], *labels: Any) -> Callable[[], Awaitable[None]]:
    """`count(*labels)` as an after-commit job (`core.database.after_commit`): counted once committed."""

    async def job() -> None:
        count(*labels)

    return job


# ---- the worker's endpoint ---------------------------------------------------------------------------


def free_loopback_port() -> int:
    """A TCP port nothing listens on right now, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ForwardedMetrics(Collector):
    """The metrics another exporter serves on `url` (the Temporal SDK's runtime), read at each scrape.

    An unreachable exporter contributes nothing rather than failing the scrape of ours."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self.url = url
        self.timeout = timeout

    def collect(self) -> Iterable[Metric]:
        """The other exporter's metric families, as they are now."""
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout) as answer:  # noqa: S310 - our loopback URL
                text = answer.read().decode("utf-8")
        except OSError as exc:
            log.warning("could not read the Temporal SDK's metrics at %s: %s", self.url, exc)
            return iter(())
        return text_string_to_metric_families(text)


@dataclass
class MetricsServer:
    """A running metrics endpoint; `close` stops it."""

    server: WSGIServer
    thread: Thread
    port: int

    def close(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_worker_metrics(
    host: str, port: int, *, forward_from: str | None = None, registry: CollectorRegistry = REGISTRY
) -> MetricsServer:
    """Serve `registry` (the process's counters) on `host:port` in a background thread, with the metrics
    `forward_from` serves (the Temporal SDK's) added to each scrape. Port 0 picks a free one."""
    if forward_from is not None:
        combined = CollectorRegistry(auto_describe=False)
        combined.register(_Registry(registry))
        combined.register(ForwardedMetrics(forward_from))
        registry = combined
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server=server, thread=thread, port=int(server.server_address[1]))


class _Registry(Collector):
    """A registry seen as one collector, so another registry can serve it beside other collectors."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        """Everything `registry` holds."""
        return self.registry.collect()

    def describe(self) -> list[Any]:
        """Nothing up front: described at collection time."""
        return []
