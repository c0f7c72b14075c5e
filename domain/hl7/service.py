"""Receiving one HL7 v2 message from a tenant's EHR: parse, run it once, answer an ACK.

- Once per control id: the message's row (`hl7_messages`, unique per tenant and MSH-10) is inserted first,
  in the transaction of the message's effects. A repeat finds it (a concurrent repeat waits for the first to
  commit, then finds it) and gets the stored ACK, changing nothing.
- All or nothing: an accepted message's effects and its row commit together. A refused one (AE/AR) changes
  nothing: the caller rolls the whole transaction back (its after-commit jobs with it), records the refusal
  in a transaction of its own (`record_refusal`) and answers the ACK. A resent message is answered with the
  ACK it got, refusal or not (HL7's original mode: a refused message is corrected and sent under a new
  control id). Only a refusal that says "resend" (a record locked by a concurrent message) is not recorded.
- A control id that comes back with another message (its digest differs; MSH-7 aside, see
  `messages.digest_of`) is refused (AR, 205) naming the conflict, never answered with the first one's ACK.
- The text is decoded by the character set MSH-18 declares (`messages.decode`).
- Every change goes through the domain services the API uses, with `hl7` as the events' source.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import DomainError
from core.events import EventSource, set_event_source
from domain.hl7 import adt, siu
from domain.hl7.messages import AckCode, ErrorCode, Hl7Error, Parsed, ack_code_of, build_ack, decode, parse
from domain.hl7.models import Hl7Message

log = logging.getLogger(__name__)
Handler = Callable[[AsyncSession, Parsed], Awaitable[list[uuid.UUID]]]
HANDLERS: dict[str, dict[str, Handler]] = {
    "ADT": {"A01": adt.admit, "A03": adt.discharge, "A04": adt.register, "A08": adt.update, "A40": adt.merge},
    "SIU": {"S12": siu.book, "S13": siu.reschedule, "S14": siu.modify, "S15": siu.cancel, "S26": siu.no_show},
}
PROCESSING_IDS = {"P", "T", "D", ""}  # production, training, debugging (HL7 table 0103)


@dataclass(frozen=True)
class Acknowledgment:
    """The ACK to send back: its code (AA, AE, AR), its ER7 text, and whether it answered a repeat."""

    code: str
    text: str
    control_id: str | None = None
    repeated: bool = False
    patients: tuple[uuid.UUID, ...] = ()  # the patients an applied message touched (for the audit trail)
    message_type: str = ""
    digest: str = ""
    recordable: bool = False  # a refusal to record (`record_refusal`) so that a resend gets the same ACK

    @property
    def accepted(self) -> bool:
        """Whether the message was applied (or had been)."""
        return self.code == AckCode.ACCEPT


def _handler(parsed: Parsed) -> Handler:
    header = parsed.header
    events = HANDLERS.get(header.message_code)
    if events is None:
        raise Hl7Error(
            "Only ADT and SIU messages are accepted here.",
            code=ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            ack=AckCode.REJECT,
            location="MSH-9",
        )
    handler = events.get(header.trigger)
    if handler is None:
        raise Hl7Error(
            f"{header.message_code} events accepted here: {', '.join(events)}.",
            code=ErrorCode.UNSUPPORTED_EVENT,
            ack=AckCode.REJECT,
            location="MSH-9",
        )
    if header.processing_id[:1] not in PROCESSING_IDS:
        raise Hl7Error(
            "MSH-11 (processing id) must be P, T or D.",
            code=ErrorCode.UNSUPPORTED_PROCESSING_ID,
            ack=AckCode.REJECT,
            location="MSH-11",
        )
    return handler


TRANSIENT_ERRORS = frozenset({ErrorCode.RECORD_LOCKED})  # refusals that ask for a resend: never recorded


def refusal(parsed: Parsed | None, error: Hl7Error, *, recordable: bool = True) -> Acknowledgment:
    """The AE/AR answering a refused message (to record unless it asks for a resend or has no control id)."""
    ack = build_ack(parsed, error.ack, error)
    if parsed is None:
        return Acknowledgment(error.ack, ack)
    return Acknowledgment(
        error.ack,
        ack,
        parsed.header.control_id,
        message_type=parsed.header.type[:16],
        digest=parsed.digest,
        recordable=recordable and error.code not in TRANSIENT_ERRORS,
    )


def _reused_control_id(parsed: Parsed) -> Acknowledgment:
    return refusal(
        parsed,
        Hl7Error(
            "MSH-10 (message control id) was used before for a different message; send this one under a new "
            "control id.",
            code=ErrorCode.DUPLICATE_KEY,
            ack=AckCode.REJECT,
            location="MSH-10",
        ),
        recordable=False,  # the control id's row holds the first message's answer
    )


async def receive(
    session: AsyncSession, body: bytes | str, transport_charset: str | None = None
) -> Acknowledgment:
    """Apply one message in the session's transaction (its tenant's) and say how to acknowledge it. An
    acknowledgment that is not `accepted` means the caller must roll the transaction back (then record it
    with `record_refusal`). `body` as received: bytes are decoded by MSH-18, else `transport_charset`."""
    text, undecodable = decode(body, transport_charset) if isinstance(body, bytes) else (body, None)
    try:
        parsed = await asyncio.to_thread(parse, text)  # python-hl7 is pure Python: off the event loop
    except Hl7Error as error:
        return refusal(None, error)
    try:
        if undecodable is not None:
            raise undecodable
        handler = _handler(parsed)
    except Hl7Error as error:
        stored = await _stored(session, parsed)
        return stored or refusal(parsed, error)
    header = parsed.header
    ack = build_ack(parsed, AckCode.ACCEPT)
    tenant_id = session.info["tenant_id"]
    inserted = await session.scalar(
        insert(Hl7Message)
        .values(
            tenant_id=tenant_id,
            control_id=header.control_id,
            message_type=header.type[:16],
            digest=parsed.digest,
            ack_code=AckCode.ACCEPT,
            ack=ack,
        )
        .on_conflict_do_nothing(constraint="uq_hl7_messages_tenant_control_id")
        .returning(Hl7Message.id)
    )
    if inserted is None:
        stored = await _stored(session, parsed)  # the row the insert met, committed by now
        if stored is not None:
            return stored
        return refusal(  # purged in between: rare, and a resend settles it
            parsed, Hl7Error("The message could not be recorded; resend it.", code=ErrorCode.RECORD_LOCKED)
        )
    set_event_source(session, EventSource.HL7)
    try:
        touched = await handler(session, parsed)
    except Hl7Error as error:
        return refusal(parsed, error)
    except DomainError as error:  # the domain's refusal (a clash, a transition it forbids): its words, no PHI
        return refusal(parsed, Hl7Error(error.detail, code=ErrorCode.APPLICATION_ERROR))
    except IntegrityError:  # a concurrent message took the same identifier first: the sender resends
        return refusal(
            parsed,
            Hl7Error(
                "Another message changed the same record at the same moment; resend this one.",
                code=ErrorCode.RECORD_LOCKED,
            ),
        )
    except ValidationError as error:
        return refusal(
            parsed,
            Hl7Error(f"A value is not valid ({error.error_count()} errors).", code=ErrorCode.DATA_TYPE),
        )
    return Acknowledgment(AckCode.ACCEPT, ack, header.control_id, patients=tuple(dict.fromkeys(touched)))


async def _stored(session: AsyncSession, parsed: Parsed) -> Acknowledgment | None:
    """The answer to a control id seen before: its stored ACK when the message is the same, an AR naming the
    conflict when it is another; None when the control id is new."""
    stored = (
        await session.execute(
            select(Hl7Message.ack, Hl7Message.ack_code, Hl7Message.digest).where(
                Hl7Message.tenant_id == session.info["tenant_id"],
                Hl7Message.control_id == parsed.header.control_id,
            )
        )
    ).one_or_none()
    if stored is None:
        return None
    if stored.digest not in (parsed.digest, parsed.whole_text_digest):
        log.warning("HL7 control id repeated with a different message: refused (AR)")
        return _reused_control_id(parsed)
    return Acknowledgment(stored.ack_code, stored.ack, parsed.header.control_id, repeated=True)


async def record_refusal(session: AsyncSession, ack: Acknowledgment) -> None:
    """Record a refused message's ACK under its control id (in the session's tenant, its own transaction,
    after the message's was rolled back), so that a resend is answered the same; a row already there (a
    concurrent resend recorded first) stays."""
    if not ack.recordable or ack.control_id is None:
        return
    await session.execute(
        insert(Hl7Message)
        .values(
            tenant_id=session.info["tenant_id"],
            control_id=ack.control_id,
            message_type=ack.message_type,
            digest=ack.digest,
            ack_code=ack_code_of(ack.text) or ack.code,
            ack=ack.text,
        )
        .on_conflict_do_nothing(constraint="uq_hl7_messages_tenant_control_id")
    )
