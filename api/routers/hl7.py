"""HL7 v2 over HTTP (`POST /hl7/v2`): an EHR's ADT and SIU messages in, an HL7 ACK out.

The body is one ER7 message (`Content-Type: application/hl7-v2`, `x-application/hl7-v2+er7` or
`text/plain`); the caller is an integration client with the `hl7` scope. As HL7 over HTTP wants, every
message that reached the application is answered 200 with an ACK whose MSA-1 says the outcome: AA
(applied, or applied before: a repeated MSH-10 of the same sender, MSH-3/MSH-4, is answered with the same
ACK; an optional field it had to drop is named in an ERR of severity W), AE (understood, refused:
the reason in MSA-3 and ERR) or AR (not a message this endpoint takes). A refused message changes nothing
but its own record: resent under the same MSH-10 it gets the same ACK; another message under a used MSH-10
gets an AR (205). The text is decoded by MSH-18's character set (ASCII, 8859/n, UNICODE UTF-8), else by the
Content-Type's charset, else as UTF-8. 401/403 are the authentication's; 415 a body of another media type.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import RawSessionDep
from api.integration_audit import record_integration_write
from api.integration_auth import Hl7Client
from core.database import bind_tenant
from core.errors import DomainError
from domain.hl7 import service
from domain.hl7.feed import Limits, feed_of
from domain.hl7.service import Acknowledgment

log = logging.getLogger(__name__)
router = APIRouter(prefix="/hl7", tags=["hl7"], include_in_schema=False)
HL7_MEDIA_TYPE = "application/hl7-v2"
ACCEPTED_MEDIA_TYPES = frozenset({HL7_MEDIA_TYPE, "x-application/hl7-v2+er7", "text/plain"})


class UnsupportedMediaType(DomainError):
    """415: the body is not an HL7 v2 (ER7) message by its declared type."""

    status_code = 415


class MessageRefused(Exception):
    """A message answered AE/AR: raised so that the request's transaction rolls back (nothing it did stays,
    nor any job it queued), then rendered as its ACK with status 200."""

    def __init__(self, ack: Acknowledgment, tenant_id: uuid.UUID) -> None:
        super().__init__(ack.code)
        self.ack = ack
        self.tenant_id = tenant_id


def ack_response(ack: Acknowledgment) -> Response:
    """The ACK as the HTTP answer (200 whatever MSA-1 says, as HL7 over HTTP does)."""
    return Response(content=ack.text, media_type=HL7_MEDIA_TYPE, headers={"X-HL7-Ack-Code": ack.code})


async def render_refusal(request: Request, exc: Exception) -> Response:
    """Exception handler of `MessageRefused` (installed by the app): once the message's transaction has
    rolled back, record the refusal in one of its own, then answer the ACK."""
    assert isinstance(exc, MessageRefused)
    log.info("HL7 message refused: %s", exc.ack.code)  # the code only: never the message or its reason
    if exc.ack.recordable:
        try:
            async with request.app.state.sessionmaker() as session:
                bind_tenant(session, exc.tenant_id)
                await service.record_refusal(session, exc.ack)
                await session.commit()
        except Exception as error:  # the ACK goes out anyway; a resend is then checked again
            log.warning("an HL7 refusal could not be recorded: %s", type(error).__name__)
    return ack_response(exc.ack)


def _transport_charset(request: Request) -> str | None:
    """The Content-Type's charset, if it names one; 415 when the media type is not HL7 v2's."""
    content_type = request.headers.get("content-type", "")
    media_type, _, params = content_type.partition(";")
    if media_type.strip().lower() not in ACCEPTED_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Send one HL7 v2 message (ER7) as {HL7_MEDIA_TYPE}, x-application/hl7-v2+er7 or text/plain."
        )
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return None


@router.post("/v2")
async def receive_message(request: Request, caller: Hl7Client, session: RawSessionDep) -> Response:
    """Apply one HL7 v2 ADT (A01, A03, A04, A08, A11, A13, A40) or SIU (S12, S13, S14, S15, S17, S26) message,
    read as the client's feed settings say, and answer its ACK."""
    charset = _transport_charset(request)
    feed = await feed_of(session, caller.client_id, Limits.from_settings(request.app.state.settings))
    ack = await service.receive(session, await request.body(), charset, feed)
    if not ack.accepted:
        raise MessageRefused(ack, caller.tenant_id)
    if not ack.repeated:  # the write's audit records (one per patient touched) commit with it
        await record_integration_write(
            session, request, caller, action="hl7.receive", resource_type="hl7", patients=ack.patients
        )
    return ack_response(ack)
