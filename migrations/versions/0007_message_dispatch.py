"""message dispatch: every outbound message goes through its delivery workflow, and lost starts are found

`communications.delivery_started_at` is stamped by the delivery workflow's first step; an unsent outbound
message without it lost its workflow start, and the reconciler starts it (partial index
`ix_communications_undispatched`).

Existing rows: messages already sent, failed or received, and those created through the API (which had a
delivery workflow from the start), count as started. Unsent messages created by journeys and reminders
before this change were sent inline right after their commit; any still queued were lost, and the
reconciler now hands them to a delivery workflow.

Revision ID: 0007_message_dispatch
Revises: 0006_communication_templates
Create Date: 2026-11-24 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_message_dispatch"
down_revision: str | None = "0006_communication_templates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNDISPATCHED = (
    "delivery_started_at IS NULL AND direction = 'outbound' AND status IN ('pending', 'scheduled', 'queued')"
)


def upgrade() -> None:
    op.add_column(
        "communications", sa.Column("delivery_started_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        """
        UPDATE communications SET delivery_started_at = created_at
        WHERE NOT (direction = 'outbound' AND status IN ('pending', 'scheduled', 'queued'))
           OR workflow_id LIKE 'communication-%'
        """
    )
    op.create_index(
        "ix_communications_undispatched",
        "communications",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text(UNDISPATCHED),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_communications_undispatched", table_name="communications", postgresql_where=sa.text(UNDISPATCHED)
    )
    op.drop_column("communications", "delivery_started_at")
