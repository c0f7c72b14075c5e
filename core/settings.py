"""One settings object for the API, the worker and the CLI, read from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "prm-development-secret-change-me-0123456789"  # noqa: S105 - refused outside development
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class Settings(BaseSettings):
    """Every knob of the service. Conventional names (`DATABASE_URL`, ...) keep no prefix."""

    # hide_input_in_errors: a refused setting (a key, a secret) is never echoed back in the error.
    model_config = SettingsConfigDict(
        env_prefix="PRM_", extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    # `production` (the image's default) refuses the published development JWT secret, disabled auth and
    # clear Temporal payloads. `development` (`make run`) accepts that secret only on a loopback address.
    # `test` is the in-process test suite's: a served API (`create_app_from_env`) refuses it.
    env: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    # `text` for humans at a terminal, `json` (one object a line, with the request id) for a log pipeline.
    log_format: Literal["text", "json"] = "text"

    # Observability. The API serves /metrics on its own port (turned off with metrics_enabled=false); with a
    # metrics token set, a scrape must send it as a bearer token. The worker serves its metrics (its own and
    # the Temporal SDK's) on worker_metrics_port (0: none). Traces go over OTLP only when an endpoint is set.
    metrics_enabled: bool = True
    metrics_token: str | None = None
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)
    otlp_endpoint: str | None = Field(
        default=None, validation_alias=AliasChoices("PRM_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    otlp_protocol: Literal["grpc", "http/protobuf"] = Field(
        default="grpc", validation_alias=AliasChoices("PRM_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    )

    # Where `make run` keeps the embedded PostgreSQL and the Temporal dev server's state.
    data_dir: Path = Path(".prm")

    database_url: str | None = Field(default=None, validation_alias=AliasChoices("DATABASE_URL"))
    # The password `prm db app-role` (and `prm run`) gives the app's role `prm_app`; none for trust auth.
    app_db_password: str | None = None
    db_pool_size: int = 10
    db_max_overflow: int = 10
    # How long a request waits for the database before it answers 503: to open a connection (libpq's
    # `connect_timeout`, whole seconds, 2 at least), and for a free connection from a busy pool.
    db_connect_timeout_seconds: int = Field(default=2, ge=2)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)

    temporal_address: str | None = Field(default=None, validation_alias=AliasChoices("TEMPORAL_ADDRESS"))
    temporal_namespace: str = "default"
    temporal_task_queue: str = "prm"
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    # `kid:base64 AES-256 key[,kid:key...]`: the first encrypts Temporal payloads, all decrypt (rotation).
    payload_encryption_keys: str | None = None
    # Browser origins allowed to call the API (the Temporal UI's, for the codec endpoints); comma-separated.
    cors_origins: str = "http://127.0.0.1:8233,http://localhost:8233"
    # The worker's relay: how often it delivers the workflow commands (starts, signals, cancels) that were
    # not delivered right after their commit (Temporal down, a process killed), and notices Temporal is back.
    command_relay_interval_seconds: float = Field(default=2.0, gt=0, le=60)
    # The worker's trigger dispatcher: how often it looks for new domain events (and delayed journey starts
    # now due), and how many of each it takes in one round.
    trigger_dispatch_interval_seconds: float = Field(default=2.0, gt=0, le=60)
    trigger_dispatch_batch: int = Field(default=100, ge=1, le=1000)
    # Dispatched domain events are kept this long (the trigger dry run looks back at most 90 days).
    domain_events_retention_days: int = Field(default=90, ge=1, le=3650)
    # The records of HL7 v2 messages (control id, digest, ACK) are kept this long, so a resend within it is
    # answered as the first was; the worker purges older ones hourly.
    hl7_retention_days: int = Field(default=90, ge=1, le=3650)
    # How often the API appends the audit records of reads it has queued (writes' go with the write).
    audit_flush_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    # The HMAC key of the audit chain and its anchors (`core.audit_key`): a secret the database never holds,
    # at least 32 bytes, required in production; elsewhere an unset key is one generated in the data dir.
    audit_hmac_key: str | None = None
    # Where the worker appends each tenant's signed chain head (`domain.audit.anchor`), every
    # `audit_anchor_interval_seconds`; default `<PRM_DATA_DIR>/audit-anchors.jsonl`. Ship it off the box.
    audit_anchor_file: Path | None = None
    audit_anchor_interval_seconds: float = Field(default=300.0, gt=0, le=24 * 3600)
    # How long the API waits for Temporal (connecting, and retrying a call it cannot deliver) before it
    # answers 503. The worker keeps the SDK's own, longer retries.
    temporal_rpc_timeout_seconds: float = Field(default=3.0, gt=0)

    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL"))
    # Moving-window limits (`limits` notation): per user, per tenant, per provider-webhook source address.
    rate_limits_enabled: bool = True
    # Bodies past this size are refused with 413 before any handler reads them.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    rate_limit_per_user: str = "100/minute"
    rate_limit_per_tenant: str = "1000/minute"
    rate_limit_per_webhook_source: str = "600/minute"
    # Each EHR integration client (its FHIR / HL7 calls), and `POST /oauth/token` per source address.
    rate_limit_per_integration_client: str = "600/minute"
    rate_limit_per_token_source: str = "60/minute"  # noqa: S105 - a rate, not a secret

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Strict-Transport-Security max-age on every answer, for when TLS terminates in front of the API (a proxy
    # or load balancer serving https); 0 sends none (plain http on a local machine must not pin https).
    hsts_seconds: int = Field(default=0, ge=0, le=2 * 365 * 24 * 3600)

    auth_enabled: bool = True
    # When auth is disabled, requests act as an admin of this tenant (or of the `X-Tenant-ID` header's).
    default_tenant_id: str | None = None
    jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384"] = "HS256"
    jwt_secret: str = DEV_JWT_SECRET
    jwt_public_key: str | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str = "prm"
    jwt_audience: str = "prm-api"
    jwt_leeway_seconds: int = 30
    # No token is accepted that lives longer than this (`exp` - `iat`, or `exp` - now without `iat`), whoever
    # signed it (`prm token`, `POST /oauth/token`, an identity provider): a leaked token is good for a day.
    jwt_max_lifetime_seconds: int = Field(default=24 * 3600, ge=60)
    dev_token_ttl_minutes: int = Field(default=12 * 60, ge=1)
    # Integration clients (EHRs) trade their client id and secret at `POST /oauth/token` for a short-lived
    # HS256 token of this audience, signed with `integration_token_secret` (default: PRM_JWT_SECRET when the
    # API verifies HS* tokens). Coordinator tokens (audience `jwt_audience`) never reach integration
    # endpoints, and integration tokens never reach the coordinator API.
    integration_token_secret: str | None = None
    integration_token_audience: str = "prm-integrations"  # noqa: S105 - an audience, not a secret
    integration_token_ttl_seconds: int = Field(default=300, ge=60, le=3600)
    smart_jwks_cache_seconds: int = Field(
        default=300,
        ge=0,
        le=24 * 3600,
        description="How long a JWK Set fetched from an integration client's `jwks_uri` (SMART Backend "
        "Services, private_key_jwt) is used before it is fetched again; an assertion signed with a key id "
        "the cached set lacks fetches it again at once (at most every 10 seconds).",
    )
    smart_jwks_fetch_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=30,
        description="How long the token endpoint waits for an integration client's `jwks_uri` to answer.",
    )

    default_phone_region: str = "US"
    default_timezone: str = "UTC"

    twilio_base_url: str | None = None
    sendgrid_base_url: str | None = None
    # Messaging providers: without credentials every channel goes to the outbox (records, sends nothing).
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_sms_from: str | None = None  # E.164 sender number for SMS
    twilio_whatsapp_from: str | None = None  # E.164 WhatsApp sender (without the `whatsapp:` prefix)
    sendgrid_api_key: str | None = None
    sendgrid_from_email: str | None = None
    sendgrid_from_name: str | None = None
    # The base64 ECDSA public key of SendGrid's signed event webhook (Mail Settings > Event Webhook).
    sendgrid_webhook_public_key: str | None = None
    sendgrid_webhook_max_age_seconds: int = 300
    # The URL the providers call us on (scheme://host[:port]); webhook signatures are checked against it.
    public_base_url: str | None = None
    provider_timeout_seconds: float = 10.0
    # A send whose provider call was left unfinished (its worker died before recording the answer) is not
    # sent again until the provider's status callback says what became of it, or until this long after the
    # attempt began passes without a word: then the provider is taken never to have received it. Longer
    # than the provider timeout (an attempt still waiting on the provider must not be raced).
    send_resolve_seconds: float = Field(default=300.0, ge=0)

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
