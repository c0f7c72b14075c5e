"""Request dependencies: the transaction, the caller, and what the caller may do."""

from __future__ import annotations

import ipaddress
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from api.audit import record_write, watch_writes
from api.ratelimit import RateLimits, enforce
from core.audit import bind_appender
from core.auth import Permission, Principal, Role
from core.database import bind_tenant, run_after_commit_jobs
from core.errors import Forbidden, Unauthorized
from core.gateway import WorkflowGateway, bind_gateway
from core.reads import TenantReads
from core.settings import Settings
from core.temporal import gateway_for_state
from domain.tenants.active import ActiveTenants
from domain.tenants.service import get_active_tenant

log = logging.getLogger(__name__)

bearer = HTTPBearer(auto_error=False, description="JWT bearer token (`prm token` prints one)")


def get_settings_dep(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def open_transaction(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed after the handler returns and before the response is sent.
    A request that only reads (GET, HEAD, OPTIONS) runs its statements without BEGIN/COMMIT round trips
    (`core.database.make_read_sessionmaker`)."""
    state = request.app.state
    reads = request.method in READ_METHODS and getattr(state, "read_sessionmaker", None) is not None
    async with (state.read_sessionmaker if reads else state.sessionmaker)() as session:
        bind_gateway(session, workflow_gateway(request))  # connects only when a command is to be delivered
        if (appender := getattr(state, "audit_buffer", None)) is not None:
            bind_appender(session, appender)  # the write's audit record joins the chain right after commit
        watch_writes(session, request.scope)
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await record_write(session)  # a write's audit record commits with it
        await session.commit()
        try:
            await run_after_commit_jobs(session)
        except Exception:  # the data is committed (and its workflow commands with it, for the relay)
            log.exception("a job queued for after the commit failed")


RawSessionDep = Annotated[AsyncSession, Depends(open_transaction, scope="function")]


async def authenticate(
    request: Request,
    response: Response,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """Authenticate the caller and count the request against their rate limits (no session needed: a
    read served by `TenantReadsDep` opens none). Once per request: a second call answers the first's
    principal, counted once."""
    if (known := getattr(request.state, "principal", None)) is not None:
        return known
    settings: Settings = request.app.state.settings
    if not settings.auth_enabled:
        if not served_on_loopback(request):  # an open API is this machine's own, never the network's
            raise Unauthorized(
                "Authentication is disabled on this server (PRM_AUTH_ENABLED=false), so it answers only on "
                "a loopback address."
            )
        principal = _anonymous_admin(request, settings)
    else:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized("Not authenticated.")
        refuse_published_secret_off_loopback(request, settings)
        principal = request.app.state.token_verifier.verify(credentials.credentials)
    limits: RateLimits | None = getattr(request.app.state, "rate_limits", None)
    if limits is not None:
        verdict = await limits.check_caller(str(principal.tenant_id), principal.sub)
        enforce(verdict, response, "user" if verdict and verdict.item is limits.per_user else "tenant")
    if not await _tenant_is_active(request, principal.tenant_id):
        raise Unauthorized("Invalid token.")
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


async def get_principal(
    request: Request,
    response: Response,
    session: AsyncSession,
    credentials: HTTPAuthorizationCredentials | None,
) -> Principal:
    """`authenticate`, and scope `session` to the caller's tenant: for routes that take the caller's
    credentials themselves."""
    principal = await authenticate(request, response, credentials)
    bind_tenant(session, principal.tenant_id)
    return principal


def refuse_published_secret_off_loopback(request: Request, settings: Settings) -> None:
    """With the development secret (which anyone can read in the code) a development server takes tokens
    only on a connection to a loopback address: what it is really served on, whatever PRM_API_HOST says.
    Production refuses that secret at start-up; `create_app_from_env` refuses the test suite's PRM_ENV."""
    if settings.env == "development" and settings.uses_development_secret and not served_on_loopback(request):
        raise Unauthorized(
            "This server checks tokens with the published development secret, so it accepts them only on "
            "a loopback address: set PRM_JWT_SECRET to serve it on a network."
        )


def served_on_loopback(request: Request) -> bool:
    """Whether the connection reached a loopback address of this machine (the ASGI `server`: the address
    the socket was accepted on, not a header a client or proxy can write)."""
    server = request.scope.get("server")
    if not server:
        return False  # a Unix socket: a proxy may sit in front of it
    try:
        address = ipaddress.ip_address(str(server[0]))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # `::ffff:127.0.0.1` on a dual-stack socket
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


async def _tenant_is_active(request: Request, tenant_id: uuid.UUID) -> bool:
    """The app's cache of active tenants when it runs one (`domain.tenants.active`); a query of its own
    when the cache cannot answer."""
    state = request.app.state
    active: ActiveTenants | None = getattr(state, "active_tenants", None)
    if active is not None and active.known_active(tenant_id):
        return True
    async with (getattr(state, "read_sessionmaker", None) or state.sessionmaker)() as session:
        if active is None:
            return await get_active_tenant(session, tenant_id) is not None
        return await active.is_active(session, tenant_id)


def _anonymous_admin(request: Request, settings: Settings) -> Principal:
    raw = request.headers.get("X-Tenant-ID") or settings.default_tenant_id
    if not raw:
        raise Unauthorized(
            "Auth is disabled, but no tenant was given (X-Tenant-ID or PRM_DEFAULT_TENANT_ID)."
        )
    try:
        tenant_id = uuid.UUID(raw)
    except ValueError as exc:
        raise Unauthorized("X-Tenant-ID is not a UUID.") from exc
    return Principal(sub="anonymous", tenant_id=tenant_id, roles=frozenset({Role.ADMIN}))


async def get_tenant_session(session: RawSessionDep, principal: CurrentPrincipal) -> AsyncSession:
    """The request's session, scoped to the caller's tenant."""
    bind_tenant(session, principal.tenant_id)
    return session


SessionDep = Annotated[AsyncSession, Depends(get_tenant_session)]


def refuse_unless(principal: Principal, permission: Permission) -> None:
    """403 for a caller whose roles lack `permission`."""
    if not principal.can(permission):
        raise Forbidden(f"Your role does not allow this ({permission.value}).")


async def tenant_reads(
    request: Request,
    response: Response,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> TenantReads:
    """The hottest reads (`core.reads`) for the caller's tenant, on the app's read pool: no session. It
    authenticates the caller itself and refuses (403) one who may not read, so a route taking it needs
    neither `CurrentPrincipal` nor `CanRead`: two dependencies fewer for FastAPI to solve on the most
    frequent requests (about a tenth of a point read's Python calls)."""
    principal = await authenticate(request, response, credentials)
    refuse_unless(principal, Permission.READ)
    return TenantReads(request.app.state.read_pool, principal.tenant_id)


TenantReadsDep = Annotated[TenantReads, Depends(tenant_reads)]


def require(permission: Permission) -> Any:
    """A dependency that refuses (403) callers whose roles lack `permission`."""

    async def check(principal: CurrentPrincipal) -> Principal:
        refuse_unless(principal, permission)
        return principal

    return Depends(check)


CanRead = require(Permission.READ)
CanWrite = require(Permission.WRITE)
CanMerge = require(Permission.MERGE)
CanDelete = require(Permission.DELETE)
CanAdminister = require(Permission.ADMIN)


def ensure_own_tenant(principal: Principal, tenant_id: uuid.UUID | None) -> None:
    """A `tenant_id` in a body or query must be the caller's own, or omitted: another tenant's is 403, as
    for any request the caller's token does not allow (the OpenAPI cannot say which id is the caller's, so
    a request naming another is well formed, and refused for who sends it)."""
    if tenant_id is not None and tenant_id != principal.tenant_id:
        raise Forbidden("tenant_id must be your own tenant's id, or omitted.")


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="Repeat a request safely: a request repeated with the same key returns the first one's "
        "outcome (200) and does nothing again",
    ),
]


# ---- Temporal ----------------------------------------------------------------------------------------


def workflow_gateway(request: Request) -> WorkflowGateway:
    """The app's gateway to Temporal (`core.gateway`), for what needs Temporal's answer now (an advance)."""
    return gateway_for_state(request.app.state)


GatewayDep = Annotated[WorkflowGateway, Depends(workflow_gateway)]


async def commit_and_run_jobs(session: AsyncSession) -> None:
    """Commit now and run the after-commit jobs, letting their errors reach the caller (e.g. as a 503)."""
    await record_write(session)
    await session.commit()
    await run_after_commit_jobs(session)
