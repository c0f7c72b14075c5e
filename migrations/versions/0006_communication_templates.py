"""communication templates: the templates a tenant defines, next to the built-in ones

Revision ID: 0006_communication_templates
Revises: 0005_tickets_analytics
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_communication_templates"
down_revision: str | None = "0005_tickets_analytics"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "communication_templates",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("variables", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "channel IN ('whatsapp', 'sms', 'email')", name=op.f("ck_communication_templates_channel")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_communication_templates_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_communication_templates")),
        sa.UniqueConstraint("tenant_id", "key", name="uq_communication_templates_tenant_key"),
    )
    op.create_index(
        op.f("ix_communication_templates_tenant_id"), "communication_templates", ["tenant_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_communication_templates_tenant_id"), table_name="communication_templates")
    op.drop_table("communication_templates")
