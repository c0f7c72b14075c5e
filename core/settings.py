"""One settings object for the API, the worker and the CLI, read from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "prm-development-secret-change-me-0123456789"  # noqa: S105 - refused outside development
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


# The control task queue is `<PRM_TEMPORAL_TASK_QUEUE>` with this suffix (`core.gateway.control_queue`).
CONTROL_QUEUE_SUFFIX = "-control"


class Settings(BaseSettings):
    """Every knob of the service. Conventional names (`DATABASE_URL`, ...) keep no prefix."""

    # hide_input_in_errors: a refused setting (a key, a secret) is never echoed back in the error.
    model_config = SettingsConfigDict(
        env_prefix="PRM_",
        extra="ignore",
        populate_by_name=True,
        hide_input_in_errors=True,
        # Each setting's docstring is its description: the docs' settings reference is generated from it
        # (`make docs`; tests/test_docs_site.py fails when they disagree).
        use_attribute_docstrings=True,
    )

    # `production` (the image's default) refuses the published development JWT secret, disabled auth and
    # clear Temporal payloads. `development` (`make run`) accepts that secret only on a loopback address.
    # `test` is the in-process test suite's: a served API (`create_app_from_env`) refuses it.
    env: Literal["development", "test", "production"] = "development"
    """`development`, `test` or `production` (the Docker image's default). Production refuses to start with
    the development JWT secret, `PRM_AUTH_ENABLED=false`, no `PRM_PAYLOAD_ENCRYPTION_KEYS` or no
    `PRM_AUDIT_HMAC_KEY`; development accepts tokens signed with the development secret only on connections
    to a loopback address (401 otherwise); `test` is the in-process test suite's, and a served API
    (`uvicorn --factory api.app:create_app_from_env`) refuses it."""
    log_level: str = "INFO"
    """Log level of the API, the worker and `prm run`."""
    # `text` for humans at a terminal, `json` (one object a line, with the request id) for a log pipeline.
    log_format: Literal["text", "json"] = "text"
    """`text` (for humans) or `json` (one object a line, for a log pipeline) for the API's and the worker's
    logs."""

    # Observability. The API serves /metrics on its own port (turned off with metrics_enabled=false); with a
    # metrics token set, a scrape must send it as a bearer token. The worker serves its metrics (its own and
    # the Temporal SDK's) on worker_metrics_port (0: none). Traces go over OTLP only when an endpoint is set.
    metrics_enabled: bool = True
    """`false` removes the API's `/metrics`."""
    metrics_token: str | None = None
    """When set, a scrape of the API's `/metrics` must send `Authorization: Bearer <it>` (401 otherwise)."""
    worker_metrics_host: str = "127.0.0.1"
    """Address the worker's metrics endpoint binds (`0.0.0.0` in a container)."""
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)
    """Port of the worker's metrics endpoint (its counters and the Temporal SDK's); `0` turns it off."""
    worker_max_cached_workflows: int = Field(default=250, ge=0, le=100_000)
    """Workflows the worker keeps in memory between their tasks (Temporal's sticky cache). One evicted is
    replayed from its history when its next task comes (a timer firing, a signal): fewer cached means less
    memory and more replay work. `0` turns the cache off."""
    worker_max_concurrent_activities: int | None = Field(default=None, ge=1, le=10_000)
    """Activities (and as many local activities) the worker runs at once, on its task queue and its control
    queue together (2 of them are the control queue's); unset: its database connections
    (`PRM_DB_POOL_SIZE` + `PRM_DB_MAX_OVERFLOW`). Nearly every activity holds a connection, so more at once
    than the pool has only wait for one (and time out, and retry): a campaign starting a hundred journeys at
    once did that. The process has as many threads for the providers' blocking HTTP calls (Twilio's and
    SendGrid's SDKs), so every send in flight has one."""
    otlp_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("PRM_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    """OTLP collector for traces, e.g. `http://otel-collector:4317`; unset means no tracing at all."""
    otlp_protocol: Literal["grpc", "http/protobuf"] = Field(
        default="grpc", validation_alias=AliasChoices("PRM_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    )
    """`grpc` or `http/protobuf` (then the endpoint is the collector's base URL, e.g. `:4318`)."""

    # Where `make run` keeps the embedded PostgreSQL and the Temporal dev server's state.
    data_dir: Path = Path(".prm")
    """Where the embedded PostgreSQL (`postgres/`), the Temporal dev server's state (`temporal.db`), logs, and
    (outside production) the generated payload keys (`payload-keys`), audit key (`audit-hmac-key`) and
    audit anchors (`audit-anchors.jsonl`) live."""

    database_url: str | None = Field(default=None, validation_alias=AliasChoices("DATABASE_URL"))
    """PostgreSQL URL (`postgresql://` or `postgresql+psycopg://`); unset means the embedded server under
    `PRM_DATA_DIR`. The API and the worker should connect as `prm_app`, migrations as the owner."""
    # The password `prm db app-role` (and `prm run`) gives the app's role `prm_app`; none for trust auth.
    app_db_password: str | None = None
    """The password `prm db app-role` and `prm run` give the role `prm_app`; unset gives none (trust or peer
    authentication, as the embedded server's)."""
    db_pool_size: int = Field(default=20, ge=1)
    """Database connections a process keeps open for reuse: opened as they are first needed, up to this
    many. Size it for the concurrency the process serves. Unless `PRM_WORKER_MAX_CONCURRENT_ACTIVITIES`
    says otherwise, the worker runs at most `db_pool_size + db_max_overflow` activities at once (and as many
    local activities): one more would wait for a connection."""
    db_max_overflow: int = Field(default=0, ge=0)
    """Connections allowed beyond the pool for a burst. Each is closed when it is returned, so a process
    often busier than its pool opens a new PostgreSQL connection for every such request or activity, which
    costs PostgreSQL and the process more than the work itself: raise `PRM_DB_POOL_SIZE` instead."""
    # How long a request waits for the database before it answers 503: to open a connection (libpq's
    # `connect_timeout`, whole seconds, 2 at least), and for a free connection from a busy pool.
    db_connect_timeout_seconds: int = Field(default=2, ge=2)
    """How long opening a database connection may take (libpq `connect_timeout`, whole seconds, at least 2)
    before the request answers 503."""
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long a request waits for a free pooled connection before it answers 503."""

    temporal_address: str | None = Field(default=None, validation_alias=AliasChoices("TEMPORAL_ADDRESS"))
    """Temporal frontend `host:port`; unset means the local dev server on `127.0.0.1:PRM_TEMPORAL_PORT`, which
    `prm run` starts."""
    temporal_namespace: str = "default"
    """Temporal namespace."""
    temporal_task_queue: str = Field(default="prm", min_length=1)
    """Task queue the worker polls and workflows are started on; the worker also polls
    `<this>-control`, where campaigns run (so this name may not itself end in `-control`)."""
    temporal_port: int = 7233
    """gRPC port of the dev server `prm run` starts."""
    temporal_ui_port: int = 8233
    """Port of that dev server's web UI."""
    # `kid:base64 AES-256 key[,kid:key...]`: the first encrypts Temporal payloads, all decrypt (rotation).
    payload_encryption_keys: str | None = None
    """`kid:base64key[,kid:key...]` (AES-256 master keys): Temporal payloads are encrypted under a key derived
    from the first for their tenant, decrypted with any (put a new key first to rotate). Required in
    production."""
    # Browser origins allowed to call the API (the Temporal UI's, for the codec endpoints); comma-separated.
    cors_origins: str = "http://127.0.0.1:8233,http://localhost:8233"
    """Browser origins (the Temporal UI's) allowed to call the codec endpoints `/codec/*`, comma-separated; no
    origin gets CORS on the rest of the API."""
    # The worker's relay: how often it delivers the workflow commands (starts, signals, cancels) that were
    # not delivered right after their commit (Temporal down, a process killed), and notices Temporal is back.
    command_relay_interval_seconds: float = Field(default=2.0, gt=0, le=60)
    """How often the worker delivers the workflow commands (starts, signals, cancels) not delivered right
    after their commit."""
    # The worker's trigger dispatcher: how often it looks for new domain events (and delayed journey starts
    # now due), and how many of each it takes in one round.
    trigger_dispatch_interval_seconds: float = Field(default=2.0, gt=0, le=60)
    """How often the worker's trigger dispatcher takes new domain events (and delayed journey starts now due)
    and starts the journeys they trigger."""
    trigger_dispatch_batch: int = Field(default=100, ge=1, le=1000)
    """How many events (and as many due starts) one dispatcher round takes at most; a full round goes again at
    once."""
    # Dispatched domain events are kept this long (the trigger dry run looks back at most 90 days).
    domain_events_retention_days: int = Field(default=90, ge=1, le=3650)
    """How long dispatched domain events are kept (the worker prunes older ones hourly; set-aside ones stay
    until retried); the journey starts they caused keep their own rows."""
    # The records of HL7 v2 messages (control id, digest, ACK) are kept this long, so a resend within it is
    # answered as the first was; the worker purges older ones hourly.
    hl7_max_message_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    """The largest HL7 v2 message `POST /hl7/v2` reads, in bytes; a larger one is refused with an AR (the
    request body is capped by `PRM_MAX_BODY_BYTES` first, a 413)."""
    hl7_max_segments: int = Field(default=1000, ge=10, le=100_000)
    """The most segments an HL7 v2 message may hold (an ADT with its OBX, NK1, AL1, DG1, PR1 stays far
    below); past it the message is refused with an AR before it is parsed."""
    hl7_max_repetitions: int = Field(default=100, ge=1, le=10_000)
    """The most repetitions one field of an HL7 v2 message may hold (identifiers, phones, names); past it the
    message is refused with an AE naming the field."""
    hl7_max_delimiters: int = Field(default=10_000, ge=100, le=1_000_000)
    """The most delimiters (fields, components, repetitions, subcomponents) an HL7 v2 message may hold:
    parsing builds an object for each (some 25 µs apiece), so this bounds a message's parsing time (10,000:
    a quarter of a second or so). A large real ADT holds a few thousand. Past it: AR."""
    hl7_max_escapes: int = Field(default=2_000, ge=10, le=100_000)
    """The most escape sequences (`\\X0D\\`, `\\T\\` ...) an HL7 v2 message may hold (each is unescaped when
    its field is read); past it: AR."""
    hl7_retention_days: int = Field(default=90, ge=1, le=3650)
    """How long the records of HL7 v2 messages (`hl7_messages`: control id, type, digest, ACK) are kept; the
    worker purges older ones at start and hourly, in batches of 1000. A resend within it gets the first
    answer; after it, the control id is new again."""
    # How often the API's appender and the worker's `audit-chain` job chain the audit records waiting in
    # `audit_pending` (the API's also those of the reads it queued; a write wakes the API's, which lingers
    # `core.audit.WAKE_LINGER_SECONDS` for the writes committing meanwhile).
    audit_flush_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    """How often the API, and the worker, chain the audit records waiting to join the trail (a write's
    record, committed with the write, wakes the API's appender, which chains it within 50 ms; reads' records
    are queued in the API process until then)."""
    # The HMAC key of the audit chain and its anchors (`core.audit_key`): a secret the database never holds,
    # at least 32 bytes, required in production; elsewhere an unset key is one generated in the data dir.
    audit_hmac_key: str | None = None
    """The HMAC-SHA256 key of the audit trail's chain and anchors, at least 32 bytes (`openssl rand -hex 32`);
    give it to the API, the worker and `prm audit verify`, never to the database. Required in production;
    elsewhere an unset key is a random one kept in `PRM_DATA_DIR/audit-hmac-key` (owner-only, made on first
    use)."""
    # Where the worker appends each tenant's signed chain head (`domain.audit.anchor`), every
    # `audit_anchor_interval_seconds`; default `<PRM_DATA_DIR>/audit-anchors.jsonl`. Ship it off the box.
    audit_anchor_file: Path | None = None
    """Where the worker appends each tenant's signed chain head and `prm audit verify` reads them back; unset
    means `PRM_DATA_DIR/audit-anchors.jsonl`. Ship it off the box."""
    audit_anchor_interval_seconds: float = Field(default=300.0, gt=0, le=24 * 3600)
    """How often the worker anchors the audit chain heads that moved."""
    # How long the API waits for Temporal (connecting, and retrying a call it cannot deliver) before it
    # answers 503. The worker keeps the SDK's own, longer retries.
    temporal_rpc_timeout_seconds: float = Field(default=3.0, gt=0)
    """How long an API request waits on an unreachable Temporal (connecting, and retrying a call it cannot
    deliver) before it answers 503 (an advance) or leaves its workflow commands to the relay (every other
    write, which answers as usual); also the bound on each of the relay's calls. The worker keeps the SDK's
    10 s of retries."""

    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL"))
    """Redis for the rate-limit counters, so every API replica enforces one limit; unset keeps them in each
    process."""
    # Moving-window limits (`limits` notation): per user, per tenant, per provider-webhook source address.
    rate_limits_enabled: bool = True
    """`false` turns the rate limits off."""
    # Bodies past this size are refused with 413 before any handler reads them.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    """Request bodies past this size are refused with 413."""
    rate_limit_per_user: str = "100/minute"
    """Requests one user may make (`limits` notation: `N/second`, `N/minute`, `N/hour`, ...)."""
    rate_limit_per_tenant: str = "1000/minute"
    """Requests all of a tenant's users may make together."""
    rate_limit_per_webhook_source: str = "600/minute"
    """Provider callbacks one source address may make."""
    # Each EHR integration client (its FHIR / HL7 calls), and `POST /oauth/token` per source address.
    rate_limit_per_integration_client: str = "600/minute"
    """FHIR (and HL7) calls one integration client may make."""
    rate_limit_per_token_source: str = "60/minute"  # noqa: S105 - a rate, not a secret
    """`POST /oauth/token` requests one source address may make."""

    api_host: str = "127.0.0.1"
    """Address the API binds (`prm run`, `prm api`)."""
    api_port: int = 8000
    """Port the API binds."""
    # Strict-Transport-Security max-age on every answer, for when TLS terminates in front of the API (a proxy
    # or load balancer serving https); 0 sends none (plain http on a local machine must not pin https).
    hsts_seconds: int = Field(default=0, ge=0, le=2 * 365 * 24 * 3600)
    """When TLS terminates in front of the API (a proxy or load balancer serving https), every answer carries
    `Strict-Transport-Security: max-age=<this>` (e.g. `31536000`); `0` sends none."""

    auth_enabled: bool = True
    """`false` makes every caller an admin (local experiments only: it answers only on a loopback connection,
    and production refuses it)."""
    # When auth is disabled, requests act as an admin of this tenant (or of the `X-Tenant-ID` header's).
    default_tenant_id: str | None = None
    """With auth disabled, the tenant requests act for when they send no `X-Tenant-ID` header."""
    jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384"] = "HS256"
    """`HS256/384/512` (shared secret) or `RS256/384/512`, `ES256/384` (public key)."""
    jwt_secret: str = DEV_JWT_SECRET
    """HMAC secret of the API's tokens, at least 32 bytes; must be set in production. The default is published
    in the code: development takes its tokens on loopback addresses only."""
    jwt_public_key: str | None = None
    """PEM public key for RS*/ES* tokens."""
    jwt_jwks_url: str | None = None
    """JWKS endpoint for RS*/ES* tokens (instead of a fixed key)."""
    jwt_issuer: str = "prm"
    """Required `iss` claim."""
    jwt_audience: str = "prm-api"
    """Required `aud` claim."""
    jwt_leeway_seconds: int = 30
    """Clock skew tolerated on `exp`."""
    # No token is accepted that lives longer than this (`exp` - `iat`, or `exp` - now without `iat`), whoever
    # signed it (`prm token`, `POST /oauth/token`, an identity provider): a leaked token is good for a day.
    jwt_max_lifetime_seconds: int = Field(default=24 * 3600, ge=60)
    """The longest lifetime of any token accepted (`exp` - `iat`, or `exp` - now without `iat`), whoever
    signed it; at least 60, and no shorter than `PRM_DEV_TOKEN_TTL_MINUTES` and
    `PRM_INTEGRATION_TOKEN_TTL_SECONDS`."""
    dev_token_ttl_minutes: int = Field(default=12 * 60, ge=1)
    """Lifetime of tokens from `prm token` and `prm run` (`prm token --ttl-minutes` longer than
    `PRM_JWT_MAX_LIFETIME_SECONDS` is refused)."""
    # Integration clients (EHRs) trade their client id and secret at `POST /oauth/token` for a short-lived
    # HS256 token of this audience, signed with `integration_token_secret` (default: PRM_JWT_SECRET when the
    # API verifies HS* tokens). Coordinator tokens (audience `jwt_audience`) never reach integration
    # endpoints, and integration tokens never reach the coordinator API.
    integration_token_secret: str | None = None
    """HMAC secret (at least 32 bytes) of the integration tokens `POST /oauth/token` issues; unset means
    `PRM_JWT_SECRET` when `PRM_JWT_ALGORITHM` is HS*. With RS*/ES* (or the development secret in
    production) and no value here, the token endpoint answers 503."""
    integration_token_audience: str = "prm-integrations"  # noqa: S105 - an audience, not a secret
    """`aud` of integration tokens; must differ from `PRM_JWT_AUDIENCE`, which is what keeps the two kinds of
    token apart."""
    integration_token_ttl_seconds: int = Field(default=300, ge=60, le=3600)
    """Lifetime of an integration token (60 to 3600)."""
    smart_jwks_cache_seconds: int = Field(default=300, ge=0, le=24 * 3600)
    """How long a JWK Set fetched from an integration client's `jwks_uri` (SMART Backend Services,
    private_key_jwt) is used before it is fetched again; an assertion signed with a key id the cached set
    lacks fetches it again at once (at most every 10 seconds)."""
    smart_jwks_fetch_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    """How long the token endpoint waits for an integration client's `jwks_uri` to answer (resolving its
    host, connecting and reading the whole JWK Set)."""
    smart_jwks_allow_private_addresses: bool = False
    """Let an integration client's `jwks_uri` point at a loopback, private, link-local or otherwise
    non-public address (and, on loopback, use plain http). Off, a `jwks_uri` must be https to a host whose
    every address is public, checked at registration and again at each fetch: a tenant admin cannot make this
    server fetch from its internal network. For development and tests only."""

    default_phone_region: str = "US"
    """Region for phone numbers written without a country code (normalised to E.164)."""
    default_timezone: str = "UTC"
    """Time zone of tenants created without `--timezone` (tenants, locations and patients carry their own)."""

    twilio_base_url: str | None = None
    """Another Twilio-compatible endpoint for the Twilio SDK (the tests point it at a local server)."""
    sendgrid_base_url: str | None = None
    """Another SendGrid-compatible endpoint for the SendGrid SDK."""
    # Messaging providers: without credentials every channel goes to the outbox (records, sends nothing).
    twilio_account_sid: str | None = None
    """Twilio account; with the auth token, SMS and WhatsApp go through Twilio (else the outbox, which records
    and sends nothing)."""
    twilio_auth_token: str | None = None
    """Twilio auth token; also verifies `X-Twilio-Signature` on Twilio's webhooks."""
    twilio_sms_from: str | None = None  # E.164 sender number for SMS
    """E.164 sender number for SMS."""
    twilio_whatsapp_from: str | None = None  # E.164 WhatsApp sender (without the `whatsapp:` prefix)
    """E.164 WhatsApp sender (without the `whatsapp:` prefix)."""
    sendgrid_api_key: str | None = None
    """SendGrid API key; email goes through SendGrid when set (else the outbox)."""
    sendgrid_from_email: str | None = None
    """Sender address of emails."""
    sendgrid_from_name: str | None = None
    """Sender name of emails."""
    # The base64 ECDSA public key of SendGrid's signed event webhook (Mail Settings > Event Webhook).
    sendgrid_webhook_public_key: str | None = None
    """SendGrid's event-webhook verification key (ECDSA, base64; Mail Settings > Event Webhook); unsigned
    events are refused."""
    sendgrid_webhook_max_age_seconds: int = 300
    """Oldest signed SendGrid event timestamp accepted."""
    # The URL the providers call us on (scheme://host[:port]); webhook signatures are checked against it.
    public_base_url: str | None = None
    """The scheme, host and port providers call (outside any proxy): status-callback URLs and Twilio signature
    checks use it."""
    provider_timeout_seconds: float = 10.0
    """Timeout of one call to Twilio or SendGrid."""
    # A send whose provider call was left unfinished (its worker died before recording the answer) is not
    # sent again until the provider's status callback says what became of it, or until this long after the
    # attempt began passes without a word: then the provider is taken never to have received it. Longer
    # than the provider timeout (an attempt still waiting on the provider must not be raced).
    send_resolve_seconds: float = Field(default=300.0, ge=0)
    """How long a send left unfinished by a crash waits for the provider's status callback before it is taken
    as never received and sent again (longer than the provider timeout)."""
    sms_messages_per_second: float | None = Field(default=None, ge=0)
    """Messages per second the SMS sender (`twilio_sms_from`, shared by every tenant) is handed. Unset: the
    default for its kind (a US/Canadian long code 1, toll-free 3, short code 100, any other number or an
    alphanumeric sender 10); unpaced for the outbox; 0: unpaced. Campaign messages wait for their turn;
    interactive ones (reminders, replies, the booking chat) go at once and push the campaigns back."""
    whatsapp_messages_per_second: float | None = Field(default=None, ge=0)
    """Messages per second the WhatsApp sender is handed (unset: 80; unpaced for the outbox; 0: unpaced)."""
    email_messages_per_second: float | None = Field(default=None, ge=0)
    """Messages per second the email sender is handed (unset: 100; unpaced for the outbox; 0: unpaced)."""
    sender_burst_seconds: float = Field(default=1.0, ge=0, le=60)
    """How far an idle sender catches up: at most this many seconds of its throughput go back to back."""

    @field_validator(
        "rate_limit_per_user",
        "rate_limit_per_tenant",
        "rate_limit_per_webhook_source",
        "rate_limit_per_integration_client",
        "rate_limit_per_token_source",
    )
    @classmethod
    def _a_rate_limit(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a rate limit such as '100/minute'") from exc
        return value

    @field_validator("temporal_task_queue")
    @classmethod
    def _not_a_control_queue(cls, value: str) -> str:
        if value.endswith(CONTROL_QUEUE_SUFFIX):
            raise ValueError(
                f"must not end in {CONTROL_QUEUE_SUFFIX!r}: the worker polls that queue beside it"
            )
        return value

    @field_validator("payload_encryption_keys")
    @classmethod
    def _payload_keys(cls, value: str | None) -> str | None:
        if value:
            from core.codec import parse_keys

            parse_keys(value)  # ValueError names what is wrong, never the key itself
        return value or None

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env == "production":
            if self.uses_development_secret:
                raise ValueError(
                    "PRM_JWT_SECRET is the development secret published in the code: set it to a real "
                    "secret when PRM_ENV=production, e.g. $(openssl rand -hex 32)"
                )
            if not self.auth_enabled:
                raise ValueError("PRM_AUTH_ENABLED=false is refused when PRM_ENV=production")
            if not self.payload_encryption_keys:
                raise ValueError(
                    "PRM_PAYLOAD_ENCRYPTION_KEYS must be set when PRM_ENV=production (Temporal would store "
                    "payloads in clear); e.g. k1:$(openssl rand -base64 32)"
                )
            if not self.audit_hmac_key:
                raise ValueError(
                    "PRM_AUDIT_HMAC_KEY must be set when PRM_ENV=production (the audit chain is keyed with a "
                    "secret the database never holds); e.g. $(openssl rand -hex 32)"
                )
        if self.jwt_algorithm.startswith(("RS", "ES")) and not (self.jwt_public_key or self.jwt_jwks_url):
            raise ValueError(f"{self.jwt_algorithm} needs PRM_JWT_PUBLIC_KEY or PRM_JWT_JWKS_URL")
        if self.jwt_secret == DEV_JWT_SECRET and self.api_host not in LOOPBACK_HOSTS:
            raise ValueError(
                f"the published development PRM_JWT_SECRET is refused on a non-loopback address "
                f"({self.api_host}): anyone could mint tokens; set PRM_JWT_SECRET to a real secret"
            )
        if self.jwt_algorithm.startswith("HS") and len(self.jwt_secret.encode()) < 32:
            raise ValueError("PRM_JWT_SECRET must be at least 32 bytes for HMAC signing")
        if self.audit_hmac_key is not None and len(self.audit_hmac_key.encode()) < 32:
            raise ValueError("PRM_AUDIT_HMAC_KEY must be at least 32 bytes")
        if self.integration_token_secret is not None and len(self.integration_token_secret.encode()) < 32:
            raise ValueError("PRM_INTEGRATION_TOKEN_SECRET must be at least 32 bytes for HMAC signing")
        if self.dev_token_ttl_minutes * 60 > self.jwt_max_lifetime_seconds:
            raise ValueError("PRM_DEV_TOKEN_TTL_MINUTES must not exceed PRM_JWT_MAX_LIFETIME_SECONDS")
        if self.integration_token_ttl_seconds > self.jwt_max_lifetime_seconds:
            raise ValueError("PRM_INTEGRATION_TOKEN_TTL_SECONDS must not exceed PRM_JWT_MAX_LIFETIME_SECONDS")
        if self.integration_token_audience == self.jwt_audience:
            raise ValueError("PRM_INTEGRATION_TOKEN_AUDIENCE must differ from PRM_JWT_AUDIENCE")
        return self

    @property
    def worker_activities_at_once(self) -> int:
        """The activities a worker runs at once: `worker_max_concurrent_activities`, else its connections."""
        return self.worker_max_concurrent_activities or self.db_pool_size + self.db_max_overflow

    @property
    def uses_development_secret(self) -> bool:
        """Whether tokens are checked with DEV_JWT_SECRET, which anyone can read in the code: accepted in
        development (and only on a loopback address, `api.deps`) and in the in-process test suite."""
        return self.jwt_algorithm.startswith("HS") and self.jwt_secret == DEV_JWT_SECRET

    @property
    def integration_signing_secret(self) -> str | None:
        """The HMAC secret integration tokens are signed and checked with, or None when none is configured
        (an asymmetric PRM_JWT_ALGORITHM without PRM_INTEGRATION_TOKEN_SECRET, or the published development
        secret in production): then `POST /oauth/token` answers 503."""
        if self.integration_token_secret:
            return self.integration_token_secret
        if not self.jwt_algorithm.startswith("HS"):
            return None
        if self.env == "production" and self.uses_development_secret:
            return None
        return self.jwt_secret

    @property
    def audit_anchor_path(self) -> Path:
        """The file the audit anchors are appended to (PRM_AUDIT_ANCHOR_FILE, or one in the data dir)."""
        path = self.audit_anchor_file or self.data_dir / "audit-anchors.jsonl"
        return path.expanduser().resolve()

    @property
    def embedded_pgdata(self) -> Path:
        """The embedded PostgreSQL's data directory (used only when DATABASE_URL is unset)."""
        return (self.data_dir / "postgres").resolve()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
