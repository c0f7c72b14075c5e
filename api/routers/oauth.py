"""`POST /oauth/token`: OAuth 2.0 client credentials (RFC 6749 4.4), as SMART Backend Services uses it.

An integration client sends `grant_type=client_credentials` with its `client_id` and `client_secret`
(form-encoded, or HTTP Basic) and optionally a `scope` (a subset of its scopes); it gets a short-lived
bearer token for the integration endpoints. Errors take OAuth's shape (`error`, `error_description`), with
`detail` as everywhere else in this API.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import RawSessionDep
from api.ratelimit import RateLimits, enforce
from core.client_credentials import ClientCaller, format_scopes, issue_client_token, parse_scopes
from core.settings import Settings
from domain.integrations.service import authenticate

router = APIRouter(tags=["oauth"])
MAX_FIELD_LENGTH = 200
FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _error(status: int, error: str, description: str) -> JSONResponse:
    headers = dict(NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="prm-integrations"'
    body = {"error": error, "error_description": description, "detail": description}
    return JSONResponse(status_code=status, content=body, headers=headers)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    # RFC 6749 2.3.1: both are form-urlencoded before they are put in the Basic header.
    return unquote_plus(client_id), unquote_plus(secret)


async def _form(request: Request) -> dict[str, str] | None:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
        return None
    try:
        pairs = parse_qsl(
            (await request.body()).decode("utf-8"), keep_blank_values=True, strict_parsing=False
        )
    except (UnicodeDecodeError, ValueError):
        return None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:  # RFC 6749 3.2: parameters must not be repeated
            return None
        form[key] = value
    return form


@router.post("/oauth/token", include_in_schema=False)
async def issue_token(request: Request, session: RawSessionDep) -> Any:
    """Trade an integration client's id and secret for a short-lived bearer token (client credentials)."""
    limits: RateLimits | None = getattr(request.app.state, "rate_limits", None)
    verdict = None
    if limits is not None:
        verdict = await limits.check_token_source(request.client.host if request.client else "unknown")
        if verdict is not None and not verdict.allowed:
            response = _error(429, "slow_down", "Too many token requests from this address; retry later.")
            response.headers.update(verdict.headers())
            return response
    form = await _form(request)
    if form is None:
        return _error(400, "invalid_request", f"Send the parameters form-encoded ({FORM}), each once.")
    if form.get("grant_type") != "client_credentials":
        return _error(400, "unsupported_grant_type", "Only grant_type=client_credentials is supported.")
    basic = _basic_credentials(request)
    if basic is not None and ("client_id" in form or "client_secret" in form):
        return _error(400, "invalid_request", "Send the client credentials one way: Basic or the form.")
    client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
    if not client_id or not secret or len(client_id) > MAX_FIELD_LENGTH or len(secret) > MAX_FIELD_LENGTH:
        return _error(401, "invalid_client", "Client authentication failed.")
    caller = await authenticate(session, client_id, secret)
    if caller is None:
        return _error(401, "invalid_client", "Client authentication failed.")
    if "scope" in form:
        try:
            wanted = parse_scopes(form["scope"][:MAX_FIELD_LENGTH])
        except ValueError:
            return _error(400, "invalid_scope", "Unknown scope; the scopes are: fhir, hl7.")
        if not wanted or not wanted <= caller.scopes:
            return _error(400, "invalid_scope", "The scope asked for is not granted to this client.")
        caller = ClientCaller(caller.client_id, caller.secret_id, caller.tenant_id, wanted)
    settings: Settings = request.app.state.settings
    token, ttl = issue_client_token(settings, caller)
    body = {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": ttl,
        "scope": format_scopes(caller.scopes),
    }
    response = JSONResponse(content=body, headers=NO_STORE)
    enforce(verdict, response, "source")
    return response
