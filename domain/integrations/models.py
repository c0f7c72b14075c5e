"""Integration clients and their secrets.

These rows carry `tenant_id` but are not `TenantScoped`: the token endpoint finds a client by its id (or a
secret by its hash) before any tenant is known, since the client is what names the tenant. Every
administrative query filters by tenant explicitly (`domain.integrations.service`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, CheckConstraint, DateTime, ForeignKey, Index, String, false
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base, TimestampMixin


class IntegrationClient(TimestampMixin, Base):
    """A system of one tenant allowed to call the integration endpoints of its scopes."""

    __tablename__ = "integration_clients"
    __table_args__ = (
        Index("uq_integration_clients_client_id", "client_id", unique=True),
        Index("ix_integration_clients_tenant_id", "tenant_id"),
        CheckConstraint("cardinality(scopes) >= 1", name="has_scopes"),
        CheckConstraint("jwks IS NULL OR jwks_uri IS NULL", name="one_key_source"),
    )

    id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    )
    client_id: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(16)), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # -- SMART Backend Services (private_key_jwt): the client's public keys, inline or where to fetch them --
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    jwks_uri: Mapped[str | None] = mapped_column(String(2000))

    # ---- HL7 v2 feed settings (domain.hl7.feed) ------------------------------------------------------------
    # The zone an HL7 time without an offset is read in (IANA name); None: the tenant's.
    timezone: Mapped[str | None] = mapped_column(String(64))
    # The sender's local codes mapped onto ours, per kind: {"language": {"SPANISH": "es"}, "sex": {...},
    # "appointment_type": {...}} (keys upper-case; `domain.integrations.schemas.CodeMaps`).
    code_maps: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, default=dict, server_default="{}"
    )
    # Message types this receiver does not use: accepted and ignored (AA, noted) when true, AR when false.
    ignore_unsupported_messages: Mapped[bool] = mapped_column(
        nullable=False, default=False, server_default=false()
    )
    # ---- end of HL7 v2 feed settings -----------------------------------------------------------------------


class IntegrationClientSecret(TimestampMixin, Base):
    """One secret of a client. A client may hold several active secrets at once, so a rotation has no
    downtime: add the new one, move the EHR to it, revoke the old one."""

    __tablename__ = "integration_client_secrets"
    __table_args__ = (
        Index("uq_integration_client_secrets_secret_hash", "secret_hash", unique=True),
        Index("ix_integration_client_secrets_client", "integration_client_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    integration_client_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("integration_clients.id", ondelete="CASCADE"), nullable=False
    )
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hint: Mapped[str] = mapped_column(String(8), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IntegrationClientAssertion(Base):
    """The `jti` of a client assertion already traded for a token: the primary key refuses its replay.
    Rows are deleted once the assertion has expired (it could not be accepted again anyway)."""

    __tablename__ = "integration_client_assertions"
    __table_args__ = (Index("ix_integration_client_assertions_expires_at", "expires_at"),)

    integration_client_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("integration_clients.id", ondelete="CASCADE"), primary_key=True
    )
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
