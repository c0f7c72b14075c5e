"""hl7 messages retention: an index on `hl7_messages.created_at`

The worker purges the records of HL7 v2 messages older than `PRM_HL7_RETENTION_DAYS` in small batches
(`domain.hl7.retention`); each batch finds its oldest rows through this index instead of scanning the table.

Revision ID: 0020_hl7_messages_retention
Revises: 0017_tenant_change_notify
Create Date: 2026-12-01 21:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020_hl7_messages_retention"
down_revision: str | None = "0017_tenant_change_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_hl7_messages_created_at", "hl7_messages", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_hl7_messages_created_at", table_name="hl7_messages")
