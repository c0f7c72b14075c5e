"""hl7 messages

`hl7_messages`: one row per HL7 v2 message a tenant's EHR sent (`POST /hl7/v2`), unique per (tenant,
control id), written in the transaction of the message's effects, so a repeated MSH-10 changes nothing and
is answered with the stored ACK. The raw message is not stored, only its digest.

Revision ID: 0016_hl7_messages
Revises: 0015_template_languages
Create Date: 2026-12-01 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_hl7_messages"
down_revision: str | None = "0015_template_languages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hl7_messages",
        sa.Column("control_id", sa.String(length=199), nullable=False),
        sa.Column("message_type", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("ack_code", sa.String(length=2), nullable=False),
        sa.Column("ack", sa.Text(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_hl7_messages_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hl7_messages")),
        sa.UniqueConstraint("tenant_id", "control_id", name="uq_hl7_messages_tenant_control_id"),
    )
    op.create_index(op.f("ix_hl7_messages_tenant_id"), "hl7_messages", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_hl7_messages_tenant_id"), table_name="hl7_messages")
    op.drop_table("hl7_messages")
