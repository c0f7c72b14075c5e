"""`POST /oauth/token`: OAuth 2.0 client credentials (RFC 6749 4.4), as SMART Backend Services uses it.

An integration client sends `grant_type=client_credentials` and authenticates either with its `client_id`
and `client_secret` (form-encoded, or HTTP Basic), or, registered with a JWK Set, with a signed
`client_assertion` (`client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`, SMART
Backend Services' `private_key_jwt`: `domain.integrations.keys`). It may ask for a `scope`: a subset of its
scopes (`fhir`, `hl7`) or SMART scopes (`system/Patient.rs`, ...) within `fhir`; it gets a short-lived
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
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.ratelimit import RateLimits, enforce
from core.client_credentials import ClientCaller, format_scopes, issue_client_token, parse_token_scope
from core.settings import Settings
from domain.integrations.keys import ASSERTION_TYPE, AssertionRefused, JwksCache, authenticate_assertion
from domain.integrations.service import authenticate

router = APIRouter(tags=["oauth"])
MAX_FIELD_LENGTH = 200
MAX_ASSERTION_LENGTH = 8192
MAX_SCOPE_LENGTH = 2000
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a secret
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


def token_url(request: Request) -> str:
    """The token endpoint's URL as clients name it (the `aud` of their assertions): under
    PRM_PUBLIC_BASE_URL when set, else as this request reached the service."""
    public = request.app.state.settings.public_base_url
    root = public.rstrip("/") if public else str(request.base_url).rstrip("/")
    return root + TOKEN_PATH


async def _authenticate(request: Request, form: dict[str, str]) -> ClientCaller | JSONResponse:
    """The client a token request authenticates (by secret, or by a signed assertion), or the refusal.
    Each check opens its own short transaction: none is held while a client's `jwks_uri` is fetched."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    basic = _basic_credentials(request)
    if "client_assertion" in form or "client_assertion_type" in form:
        if basic is not None or "client_secret" in form:
            return _error(400, "invalid_request", "Authenticate one way: a client assertion or a secret.")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return _error(400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}.")
        assertion = form.get("client_assertion", "")
        if not assertion or len(assertion) > MAX_ASSERTION_LENGTH:
            return _error(401, "invalid_client", "client_assertion is missing or too long.")
        settings: Settings = request.app.state.settings
        cache: JwksCache = request.app.state.jwks_cache
        try:
            caller = await authenticate_assertion(
                sessions,
                assertion,
                token_url=token_url(request),
                cache=cache,
                leeway_seconds=settings.jwt_leeway_seconds,
            )
        except AssertionRefused as exc:
            return _error(401, "invalid_client", exc.reason)
        if form.get("client_id", caller.client_id) != caller.client_id:
            return _error(401, "invalid_client", "client_id is not the assertion's issuer.")
        return caller
    if basic is not None and ("client_id" in form or "client_secret" in form):
        return _error(400, "invalid_request", "Send the client credentials one way: Basic or the form.")
    client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
    if not client_id or not secret or len(client_id) > MAX_FIELD_LENGTH or len(secret) > MAX_FIELD_LENGTH:
        return _error(401, "invalid_client", "Client authentication failed.")
    async with sessions() as session, session.begin():
        found = await authenticate(session, client_id, secret)
    if found is None:
        return _error(401, "invalid_client", "Client authentication failed.")
    return found


def _narrowed(caller: ClientCaller, raw: str) -> ClientCaller | JSONResponse:
    """The caller holding only the scopes asked for (ours, or SMART's within `fhir`), or the refusal."""
    try:
        wanted, grants = parse_token_scope(raw)
    except ValueError as exc:
        return _error(
            400, "invalid_scope", f"Unknown scope: {exc}. The scopes are fhir, hl7, system/*.rs, ..."
        )
    if not wanted or not wanted <= caller.scopes:
        return _error(400, "invalid_scope", "The scope asked for is not granted to this client.")
    return ClientCaller(caller.client_id, caller.secret_id, caller.tenant_id, wanted, grants)


@router.post(TOKEN_PATH, include_in_schema=False)
async def issue_token(request: Request) -> Any:
    """Trade an integration client's id and secret, or its signed assertion, for a short-lived bearer token
    (client credentials)."""
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
    caller = await _authenticate(request, form)
    if isinstance(caller, JSONResponse):
        return caller
    if "scope" in form:
        if len(form["scope"]) > MAX_SCOPE_LENGTH:
            return _error(400, "invalid_scope", f"scope is longer than {MAX_SCOPE_LENGTH} characters.")
        caller = _narrowed(caller, form["scope"])
        if isinstance(caller, JSONResponse):
            return caller
    settings: Settings = request.app.state.settings
    token, ttl = issue_client_token(settings, caller)
    body = {
        "access_token": token,
        "token_type": "bearer",
        "expires_in": ttl,
        "scope": format_scopes(caller.scopes, caller.grants),
    }
    response = JSONResponse(content=body, headers=NO_STORE)
    enforce(verdict, response, "source")
    return response
