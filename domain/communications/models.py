"""The communication record: one message, outbound or inbound, with its delivery state."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base, TenantScoped, TimestampMixin
from domain.enums import Channel, CommunicationStatus, Direction, sql_in


class Communication(TenantScoped, Base):
    """A message. Recorded before the provider is called, under a unique key, so retries never send twice."""

    __tablename__ = "communications"
    __table_args__ = (
        CheckConstraint(f"channel IN ({sql_in(Channel)})", name="channel"),
        CheckConstraint(f"status IN ({sql_in(CommunicationStatus)})", name="status"),
        CheckConstraint(f"direction IN ({sql_in(Direction)})", name="direction"),
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_communications_tenant_idempotency_key"),
        UniqueConstraint("provider_message_id", name="uq_communications_provider_message_id"),
        Index("ix_communications_search", "search_vector", postgresql_using="gin"),
        # Newest first within a patient; it carries `search_vector` (and the tenant) for the same reason
        # as the tenant's index below: a search in one patient's messages reads no rows (migration 0035).
        Index(
            "ix_communications_patient_created",
            "patient_id",
            "created_at",
            "id",
            postgresql_include=["tenant_id", "search_vector"],
        ),
        # Newest first within a tenant (lists, search). It carries `search_vector`, so a search for common
        # words tests the newest messages without reading their rows (index-only; migration 0012).
        Index(
            "ix_communications_tenant_created",
            "tenant_id",
            "created_at",
            "id",
            postgresql_include=["search_vector"],
        ),
        Index("ix_communications_journey_instance", "journey_instance_id"),
    )

    patient_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("patients.id", ondelete="CASCADE")
    )
    journey_instance_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("journey_instances.id", ondelete="SET NULL")
    )
    appointment_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("appointments.id", ondelete="SET NULL")
    )
    direction: Mapped[str] = mapped_column(String(16), nullable=False, default=Direction.OUTBOUND.value)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    recipient: Mapped[str | None] = mapped_column(String(254))
    sender: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(String(300))
    message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    template_name: Mapped[str | None] = mapped_column(String(100))
    template_vars: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    # The language the message was rendered in (its template's variant); None for literal text.
    language: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=CommunicationStatus.PENDING.value)
    is_urgent: Mapped[bool] = mapped_column(nullable=False, default=False)
    scheduled_for: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error_code: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(100))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    workflow_id: Mapped[str | None] = mapped_column(String(100))
    # The send step's attempt in flight: committed before the provider is called, cleared when its answer
    # is recorded. Its key travels to the provider and comes back on the provider's status callbacks, so an
    # attempt a crash left unfinished is settled by the callback, never by sending again at once.
    send_attempt: Mapped[str | None] = mapped_column(String(32))
    send_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    meta_data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(
            "to_tsvector('simple', coalesce(subject, '') || ' ' || coalesce(message, ''))", persisted=True
        ),
    )


class WebhookEvent(TimestampMixin, Base):
    """A provider event already processed (SendGrid's `sg_event_id`, Twilio's idempotency token).

    Not tenant-scoped: it is recorded before the event's tenant is known, and holds ids only (no PHI)."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("provider", "event_id", name="uq_webhook_events_provider_event_id"),)

    id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    event_id: Mapped[str] = mapped_column(String(200), nullable=False)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SenderPacing(Base):
    """A sender's turn: the moment its next message may be handed to its provider (`pacing`).

    Not tenant-scoped: a sending number or email account is shared by every tenant, and so is its
    throughput. Holds no PHI (a channel and the clinic's own sending address)."""

    __tablename__ = "sender_pacing"

    sender: Mapped[str] = mapped_column(String(200), primary_key=True)
    next_free: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class CommunicationTemplate(TenantScoped, Base):
    """A message template a tenant defines, next to the built-in ones; `key` is its id in the API, and a
    key has one row (variant) per `language` (a normalised BCP 47 tag), the database holding that unique.

    `variables` are derived from the subject and body (never given by clients), and a key never clashes with a
    built-in template's id (checked when it is created). A WhatsApp template may name the Twilio Content
    template approved for it (`whatsapp_content_sid`), which is what WhatsApp accepts outside its 24-hour
    window; `whatsapp_content_variables` are the variables whose values fill its `{{1}}`, `{{2}}`, ..."""

    __tablename__ = "communication_templates"
    __table_args__ = (
        CheckConstraint(f"channel IN ({sql_in(Channel)})", name="channel"),
        CheckConstraint(
            "whatsapp_content_sid IS NULL "
            "OR (channel = 'whatsapp' AND whatsapp_content_sid ~ '^HX[0-9a-f]{32}$')",
            name="whatsapp_content_sid",
        ),
        CheckConstraint("language ~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$'", name="language"),
        UniqueConstraint(
            "tenant_id", "key", "language", name="uq_communication_templates_tenant_key_language"
        ),
    )

    key: Mapped[str] = mapped_column(String(100), nullable=False)
    language: Mapped[str] = mapped_column(String(16), nullable=False, server_default=text("'en'"))
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    category: Mapped[str] = mapped_column(String(32), nullable=False)
    subject: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    body: Mapped[str] = mapped_column(Text, nullable=False)
    variables: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    is_active: Mapped[bool] = mapped_column(nullable=False, default=True, server_default=text("true"))
    whatsapp_content_sid: Mapped[str | None] = mapped_column(String(34))
    whatsapp_content_variables: Mapped[list[str]] = mapped_column(
        JSONB, nullable=False, default=list, server_default=text("'[]'::jsonb")
    )


# FHIR searches page in `_lastUpdated` order (and EHRs sync by it): the tenant's rows by last change.
Index("ix_communications_tenant_updated", Communication.tenant_id, Communication.updated_at, Communication.id)
