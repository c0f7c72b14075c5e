"""fhir history: every version of a patient, practitioner and appointment, kept for vread

`fhir_resource_versions` holds one row per (tenant, resource type, id, version): the record as it was at
that version (`to_jsonb` of its row), written by a trigger AFTER every INSERT and UPDATE of `patients`,
`practitioners` and `appointments`. The version it is keyed by is the one 0029's trigger gave the row, in
the same statement: whoever writes (the FHIR API, a transaction Bundle, the REST API, an HL7 feed, an
activity, a bulk statement), the version and its history are written together, in the writer's
transaction. `GET /fhir/R4/{type}/{id}/_history/{vid}` renders a past version from it.

The rows are PHI as the records are: scoped by tenant (and gone with the tenant), and gone with their record
when it is deleted (an AFTER DELETE trigger).

`domain_events.type` also takes `encounter.admission_cancelled` and `encounter.discharge_cancelled`, which
HL7 A11 and A13 emit.

Revision ID: 0031_fhir_history
Revises: 0030_hl7_feed_realism
Create Date: 2026-12-07 03:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0031_fhir_history"
down_revision: str | None = "0030_hl7_feed_realism"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_TYPES = (
    "patient.registered",
    "patient.updated",
    "patient.merged",
    "appointment.booked",
    "appointment.rescheduled",
    "appointment.checked_in",
    "appointment.completed",
    "appointment.no_show",
    "appointment.cancelled",
    "ticket.resolved",
    "message.received",
    "encounter.admitted",
    "encounter.discharged",
)
NEW_EVENT_TYPES = ("encounter.admission_cancelled", "encounter.discharge_cancelled")

HISTORY = {"patients": "Patient", "practitioners": "Practitioner", "appointments": "Appointment"}

RECORD_VERSION = """
CREATE OR REPLACE FUNCTION prm_record_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.version = OLD.version THEN
        RETURN NULL;  -- an update that is no new version of the record (a bookkeeping column)
    END IF;
    INSERT INTO fhir_resource_versions (id, tenant_id, resource_type, resource_id, version, record)
    VALUES (gen_random_uuid(), NEW.tenant_id, TG_ARGV[0], NEW.id, NEW.version, to_jsonb(NEW));
    RETURN NULL;
END
$$;
"""

FORGET_VERSIONS = """
CREATE OR REPLACE FUNCTION prm_forget_versions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM fhir_resource_versions
    WHERE tenant_id = OLD.tenant_id AND resource_type = TG_ARGV[0] AND resource_id = OLD.id;
    RETURN NULL;
END
$$;
"""

BACKFILL = """
INSERT INTO fhir_resource_versions (id, tenant_id, resource_type, resource_id, version, record)
SELECT gen_random_uuid(), t.tenant_id, '{resource_type}', t.id, t.version, to_jsonb(t) FROM {table} AS t
"""


def _event_types(types: Sequence[str]) -> None:
    op.drop_constraint(op.f("ck_domain_events_type"), "domain_events", type_="check")
    op.create_check_constraint(
        op.f("ck_domain_events_type"), "domain_events", f"type IN ({', '.join(repr(t) for t in types)})"
    )


def upgrade() -> None:
    """Create the history table and the triggers that fill it and empty it; take the new event types."""
    _event_types((*EVENT_TYPES, *NEW_EVENT_TYPES))
    op.create_table(
        "fhir_resource_versions",
        sa.Column("resource_type", sa.String(length=20), nullable=False),
        sa.Column("resource_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("record", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_fhir_resource_versions_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_resource_versions")),
        sa.UniqueConstraint(
            "tenant_id", "resource_type", "resource_id", "version", name="uq_fhir_resource_versions_version"
        ),
    )
    op.create_index(
        op.f("ix_fhir_resource_versions_tenant_id"), "fhir_resource_versions", ["tenant_id"], unique=False
    )
    op.execute(RECORD_VERSION)
    op.execute(FORGET_VERSIONS)
    for table, resource_type in HISTORY.items():
        op.execute(
            f"CREATE TRIGGER trg_{table}_history AFTER INSERT OR UPDATE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION prm_record_version('{resource_type}')"
        )
        op.execute(
            f"CREATE TRIGGER trg_{table}_forget_history AFTER DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION prm_forget_versions('{resource_type}')"
        )
        # The version each record has now is where its history starts.
        op.execute(BACKFILL.format(table=table, resource_type=resource_type))


def downgrade() -> None:
    """Drop the triggers, their functions and the table; refuse the new event types again."""
    types = ", ".join(repr(t) for t in NEW_EVENT_TYPES)
    op.execute(f"DELETE FROM domain_events WHERE type IN ({types})")  # noqa: S608 - constants
    _event_types(EVENT_TYPES)
    for table in HISTORY:
        op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_forget_history ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_history ON {table}")
    op.execute("DROP FUNCTION IF EXISTS prm_forget_versions()")
    op.execute("DROP FUNCTION IF EXISTS prm_record_version()")
    op.drop_index(op.f("ix_fhir_resource_versions_tenant_id"), table_name="fhir_resource_versions")
    op.drop_table("fhir_resource_versions")
