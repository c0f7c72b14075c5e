"""audit records: the append-only, hash-chained trail of every access to patient data

`audit_records` holds one row per access (`core.audit`): who, which operation, which record and patient
(ids only), when, from where, and the outcome; `seq` numbers each tenant's records without gaps and
`prev_hash`/`hash` chain them. The database refuses to change the trail: a trigger raises on UPDATE and
DELETE (row by row) and on TRUNCATE, whoever asks. `uq_audit_records_tenant_id_seq` makes a forked chain
impossible to store; the other indexes serve `GET /audit`'s filters by patient and by time.

Revision ID: 0011_audit_records
Revises: 0010_workflow_commands
Create Date: 2026-12-12 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011_audit_records"
down_revision: str | None = "0010_workflow_commands"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSE_CHANGES = """
CREATE FUNCTION audit_records_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER trg_audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_refuse_change();
CREATE TRIGGER trg_audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_refuse_change();
"""


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_sub", sa.String(200), nullable=False),
        sa.Column("user_roles", postgresql.ARRAY(sa.String(20)), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("resource_type", sa.String(50), nullable=False),
        sa.Column("resource_id", postgresql.UUID(as_uuid=True)),
        sa.Column("patient_id", postgresql.UUID(as_uuid=True)),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("status_code", sa.SmallInteger()),
        sa.Column("request_id", sa.String(128)),
        sa.Column("client_address", sa.String(64)),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_records"),
    )
    op.create_index("uq_audit_records_tenant_id_seq", "audit_records", ["tenant_id", "seq"], unique=True)
    op.create_index("ix_audit_records_tenant_patient", "audit_records", ["tenant_id", "patient_id", "seq"])
    op.create_index("ix_audit_records_tenant_occurred_at", "audit_records", ["tenant_id", "occurred_at"])
    op.execute(REFUSE_CHANGES)


def downgrade() -> None:
    op.drop_table("audit_records")  # its triggers go with it
    op.execute("DROP FUNCTION audit_records_refuse_change()")
