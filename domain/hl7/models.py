"""The HL7 v2 messages a tenant's EHR has sent, applied or refused, one row per message control id (MSH-10)
of each sender (MSH-3 sending application, MSH-4 sending facility).

An applied message's row is written in the transaction of its effects, so a repeated control id finds it and
is answered with the same ACK without touching anything again. A refused message (AE/AR) rolls back its
effects, then its row is written on its own, so a resend gets the same refusal (only a "resend" refusal,
a record locked by a concurrent message, is not kept). The raw message is never stored: only its type, a
SHA-256 digest of its text without MSH-7 (to tell a true repeat from a reused control id, which is refused)
and the ACK sent back (which carries the sender's header fields and our verdict, no patient data). Rows
older than `PRM_HL7_RETENTION_DAYS` are purged by the worker (`domain.hl7.retention`).
"""

from __future__ import annotations

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base, TenantScoped

MAX_CONTROL_ID_LENGTH = 199  # MSH-10 is an ST of at most 199 characters in v2.5+
MAX_HD_LENGTH = 227  # MSH-3/MSH-4 (HD): at most 227 characters


class Hl7Message(TenantScoped, Base):
    """A received HL7 v2 message: its control id, what it was and the ACK it got (AA, AE or AR)."""

    __tablename__ = "hl7_messages"
    __table_args__ = (
        # MSH-10 is unique per sending application and facility (MSH-3/MSH-4): two feeds may use the same ids.
        UniqueConstraint(
            "tenant_id",
            "sending_application",
            "sending_facility",
            "control_id",
            name="uq_hl7_messages_tenant_sender_control_id",
        ),
        Index("ix_hl7_messages_created_at", "created_at"),  # the retention purge's oldest-first batches
    )

    sending_application: Mapped[str] = mapped_column(String(MAX_HD_LENGTH), nullable=False, server_default="")
    sending_facility: Mapped[str] = mapped_column(String(MAX_HD_LENGTH), nullable=False, server_default="")
    control_id: Mapped[str] = mapped_column(String(MAX_CONTROL_ID_LENGTH), nullable=False)
    message_type: Mapped[str] = mapped_column(String(16), nullable=False)  # e.g. ADT^A03
    digest: Mapped[str] = mapped_column(String(64), nullable=False)
    ack_code: Mapped[str] = mapped_column(String(2), nullable=False)
    ack: Mapped[str] = mapped_column(Text, nullable=False)
