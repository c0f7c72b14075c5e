"""The patient record and the per-channel consent it carries."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base, TenantScoped, Versioned
from domain.enums import Channel, Gender, PatientStatus, sql_in
from domain.identifiers import ExternalIdentifier, owner_column


class Patient(Versioned, TenantScoped, Base):
    """A person the clinic cares for. Merged duplicates stay as inactive records pointing at the survivor."""

    __tablename__ = "patients"
    __table_args__ = (
        UniqueConstraint("tenant_id", "mrn", name="uq_patients_tenant_mrn"),
        CheckConstraint(f"status IN ({sql_in(PatientStatus)})", name="status"),
        CheckConstraint(f"gender IS NULL OR gender IN ({sql_in(Gender)})", name="gender"),
        CheckConstraint(
            f"preferred_channel IS NULL OR preferred_channel IN ({sql_in(Channel)})", name="preferred_channel"
        ),
        CheckConstraint("merged_into_id IS NULL OR merged_into_id <> id", name="not_merged_into_self"),
        Index(
            "ix_patients_phone_trgm",
            "phone_primary",
            postgresql_using="gin",
            postgresql_ops={"phone_primary": "gin_trgm_ops"},
        ),
        # Cohort criteria on the patient's row (age, gender, status, last visit) read from the index alone.
        Index(
            "ix_patients_tenant_dob",
            "tenant_id",
            "date_of_birth",
            postgresql_include=["id", "gender", "status", "merged_into_id", "last_completed_visit_at"],
        ),
        Index("ix_patients_tenant_phone", "tenant_id", "phone_primary"),
        Index("ix_patients_tenant_email", "tenant_id", text("lower(email_primary)")),
        Index("ix_patients_tenant_status_created", "tenant_id", "status", "created_at"),
        # MRN prefix search (`LIKE 'MRN-00%'`) and the default list order, at a million patients.
        Index(
            "ix_patients_tenant_mrn_pattern", "tenant_id", "mrn", postgresql_ops={"mrn": "text_pattern_ops"}
        ),
        Index("ix_patients_tenant_name", "tenant_id", "last_name", "first_name", "id"),
        # Name search's exact and prefix tiers (domain.patients.name_search): one range read, in order.
        Index("ix_patients_tenant_first_key", "tenant_id", "first_name_key", "last_name_key", "id"),
        Index("ix_patients_tenant_last_key", "tenant_id", "last_name_key", "first_name_key", "id"),
    )

    mrn: Mapped[str] = mapped_column(String(64), nullable=False)
    first_name: Mapped[str] = mapped_column(String(100), nullable=False)
    middle_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100), nullable=False)
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(String(16))
    phone_primary: Mapped[str | None] = mapped_column(String(20))
    phone_secondary: Mapped[str | None] = mapped_column(String(20))
    email_primary: Mapped[str | None] = mapped_column(String(254))
    address_line1: Mapped[str | None] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str | None] = mapped_column(String(100))
    preferred_language: Mapped[str | None] = mapped_column(String(16))
    preferred_channel: Mapped[str | None] = mapped_column(String(16))
    # The patient's own time zone for quiet hours; falls back to the tenant's.
    timezone: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PatientStatus.ACTIVE.value)
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("patients.id", ondelete="SET NULL")
    )
    merged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The start of the latest completed appointment, kept by triggers on appointments (migration 0032), so
    # a cohort's `last_visit` reads the patient's row; never written here (nor raising `version`).
    last_completed_visit_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    meta_data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    # The names as search compares them: unaccented, lower-cased, spaces collapsed (`prm_name_key`, migration
    # 0012), in the "C" collation so one btree serves equality, prefix ranges and the order of results.
    first_name_key: Mapped[str] = mapped_column(
        Text(collation="C"), Computed("prm_name_key(first_name)", persisted=True)
    )
    last_name_key: Mapped[str] = mapped_column(
        Text(collation="C"), Computed("prm_name_key(last_name)", persisted=True)
    )


def full_name_expression(model: type[Patient]) -> Any:
    """`lower(first_name || ' ' || last_name)`: the expression name search and its trigram index share."""
    return func.lower(model.first_name.op("||")(literal_column("' '")).op("||")(model.last_name))


# Trigram indexes keep name and email search fast at a million patients.
Index(
    "ix_patients_full_name_trgm",
    full_name_expression(Patient).label("full_name"),
    postgresql_using="gin",
    postgresql_ops={"full_name": "gin_trgm_ops"},
)
Index(
    "ix_patients_email_trgm",
    func.lower(Patient.email_primary).label("email_lower"),
    postgresql_using="gin",
    postgresql_ops={"email_lower": "gin_trgm_ops"},
)


# Every distinct name key of a tenant (kept by statement triggers on `patients`, migration 0012): name
# search looks a misspelt word up here (tens of thousands of terms, not a million rows): its variants one
# edit away by primary key, the names containing it through the trigram GIN index.
patient_name_terms = Table(
    "patient_name_terms",
    Base.metadata,
    Column(
        "tenant_id", PG_UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("term", Text(collation="C"), primary_key=True),
    Index(
        "ix_patient_name_terms_trgm", "term", postgresql_using="gin", postgresql_ops={"term": "gin_trgm_ops"}
    ),
)


class ChannelConsent(TenantScoped, Base):
    """A patient's opt-out (or opt-back-in) for one channel, as their STOP / START replies set it."""

    __tablename__ = "channel_consents"
    __table_args__ = (
        UniqueConstraint("patient_id", "channel", name="uq_channel_consents_patient_channel"),
        CheckConstraint(f"channel IN ({sql_in(Channel)})", name="channel"),
    )

    patient_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("patients.id", ondelete="CASCADE"), nullable=False
    )
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    opted_out: Mapped[bool] = mapped_column(nullable=False, default=False)
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source: Mapped[str | None] = mapped_column(String(32))


class PatientIdentifier(ExternalIdentifier, Base):
    """An identifier another system gives the patient (an EHR's MRN, a national id); unique per tenant."""

    __tablename__ = "patient_identifiers"
    __owner__ = "patient"

    patient_id: Mapped[uuid.UUID] = owner_column("patients")


# FHIR searches page in `_lastUpdated` order (and EHRs sync by it): the tenant's rows by last change.
Index("ix_patients_tenant_updated", Patient.tenant_id, Patient.updated_at, Patient.id)
