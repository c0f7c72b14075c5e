"""Authentication of systems (EHR integrations) on the integration endpoints (FHIR, HL7).

A route takes `require_scope(Scope.FHIR)` (or `Scope.HL7`): the caller must send an integration token from
`POST /oauth/token` (never a coordinator's token: the audiences differ) whose client and secret are still
active and whose scope includes the one named. The request's session is then scoped to the client's tenant
and the call counted against the client's rate limit.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from api.deps import RawSessionDep, bearer, refuse_published_secret_off_loopback
from api.ratelimit import RateLimits, enforce
from core.client_credentials import ClientCaller, Scope, verify_client_token
from core.database import bind_tenant
from core.errors import Forbidden, Unauthorized
from core.settings import Settings
from domain.integrations.service import is_active
from domain.tenants.service import get_active_tenant


async def get_client_caller(
    request: Request,
    response: Response,
    session: RawSessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ClientCaller:
    """Authenticate an integration client, count its call and scope the session to its tenant."""
    settings: Settings = request.app.state.settings
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Not authenticated: send an integration token from POST /oauth/token.")
    refuse_published_secret_off_loopback(request, settings)
    caller = verify_client_token(settings, credentials.credentials)
    limits: RateLimits | None = getattr(request.app.state, "rate_limits", None)
    if limits is not None:
        verdict = await limits.check_integration_client(str(caller.tenant_id), caller.client_id)
        enforce(verdict, response, "integration client")
    # Revocation bites at once, not when the token expires.
    if not await is_active(session, caller) or await get_active_tenant(session, caller.tenant_id) is None:
        raise Unauthorized("Invalid token.")
    bind_tenant(session, caller.tenant_id)
    request.state.client_caller = caller
    return caller


CurrentClient = Annotated[ClientCaller, Depends(get_client_caller)]


def require_scope(scope: Scope) -> Any:
    """A dependency that refuses (403) integration clients whose token lacks `scope`."""

    async def check(caller: CurrentClient) -> ClientCaller:
        if scope not in caller.scopes:
            raise Forbidden(f"This client's token does not grant the `{scope.value}` scope.")
        return caller

    return Depends(check)


FhirClient = Annotated[ClientCaller, require_scope(Scope.FHIR)]
Hl7Client = Annotated[ClientCaller, require_scope(Scope.HL7)]
