"""The one shape of the tables of external identifiers (patients', practitioners', appointments'): an
identifier another system gives one of the tenant's records, `system` saying whose and `value` which, unique
per tenant so one external identifier names one record (imports upsert by it; `domain.fhir.identifiers`
reads and writes them)."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from core.database import TenantScoped


class ExternalIdentifier(TenantScoped):
    """An external identifier of one record. A table of them names its owner (`__owner__ = "patient"`: a
    column `patient_id`, declared with `owner_column("patients")`); the unique key and the owner's index
    follow from the table's name."""

    __tablename__: str  # each table names its own
    __owner__: ClassVar[str]

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        table = cls.__tablename__
        return (
            UniqueConstraint("tenant_id", "system", "value", name=f"uq_{table}_tenant_system_value"),
            Index(f"ix_{table}_{cls.__owner__}", f"{cls.__owner__}_id"),
        )

    system: Mapped[str] = mapped_column(String(255), nullable=False)
    value: Mapped[str] = mapped_column(String(255), nullable=False)


def owner_column(table: str) -> Mapped[uuid.UUID]:
    """The identifier's owner: a row of `table`, whose deletion deletes its identifiers."""
    return mapped_column(PG_UUID(as_uuid=True), ForeignKey(f"{table}.id", ondelete="CASCADE"), nullable=False)
