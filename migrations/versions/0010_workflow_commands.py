"""workflow commands: signals that follow a database change, recorded in its transaction (an outbox)

A reschedule, a cancellation, a ticket's new status or a patient's reply used to be signalled after the
commit and lost when Temporal was down. `workflow_commands` holds them until they are delivered
(`core.workflow_commands`); the partial index serves the relay's scan of pending commands, and
`ix_workflow_commands_workflow_pending` its per-workflow ordering check.

Revision ID: 0010_workflow_commands
Revises: 0009_whatsapp_content_templates
Create Date: 2026-12-01 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_workflow_commands"
down_revision: str | None = "0009_whatsapp_content_templates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workflow_commands",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column(
            "tenant_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("tenants.id", ondelete="CASCADE", name="fk_workflow_commands_tenant_id_tenants"),
            nullable=False,
        ),
        sa.Column("workflow_id", sa.String(200), nullable=False),
        sa.Column("signal", sa.String(100), nullable=False),
        sa.Column("arg", postgresql.JSONB(), nullable=False),
        sa.Column("start_workflow", sa.String(100)),
        sa.Column("start_input", postgresql.JSONB()),
        sa.Column("search_attributes", postgresql.JSONB()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("outcome", sa.String(20)),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.String(200)),
        sa.PrimaryKeyConstraint("id", name="pk_workflow_commands"),
    )
    op.create_index(
        "ix_workflow_commands_pending",
        "workflow_commands",
        ["id"],
        postgresql_where=sa.text("delivered_at IS NULL"),
    )
    op.create_index(
        "ix_workflow_commands_workflow_pending",
        "workflow_commands",
        ["workflow_id", "id"],
        postgresql_where=sa.text("delivered_at IS NULL"),
    )
    op.create_index("ix_workflow_commands_tenant_id", "workflow_commands", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("workflow_commands")
