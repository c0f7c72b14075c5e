"""Receiving one HL7 v2 message from a tenant's EHR: parse, run it once, answer an ACK.

- Once per control id: the message's row (`hl7_messages`, unique per tenant and MSH-10) is inserted first,
  in the transaction of the message's effects. A repeat finds it (a concurrent repeat waits for the first to
  commit, then finds it) and gets the stored ACK, changing nothing.
- All or nothing: an accepted message's effects and its row commit together. A refused one (AE/AR) changes
  nothing: the caller rolls the whole transaction back (its after-commit jobs with it) and answers the ACK.
  Refusals are not recorded, so the EHR may resend the same message once what it needed exists.
- Every change goes through the domain services the API uses, with `hl7` as the events' source.
"""

from __future__ import annotations

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
from domain.hl7.messages import AckCode, ErrorCode, Hl7Error, Parsed, build_ack, parse
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


def refusal(parsed: Parsed | None, error: Hl7Error) -> Acknowledgment:
    """The AE/AR answering a refused message."""
    return Acknowledgment(
        error.ack, build_ack(parsed, error.ack, error), parsed.header.control_id if parsed else None
    )


async def receive(session: AsyncSession, text: str) -> Acknowledgment:
    """Apply one message in the session's transaction (its tenant's) and say how to acknowledge it. An
    acknowledgment that is not `accepted` means the caller must roll the transaction back."""
    try:
        parsed = parse(text)
    except Hl7Error as error:
        return refusal(None, error)
    try:
        handler = _handler(parsed)
    except Hl7Error as error:
        return refusal(parsed, error)
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
        stored = (
            await session.execute(
                select(Hl7Message.ack, Hl7Message.digest).where(
                    Hl7Message.tenant_id == tenant_id, Hl7Message.control_id == header.control_id
                )
            )
        ).one()
        if stored.digest != parsed.digest:  # a resend with a regenerated MSH-7, or a sender reusing ids
            log.warning("HL7 control id repeated with a different body: answered as the first (no change)")
        return Acknowledgment(AckCode.ACCEPT, stored.ack, header.control_id, repeated=True)
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
