"""sender pacing: each sender's next free moment

`sender_pacing`: one row per sender (`<channel>:<sending address>`), its `next_free` moment; campaign
messages wait for it, interactive ones push it on (`domain.communications.pacing`).

Revision ID: 0028_sender_pacing
Revises: 0027_campaign_recurrence
Create Date: 2026-12-07 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028_sender_pacing"
down_revision: str | None = "0027_campaign_recurrence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `sender_pacing`."""
    op.create_table(
        "sender_pacing",
        sa.Column("sender", sa.String(length=200), nullable=False),
        sa.Column("next_free", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sender", name=op.f("pk_sender_pacing")),
    )


def downgrade() -> None:
    """Drop `sender_pacing`."""
    op.drop_table("sender_pacing")
