"""Receiving one HL7 v2 message from a tenant's EHR: parse, run it once, answer an ACK.

- Once per control id: the message's row (`hl7_messages`, unique per tenant, sender (MSH-3, MSH-4) and
  MSH-10: two feeds may use the same control ids) is inserted first,
  in the transaction of the message's effects. A repeat finds it (a concurrent repeat waits for the first to
  commit, then finds it) and gets the stored ACK, changing nothing.
- All or nothing: an accepted message's effects and its row commit together. A refused one (AE/AR) changes
  nothing: the caller rolls the whole transaction back (its after-commit jobs with it), records the refusal
  in a transaction of its own (`record_refusal`) and answers the ACK. A resent message is answered with the
  ACK it got, refusal or not (HL7's original mode: a refused message is corrected and sent under a new
  control id). Only a refusal that says "resend" (a record locked by a concurrent message) is not recorded.
- A control id that comes back with another message (its digest differs; MSH-7 aside, see
  `messages.digest_of`) is refused (AR, 205) naming the conflict, never answered with the first one's ACK.
- The text is decoded by the character set MSH-18 declares (`messages.decode`), and read as the client's
  feed says (`feed.Feed`: the zone of its local times, its code maps, whether unsupported message types are
  ignored). An unusable optional field is dropped and the message applied: AA with an ERR of severity W.
- Every change goes through the domain services the API uses, with `hl7` as the events' source.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import DomainError
from core.events import EventSource, set_event_source
from domain.hl7 import adt, siu
from domain.hl7.feed import Feed
from domain.hl7.messages import (
    AckCode,
    ErrorCode,
    Hl7Error,
    Parsed,
    ack_code_of,
    build_ack,
    decode,
    parse_body,
    parse_header,
)
from domain.hl7.models import MAX_HD_LENGTH, Hl7Message

log = logging.getLogger(__name__)
Handler = Callable[[AsyncSession, Parsed], Awaitable[list[uuid.UUID]]]
HANDLERS: dict[str, dict[str, Handler]] = {
    "ADT": {
        "A01": adt.admit,
        "A03": adt.discharge,
        "A04": adt.register,
        "A08": adt.update,
        "A11": adt.cancel_admit,
        "A13": adt.cancel_discharge,
        "A40": adt.merge,
    },
    "SIU": {
        "S12": siu.book,
        "S13": siu.reschedule,
        "S14": siu.modify,
        "S15": siu.cancel,
        "S17": siu.cancel,  # a deletion: the appointment is cancelled as S15 does (its record stays)
        "S26": siu.no_show,
    },
}
UNIQUE_CONTROL_ID = "uq_hl7_messages_tenant_sender_control_id"
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
    sender: tuple[str, str] = ("", "")  # MSH-3, MSH-4: a control id is unique per sender

    @property
    def accepted(self) -> bool:
        """Whether the message was applied (or had been)."""
        return self.code == AckCode.ACCEPT


async def ignore(session: AsyncSession, parsed: Parsed) -> list[uuid.UUID]:
    """A message type this receiver does not use, from a feed that asked for such messages to be ignored:
    nothing changes; the ACK (AA) says it was ignored."""
    parsed.warn(
        "MSH-9",
        f"{parsed.header.message_code} {parsed.header.trigger} is not used here: the message was accepted "
        "and ignored.",
        code=ErrorCode.UNSUPPORTED_EVENT,
    )
    return []


def _handler(parsed: Parsed) -> Handler:
    header = parsed.header
    if header.processing_id[:1] not in PROCESSING_IDS:
        raise Hl7Error(
            "MSH-11 (processing id) must be P, T or D.",
            code=ErrorCode.UNSUPPORTED_PROCESSING_ID,
            ack=AckCode.REJECT,
            location="MSH-11",
        )
    events = HANDLERS.get(header.message_code)
    handler = events.get(header.trigger) if events is not None else None
    if handler is not None:
        return handler
    if parsed.feed.ignore_unsupported_messages:
        return ignore
    if events is None:
        raise Hl7Error(
            "Only ADT and SIU messages are accepted here.",
            code=ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            ack=AckCode.REJECT,
            location="MSH-9",
        )
    raise Hl7Error(
        f"{header.message_code} events accepted here: {', '.join(events)}.",
        code=ErrorCode.UNSUPPORTED_EVENT,
        ack=AckCode.REJECT,
        location="MSH-9",
    )


TRANSIENT_ERRORS = frozenset({ErrorCode.RECORD_LOCKED})  # refusals that ask for a resend: never recorded


def refusal(parsed: Parsed | None, error: Hl7Error, *, recordable: bool = True) -> Acknowledgment:
    """The AE/AR answering a refused message (to record unless it asks for a resend or has no control id)."""
    ack = build_ack(parsed, error.ack, error, parsed.warnings if parsed is not None else None)
    if parsed is None:
        return Acknowledgment(error.ack, ack)
    return Acknowledgment(
        error.ack,
        ack,
        parsed.header.control_id,
        message_type=parsed.header.type[:16],
        digest=parsed.digest,
        recordable=recordable and error.code not in TRANSIENT_ERRORS,
        sender=sender_of(parsed),
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


def sender_of(parsed: Parsed) -> tuple[str, str]:
    """The message's sender (MSH-3 sending application, MSH-4 sending facility): its control ids' scope."""
    header = parsed.header
    return header.sending_application[:MAX_HD_LENGTH], header.sending_facility[:MAX_HD_LENGTH]


async def receive(
    session: AsyncSession, body: bytes | str, transport_charset: str | None = None, feed: Feed | None = None
) -> Acknowledgment:
    """Apply one message in the session's transaction (its tenant's), read as `feed` says (`feed_of` the
    client that sent it), and say how to acknowledge it. An acknowledgment that is not `accepted` means the
    caller must roll the transaction back (then record it with `record_refusal`). `body` as received: bytes
    are decoded by MSH-18, else `transport_charset`."""
    feed = feed or Feed()
    size = len(body.encode() if isinstance(body, str) else body)
    if size > feed.limits.message_bytes:
        too_large = Hl7Error(
            f"The message is larger than {feed.limits.message_bytes} bytes.",
            code=ErrorCode.SEGMENT_SEQUENCE,
            ack=AckCode.REJECT,
            location="MSH",
        )
        return refusal(None, too_large)
    # Decoding and python-hl7 (pure Python) run off the event loop: one large body holds up no other request.
    text, undecodable = (
        await asyncio.to_thread(decode, body, transport_charset) if isinstance(body, bytes) else (body, None)
    )
    try:
        parsed = await asyncio.to_thread(parse_header, text, feed)
    except Hl7Error as error:
        return refusal(None, error)
    try:
        if undecodable is not None:
            raise undecodable
        await asyncio.to_thread(parse_body, parsed, text)
        handler = _handler(parsed)
    except Hl7Error as error:
        stored = await _stored(session, parsed)
        return stored or refusal(parsed, error)
    header = parsed.header
    application, facility = sender_of(parsed)
    tenant_id = session.info["tenant_id"]
    inserted = await session.scalar(
        insert(Hl7Message)
        .values(
            tenant_id=tenant_id,
            sending_application=application,
            sending_facility=facility,
            control_id=header.control_id,
            message_type=header.type[:16],
            digest=parsed.digest,
            ack_code=AckCode.ACCEPT,
            ack="",  # the ACK, with what was dropped from the message, once it is applied
        )
        .on_conflict_do_nothing(constraint=UNIQUE_CONTROL_ID)
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
    ack = build_ack(parsed, AckCode.ACCEPT, warnings=parsed.warnings)
    await session.execute(update(Hl7Message).where(Hl7Message.id == inserted).values(ack=ack))
    return Acknowledgment(AckCode.ACCEPT, ack, header.control_id, patients=tuple(dict.fromkeys(touched)))


async def _stored(session: AsyncSession, parsed: Parsed) -> Acknowledgment | None:
    """The answer to a control id seen before: its stored ACK when the message is the same, an AR naming the
    conflict when it is another; None when the control id is new."""
    stored = (
        await session.execute(
            select(Hl7Message.ack, Hl7Message.ack_code, Hl7Message.digest).where(
                Hl7Message.tenant_id == session.info["tenant_id"],
                Hl7Message.sending_application == sender_of(parsed)[0],
                Hl7Message.sending_facility == sender_of(parsed)[1],
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
            sending_application=ack.sender[0],
            sending_facility=ack.sender[1],
            control_id=ack.control_id,
            message_type=ack.message_type,
            digest=ack.digest,
            ack_code=ack_code_of(ack.text) or ack.code,
            ack=ack.text,
        )
        .on_conflict_do_nothing(constraint=UNIQUE_CONTROL_ID)
    )
