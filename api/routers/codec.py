"""The codec server the Temporal UI calls to show encrypted payloads in clear: to an authorised operator, and
only their own tenant's.

The UI posts `{"payloads": [...]}` (Temporal's Payloads message as proto3 JSON) to `/codec/decode` (and
`/codec/encode`) and shows what comes back. Callers need the `decode_payloads` permission (the `operator`
and `admin` roles), except the local development UI that `prm run` starts, which cannot send a token
(development only, from a loopback address, without an Authorization header); the UI's origins are allowed
by CORS (`PRM_CORS_ORIGINS`). Without `PRM_PAYLOAD_ENCRYPTION_KEYS` payloads are stored in clear, and both
endpoints return them unchanged.

Each payload is sealed for its tenant (`core.codec`). `/codec/decode` returns in clear the payloads sealed
for the caller's tenant; any other encrypted payload (another tenant's, the service's own, one written
before per-tenant keys that does not prove to be the caller's) comes back still encoded, as the UI shows a
payload it cannot read, rather than failing the whole answer with a 403: the UI decodes a page's payloads
together. The local development UI reads every tenant's (it is the stack's own admin, on this machine).
`/codec/encode` seals for the caller's tenant.

Every decode is audited (`core.audit`, through the app's `AuditBuffer`, as reads are): one record per
encrypted payload, naming the caller and the workflow the payload belongs to (`workflow:<kind>` and the
row id of `<kind>-<uuid>`; `payload` when the payload does not say), `allowed` when it was returned in
clear and `denied` when it was withheld, in the caller's tenant's trail and, for another tenant's payload,
in that tenant's trail too. A refused caller (403) and a payload that does not decrypt (422) are recorded
as well. Ids only: no payload content reaches the trail.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema

from api.audit import actor_of
from api.content_rules import rules
from api.deps import RawSessionDep, bearer, get_principal
from api.openapi import AUTHENTICATED, operation_id
from core.audit import Actor, AuditBuffer, AuditOutcome
from core.auth import Permission
from core.codec import (
    EVERY_TENANT,
    CodecError,
    EncryptionCodec,
    PayloadAccount,
    read_json,
    seal_json,
    tenant_of,
)
from core.errors import Forbidden, Unprocessable
from core.settings import LOOPBACK_HOSTS

log = logging.getLogger(__name__)

router = APIRouter(prefix="/codec", tags=["codec"], responses=AUTHENTICATED)

DEVELOPMENT_UI = "development-ui"  # how the audit trail names the local development UI
# Workflow ids are `<kind>-<row uuid>` (journey-instance-..., appointment-..., ticket-...).
_WORKFLOW_ID = re.compile(r"(?P<kind>.+)-(?P<row>[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})")


async def _development_ui(request: Request) -> bool:
    """The dev server's UI (`prm run`) cannot send a token: in development, from this machine, it needs
    none (the same trust as the admin token `prm run` prints). Everywhere else a token is required."""
    settings = request.app.state.settings
    client = request.client.host if request.client else ""
    return (
        settings.env == "development" and client in LOOPBACK_HOSTS and "authorization" not in request.headers
    )


@dataclass(frozen=True)
class CodecCaller:
    """Who calls the codec: an operator or admin of one tenant, or the local development UI (no tenant)."""

    actor: Actor
    tenant_id: uuid.UUID | None

    @property
    def reader(self) -> str:
        """Whose payloads the caller may read: their tenant's (the development UI: every tenant's)."""
        return EVERY_TENANT if self.tenant_id is None else str(self.tenant_id)


async def codec_caller(
    request: Request,
    response: Response,
    session: RawSessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> CodecCaller:
    """Operators and admins (bearer token), or the local development UI; a refusal is audited."""
    client = request.client.host[:64] if request.client else None
    if await _development_ui(request):
        request_id = getattr(request.state, "request_id", None)
        return CodecCaller(Actor(DEVELOPMENT_UI, (), request_id, client), None)
    principal = await get_principal(request, response, session, credentials)
    caller = CodecCaller(actor_of(request, principal), principal.tenant_id)
    if not principal.can(Permission.DECODE_PAYLOADS):
        _record(request, caller, [principal.tenant_id], "codec", None, AuditOutcome.DENIED)
        raise Forbidden(f"Your role does not allow this ({Permission.DECODE_PAYLOADS.value}).")
    return caller


CallerDep = Annotated[CodecCaller, Depends(codec_caller)]


# proto3 JSON's bytes: standard base64, padded.
BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


def _base64(value: str) -> str:
    """Proto3 JSON's bytes: standard base64, padded (the schema's pattern)."""
    if re.fullmatch(BASE64, value) is None:
        raise ValueError("must be base64 (proto3 JSON bytes)")
    return value


Base64 = Annotated[
    str, AfterValidator(_base64), WithJsonSchema({"type": "string", "pattern": BASE64, "format": "byte"})
]


class CodecPayload(BaseModel):
    """One Temporal payload in proto3 JSON: metadata values and data in base64."""

    metadata: dict[str, Base64] = Field(default_factory=dict)
    data: Base64 = ""


class CodecPayloads(BaseModel):
    """Temporal's `Payloads` message, as the Temporal UI sends and expects it."""

    payloads: list[CodecPayload] = Field(default_factory=list, max_length=1000)


def _codec(request: Request) -> EncryptionCodec | None:
    return getattr(request.app.state, "payload_codec", None)


def _workflow_resource(workflow_id: str | None) -> tuple[str, uuid.UUID | None]:
    """The audit record's resource for a payload of `workflow_id`: `workflow:<kind>` and the row's id."""
    if not workflow_id:
        return "payload", None
    match = _WORKFLOW_ID.fullmatch(workflow_id)
    if match is None:
        return f"workflow:{workflow_id}"[:50], None
    return f"workflow:{match['kind']}"[:50], uuid.UUID(match["row"])


def _record(
    request: Request,
    caller: CodecCaller,
    trails: list[uuid.UUID],
    resource_type: str,
    resource_id: uuid.UUID | None,
    outcome: AuditOutcome,
) -> None:
    buffer: AuditBuffer | None = getattr(request.app.state, "audit_buffer", None)
    if buffer is None:
        log.error("no audit buffer: the record of a codec call is lost")
        return
    action = operation_id(request.scope["route"])
    for tenant_id in trails:
        buffer.add(
            caller.actor.event(
                tenant_id=tenant_id,
                action=action,
                resource_type=resource_type,
                resource_id=resource_id,
                outcome=outcome,
            )
        )


def _audit_decodes(request: Request, caller: CodecCaller, accounts: list[PayloadAccount]) -> None:
    """One record per encrypted payload, in the caller's trail and in its own tenant's (module docstring)."""
    for account in accounts:
        owner = tenant_of(account.tenant_id)
        trails = [] if caller.tenant_id is None else [caller.tenant_id]
        if owner is not None and uuid.UUID(owner) not in trails:
            trails.append(uuid.UUID(owner))
        if not trails:  # the development UI reading a payload of no known tenant
            log.info("codec: the development UI decoded a payload of no known tenant")
            continue
        outcome = AuditOutcome.ALLOWED if account.disclosed else AuditOutcome.DENIED
        _record(request, caller, trails, *_workflow_resource(account.workflow_id), outcome)


@router.post(
    "/decode", openapi_extra=rules("A payload sealed for the caller's tenant decrypts with its keys.")
)
async def decode_payloads(request: Request, body: CodecPayloads, caller: CallerDep) -> CodecPayloads:
    """Decrypt the Temporal UI's payloads of the caller's tenant (operators and admins); other tenants'
    payloads come back still encoded. Every decode is audited."""
    try:
        decoded, accounts = await read_json(_codec(request), body.model_dump(), caller.reader)
    except CodecError as exc:  # content that does not parse, or does not decrypt: 422
        if caller.tenant_id is not None:
            _record(request, caller, [caller.tenant_id], "payload", None, AuditOutcome.ERROR)
        raise Unprocessable(str(exc)) from exc
    _audit_decodes(request, caller, accounts)
    return CodecPayloads.model_validate(decoded)


@router.post("/encode")
async def encode_payloads(request: Request, body: CodecPayloads, caller: CallerDep) -> CodecPayloads:
    """Encrypt payloads the Temporal UI sends (e.g. a signal typed by an operator) for the caller's tenant."""
    tenant = None if caller.tenant_id is None else str(caller.tenant_id)
    try:
        encoded = await seal_json(_codec(request), body.model_dump(), tenant)
    except CodecError as exc:
        raise Unprocessable(str(exc)) from exc
    return CodecPayloads.model_validate(encoded)
