"""audit records wait in `audit_pending` until one appender chains them: writes no longer queue on the
tenant's chain lock

A write's audit record used to be chained in the write's own transaction: the tenant's advisory lock
(`prm_audit_chain_head`) was taken right before COMMIT and held through it, so every write of a tenant
waited for the one before to commit (15-18 of 16-19 busy API sessions waited there under load). Now the
write inserts its record into `audit_pending` (committed with the write or rolled back with it, no lock),
and the appender (`core.audit.chain_pending`: the API's audit buffer every second, the worker's
`audit-chain` job for the rest) moves waiting records into `audit_records` under the tenant's lock, in the
order they were taken: the chain's order is the order records reached it, about commit order.

`prm_app` may insert, read and delete waiting records (the appender deletes what it chains, in the same
transaction), never update them.

Revision ID: 0033_audit_pending
Revises: 0032_campaign_speed
Create Date: 2026-12-07 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0033_audit_pending"
down_revision: str | None = "0032_campaign_speed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `audit_pending`; `prm_app` may not update it."""
    op.create_table(
        "audit_pending",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_sub", sa.String(200), nullable=False),
        sa.Column("user_roles", postgresql.ARRAY(sa.String(20)), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("resource_type", sa.String(50), nullable=False),
        sa.Column("resource_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("patient_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_pending")),
    )
    # Default privileges (migration 0026) gave prm_app every right on the new table: a waiting record is
    # inserted and, once chained, deleted; never changed.
    op.execute(
        """
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'prm_app') THEN
                REVOKE UPDATE, TRUNCATE ON audit_pending FROM prm_app;
            END IF;
        END
        $$
        """
    )


def downgrade() -> None:
    """Drop `audit_pending`; refused while records wait in it (they would be lost)."""
    waiting = op.get_bind().scalar(sa.text("SELECT count(*) FROM audit_pending"))
    if waiting:
        raise RuntimeError(f"{waiting} audit record(s) wait in audit_pending: let the worker chain them")
    op.drop_table("audit_pending")
