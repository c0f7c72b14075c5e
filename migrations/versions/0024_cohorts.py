"""cohorts: saved patient selections by declarative criteria

`cohorts`: a tenant's named cohorts (name unique per tenant ignoring case, `uq_cohorts_tenant_name`) with
their `criteria` (JSONB, `domain.cohorts.schemas.CohortCriteria`); members are evaluated when asked, never
stored. `ix_appointments_tenant_patient_status_start`: the cohort criteria's per-patient visit lookups
(a completed appointment since a moment, an upcoming one) read one index range each.

Revision ID: 0024_cohorts
Revises: 0023_send_attempts
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0024_cohorts"
down_revision: str | None = "0023_send_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `cohorts` and the appointments index its criteria read."""
    op.create_table(
        "cohorts",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("criteria", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_cohorts_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cohorts")),
    )
    op.create_index(op.f("ix_cohorts_tenant_id"), "cohorts", ["tenant_id"], unique=False)
    op.create_index("uq_cohorts_tenant_name", "cohorts", ["tenant_id", sa.text("lower(name)")], unique=True)
    op.create_index(
        "ix_appointments_tenant_patient_status_start",
        "appointments",
        ["tenant_id", "patient_id", "status", "start_time"],
        unique=False,
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_appointments_tenant_patient_status_start", table_name="appointments")
    op.drop_index("uq_cohorts_tenant_name", table_name="cohorts")
    op.drop_index(op.f("ix_cohorts_tenant_id"), table_name="cohorts")
    op.drop_table("cohorts")
