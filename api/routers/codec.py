"""The codec server the Temporal UI calls to show encrypted payloads in clear to an authorised operator.

The UI posts `{"payloads": [...]}` (Temporal's Payloads message as proto3 JSON) to `/codec/decode` (and
`/codec/encode`) and shows what comes back. Callers need the `decode_payloads` permission (the `operator`
and `admin` roles), except the local development UI that `prm run` starts, which cannot send a token
(development only, from a loopback address, without an Authorization header); the UI's origins are allowed
by CORS (`PRM_CORS_ORIGINS`). Without
`PRM_PAYLOAD_ENCRYPTION_KEYS` payloads are stored in clear, and both endpoints return them unchanged.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field

from api.deps import RawSessionDep, bearer, get_principal
from api.openapi import AUTHENTICATED
from core.auth import Permission
from core.codec import CodecError, EncryptionCodec, transcode_json
from core.errors import Forbidden, Unprocessable
from core.settings import LOOPBACK_HOSTS

router = APIRouter(prefix="/codec", tags=["codec"], responses=AUTHENTICATED)


async def _development_ui(request: Request) -> bool:
    """The dev server's UI (`prm run`) cannot send a token: in development, from this machine, it needs
    none (the same trust as the admin token `prm run` prints). Everywhere else a token is required."""
    settings = request.app.state.settings
    client = request.client.host if request.client else ""
    return (
        settings.env == "development" and client in LOOPBACK_HOSTS and "authorization" not in request.headers
    )


async def can_decode(
    request: Request,
    response: Response,
    session: RawSessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Operators and admins (bearer token), or the local development UI."""
    if await _development_ui(request):
        return
    principal = await get_principal(request, response, session, credentials)
    if not principal.can(Permission.DECODE_PAYLOADS):
        raise Forbidden(f"Your role does not allow this ({Permission.DECODE_PAYLOADS.value}).")


CanDecode = Depends(can_decode)


class CodecPayload(BaseModel):
    """One Temporal payload in proto3 JSON: metadata values and data in base64."""

    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = ""


class CodecPayloads(BaseModel):
    """Temporal's `Payloads` message, as the Temporal UI sends and expects it."""

    payloads: list[CodecPayload] = Field(default_factory=list, max_length=1000)


def _codec(request: Request) -> EncryptionCodec | None:
    return getattr(request.app.state, "payload_codec", None)


@router.post("/decode", dependencies=[CanDecode])
async def decode_payloads(request: Request, body: CodecPayloads) -> CodecPayloads:
    """Decrypt the Temporal UI's payloads (operators and admins)."""
    try:
        decoded = await transcode_json(_codec(request), body.model_dump(), decode=True)
    except CodecError as exc:  # content that does not parse, or does not decrypt: 422
        raise Unprocessable(str(exc)) from exc
    return CodecPayloads.model_validate(decoded)


@router.post("/encode", dependencies=[CanDecode])
async def encode_payloads(request: Request, body: CodecPayloads) -> CodecPayloads:
    """Encrypt payloads the Temporal UI sends (e.g. a signal typed by an operator)."""
    try:
        encoded = await transcode_json(_codec(request), body.model_dump(), decode=False)
    except CodecError as exc:
        raise Unprocessable(str(exc)) from exc
    return CodecPayloads.model_validate(encoded)
