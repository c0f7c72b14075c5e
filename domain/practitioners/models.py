"""The practitioner record."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import CheckConstraint, Index, String, UniqueConstraint, func, literal_column
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base, TenantScoped, Versioned
from domain.enums import Gender, sql_in
from domain.identifiers import ExternalIdentifier, owner_column


class Practitioner(Versioned, TenantScoped, Base):
    """A clinician who sees patients and owns time slots."""

    __tablename__ = "practitioners"
    __table_args__ = (
        UniqueConstraint("tenant_id", "license_number", name="uq_practitioners_tenant_license"),
        CheckConstraint(f"gender IS NULL OR gender IN ({sql_in(Gender)})", name="gender"),
        Index("ix_practitioners_tenant_speciality", "tenant_id", "speciality"),
    )

    first_name: Mapped[str] = mapped_column(String(100), nullable=False)
    middle_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100), nullable=False)
    gender: Mapped[str | None] = mapped_column(String(16))
    qualification: Mapped[str | None] = mapped_column(String(200))
    speciality: Mapped[str | None] = mapped_column(String(100))
    sub_speciality: Mapped[str | None] = mapped_column(String(100))
    license_number: Mapped[str | None] = mapped_column(String(64))
    registration_number: Mapped[str | None] = mapped_column(String(64))
    phone_primary: Mapped[str | None] = mapped_column(String(20))
    email_primary: Mapped[str | None] = mapped_column(String(254))
    is_active: Mapped[bool] = mapped_column(nullable=False, default=True)
    meta_data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)


Index(
    "ix_practitioners_full_name_trgm",
    func.lower(
        Practitioner.first_name.op("||")(literal_column("' '")).op("||")(Practitioner.last_name)
    ).label("full_name"),
    postgresql_using="gin",
    postgresql_ops={"full_name": "gin_trgm_ops"},
)


class PractitionerIdentifier(ExternalIdentifier, Base):
    """An identifier another system gives the practitioner (an EHR's id, an NPI); unique per tenant."""

    __tablename__ = "practitioner_identifiers"
    __owner__ = "practitioner"

    practitioner_id: Mapped[uuid.UUID] = owner_column("practitioners")
