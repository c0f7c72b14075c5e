"""The application factory: `uvicorn --factory api.app:create_app_from_env` (what `prm api` runs)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from api.audit import AuditMiddleware
from api.content_rules import state_content_rules
from api.deprecation import DeprecatedPrefixMiddleware
from api.docs import serve_docs_offline
from api.errors import install_error_handlers, release_answered_exceptions
from api.input_guard import InputGuardMiddleware
from api.middleware import RequestIdMiddleware
from api.observability import install_observability
from api.openapi import TAGS, legacy_operation_id, operation_id
from api.ratelimit import RateLimits
from api.routers import (
    analytics,
    appointments,
    audit,
    campaigns,
    codec,
    cohorts,
    communications,
    fhir,
    fhir_hook,
    fhir_operations,
    fhir_writes,
    health,
    hl7,
    integration_clients,
    journey_instances,
    journey_triggers,
    journeys,
    locations,
    oauth,
    patients,
    practitioners,
    tenant,
    tickets,
    time_slots,
    voice_webhooks,
    waitlist,
    webhooks,
)
from api.security_headers import CORSOnlyUnder, SecurityHeadersMiddleware
from core.audit import AuditBuffer
from core.auth import TokenVerifier
from core.codec import EncryptionCodec
from core.database import make_engine, make_read_sessionmaker, make_sessionmaker, resolve_database_url
from core.embedded_db import to_libpq_url
from core.logging import configure_logging
from core.phones import set_default_region
from core.process import tune_collector
from core.reads import make_read_pool
from core.settings import Settings, get_settings
from core.tracing import configure_tracing
from domain.analytics.realtime import MetricsListener
from domain.communications.providers import log_provider_configuration
from domain.integrations.keys import JwksCache, JwksUriGuard
from domain.tenants.active import ActiveTenants

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1/prm"
# `/instances` served journey instances before `/journeys/instances` did; it answers on for older clients.
LEGACY_INSTANCES = f"{API_PREFIX}/instances"
JOURNEY_INSTANCES = f"{API_PREFIX}/journeys/instances"
LEGACY_INSTANCES_DEPRECATED = datetime(2026, 12, 1, tzinfo=UTC)


def create_app(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    tune_collector_after_startup: bool = False,
) -> FastAPI:
    """Build the API; the engine is created at start-up and disposed at shutdown.
    `tune_collector_after_startup` (the serving process only, `create_app_from_env`):
    `core.process.tune_collector` once started."""
    settings = settings or get_settings()
    set_default_region(settings.default_phone_region)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = database_url or resolve_database_url(settings)
        app.state.engine = make_engine(url, settings)
        app.state.sessionmaker = make_sessionmaker(app.state.engine)
        app.state.read_sessionmaker = make_read_sessionmaker(app.state.engine)  # GET, HEAD, OPTIONS
        app.state.read_pool = make_read_pool(url, settings)  # the hottest reads, without SQLAlchemy
        await app.state.read_pool.open(wait=False)
        # One LISTEN connection per process for every real-time stream (connects on the first stream).
        app.state.metrics_listener = MetricsListener.for_database(url, app.state.sessionmaker)
        # The active tenants, cached per process and forgotten on PostgreSQL's change notices.
        app.state.active_tenants = ActiveTenants(to_libpq_url(url))
        app.state.active_tenants.start()
        app.state.temporal_client = None
        # Reads' audit records, appended in batches (a write's go with the write).
        app.state.audit_buffer = AuditBuffer(
            app.state.sessionmaker, interval=settings.audit_flush_interval_seconds
        )
        app.state.audit_buffer.start()
        if tune_collector_after_startup:
            tune_collector()
        if not settings.auth_enabled:
            log.warning("=" * 72)
            log.warning("AUTHENTICATION IS DISABLED (PRM_AUTH_ENABLED=false): every caller is an admin.")
            log.warning("Use this only for local experiments, never with real patient data.")
            log.warning("=" * 72)
        try:
            yield
        finally:
            await app.state.audit_buffer.close()  # nothing queued is lost on a graceful shutdown
            await app.state.metrics_listener.close()
            await app.state.active_tenants.close()
            await app.state.read_pool.close()
            await app.state.engine.dispose()

    app = FastAPI(
        title="PRM Service API",
        version="0.2.0",
        description="Patient Relationship Management for clinics: patients, practitioners, appointments, "
        "journeys, communications, tickets and analytics. Authenticate with a JWT bearer token.",
        lifespan=lifespan,
        openapi_tags=TAGS,
        generate_unique_id_function=operation_id,
    )
    state_content_rules(app)  # the validators' rules beyond JSON Schema, as `x-rules`
    serve_docs_offline(app)  # /docs and /redoc from assets the app ships: they work without internet
    app.state.settings = settings
    app.state.token_verifier = TokenVerifier(settings)
    app.state.rate_limits = RateLimits(settings) if settings.rate_limits_enabled else None
    app.state.jwks_cache = JwksCache(
        settings.smart_jwks_cache_seconds,
        settings.smart_jwks_fetch_timeout_seconds,
        JwksUriGuard(allow_private=settings.smart_jwks_allow_private_addresses),
    )
    keys = settings.payload_encryption_keys
    app.state.payload_codec = EncryptionCodec.from_setting(keys) if keys else None
    install_error_handlers(app)
    app.add_exception_handler(hl7.MessageRefused, hl7.render_refusal)
    app.state.error_renderers = {fhir.FHIR_BASE: fhir.render_error}
    app.add_middleware(
        DeprecatedPrefixMiddleware,
        prefix=LEGACY_INSTANCES,
        successor=JOURNEY_INSTANCES,
        since=LEGACY_INSTANCES_DEPRECATED,
    )
    app.add_middleware(AuditMiddleware)  # innermost: it sees the route, the caller and the answer
    app.add_middleware(InputGuardMiddleware, max_body_bytes=settings.max_body_bytes, router=app.router)
    app.add_middleware(
        CORSOnlyUnder,  # the Temporal UI calls the codec endpoints, and nothing else of ours
        prefix=codec.router.prefix,
        origins=[o.strip() for o in settings.cors_origins.split(",") if o.strip()],
        methods=["POST"],
        headers=["Authorization", "Content-Type", "X-Namespace", "X-Request-ID"],
    )
    app.add_middleware(RequestIdMiddleware)  # it also answers unexpected exceptions
    app.add_middleware(SecurityHeadersMiddleware, hsts_seconds=settings.hsts_seconds)  # on that answer too
    install_observability(app, settings)  # /metrics; request metrics (outermost) and traces
    log_provider_configuration(settings)
    # FastAPI (0.137 on) tries the included routers in this order and, within each, every route in order,
    # until one matches; a router whose prefix cannot match is still scanned route by route
    # (fastapi/fastapi#16159 proposes skipping it). A request for a late route paid for every earlier one:
    # a `GET /tickets/{id}` made 2.7 times the Python calls of a `GET /patients/{id}` before the reads
    # came first. So the routers are included most-requested first (a router's most frequent request is
    # declared first in it); order never changes what matches (`api.paths`' record ids, distinct prefixes).
    app.include_router(patients.router, prefix=API_PREFIX)
    app.include_router(appointments.router, prefix=API_PREFIX)
    app.include_router(communications.router, prefix=API_PREFIX)
    app.include_router(webhooks.router, prefix=API_PREFIX)  # each message's delivery reports
    # Instances before the journeys: `/journeys/instances/...` must not be read as `/journeys/{journey_id}`.
    app.include_router(journey_instances.router, prefix=JOURNEY_INSTANCES)
    app.include_router(tickets.router, prefix=API_PREFIX)
    app.include_router(practitioners.router, prefix=API_PREFIX)
    app.include_router(locations.router, prefix=API_PREFIX)
    app.include_router(time_slots.router, prefix=API_PREFIX)
    app.include_router(waitlist.router, prefix=API_PREFIX)
    app.include_router(journeys.router, prefix=API_PREFIX)
    app.include_router(journey_triggers.router, prefix=API_PREFIX)
    app.include_router(cohorts.router, prefix=API_PREFIX)
    app.include_router(campaigns.router, prefix=API_PREFIX)
    app.include_router(analytics.router, prefix=API_PREFIX)
    app.include_router(audit.router, prefix=API_PREFIX)
    app.include_router(integration_clients.router, prefix=API_PREFIX)
    app.include_router(tenant.router, prefix=API_PREFIX)
    app.include_router(voice_webhooks.router, prefix=API_PREFIX)
    app.include_router(codec.router)
    app.include_router(oauth.router)
    app.include_router(fhir_hook.router)  # before fhir's /{resource_type} routes
    app.include_router(fhir_operations.router)  # before fhir's /{resource_type}/... routes
    app.include_router(fhir.router)
    app.include_router(fhir_writes.router)
    app.include_router(hl7.router)
    # The legacy alias keeps serving older clients, deprecated in the schema and in each answer's headers.
    app.include_router(
        journey_instances.router,
        prefix=LEGACY_INSTANCES,
        deprecated=True,
        generate_unique_id_function=legacy_operation_id,
    )
    app.include_router(health.router)  # probes: a few a minute
    release_answered_exceptions(app)  # the handlers are all registered
    return app


def create_app_from_env() -> FastAPI:
    """Entry point for uvicorn: logging and tracing configured from the environment. A served API runs in
    development or production; `PRM_ENV=test` (the published secret on any address) is refused here."""
    settings = get_settings()
    if settings.env == "test":
        raise RuntimeError(
            "PRM_ENV=test is for the in-process test suite only: serve the API with PRM_ENV=production "
            "(and a real PRM_JWT_SECRET) or PRM_ENV=development (on a loopback address)"
        )
    configure_logging(settings.log_level, settings.log_format)
    configure_tracing(settings, "prm-api")
    return create_app(settings, tune_collector_after_startup=True)
