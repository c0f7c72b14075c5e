"""Past versions of the versioned records (Patient, Practitioner, Appointment), for FHIR's vread.

Each INSERT and UPDATE of one of these rows stores the row as it then is, keyed by tenant, resource type, id
and the version 0029's trigger gave it: a database trigger does it (migration 0031), in the same statement
as the change, so no write path (the FHIR API, transaction Bundles, the REST API, HL7 feeds, activities,
bulk statements such as a merge's redirection) can bump a version without leaving that version behind. A
merge is two such updates (the duplicate retired with a link to the survivor, what was linked to it moved
over), each a version of its own; the versions before it stay readable. The rows are PHI as the records
are: tenant-scoped (`TenantScoped`), deleted with their tenant and with their record.

A version is stored as its row and rendered as FHIR when read, through the same `domain.fhir.render` as the
current version (the identifiers an EHR gave the record are rendered as they are now: they are not part of
the row's version).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Integer, String, TextClause, UniqueConstraint, inspect, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.database import Base, TenantScoped, execute_tenant_bound, tenant_bound


class FhirResourceVersion(TenantScoped, Base):
    """One version of a patient, practitioner or appointment: its row as that version left it."""

    __tablename__ = "fhir_resource_versions"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "resource_type", "resource_id", "version", name="uq_fhir_resource_versions_version"
        ),
    )

    resource_type: Mapped[str] = mapped_column(String(20), nullable=False)
    resource_id: Mapped[uuid.UUID] = mapped_column(nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    record: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)


def _past_version_of(table: str) -> TextClause:
    """The row of `table` a stored version holds, typed as the table's row (`jsonb_populate_record`)."""
    return tenant_bound(
        text(
            f"SELECT (jsonb_populate_record(NULL::{table}, v.record)).* FROM fhir_resource_versions AS v "  # noqa: S608 - our table names
            "WHERE v.tenant_id = :tenant_id AND v.resource_type = :resource_type "
            "AND v.resource_id = :resource_id AND v.version = :version"
        )
    )


_PAST_VERSION = {table: _past_version_of(table) for table in ("patients", "practitioners", "appointments")}


async def past_version(
    session: AsyncSession, resource_type: str, model: Any, record_id: uuid.UUID, version: int
) -> Any | None:
    """The record `record_id` of `model` as it was at `version` (a transient object, never added to the
    session), or None when that version is not stored for the session's tenant."""
    statement = _PAST_VERSION[model.__table__.name]
    params = {"resource_type": resource_type, "resource_id": record_id, "version": version}
    row = (await execute_tenant_bound(session, statement, params)).first()
    if row is None:
        return None
    values = row._mapping
    columns = inspect(model).columns.items()
    return model(**{key: values[column.name] for key, column in columns if column.name in values})
