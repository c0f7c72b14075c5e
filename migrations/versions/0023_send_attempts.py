"""send attempts: the send step commits its attempt before it calls the provider

`communications.send_attempt` (the attempt's key) and `send_attempt_at` are set, in their own transaction,
before a message is handed to Twilio or SendGrid, and cleared when the provider's answer is recorded. A
worker that dies in between leaves them set: the retry then waits for the provider's status callback (which
carries the key) instead of sending again, and sends again only once `PRM_SEND_RESOLVE_SECONDS` pass without
a word. The status stays `queued` meanwhile, so the API's status values do not change.

Existing rows: no attempt is in flight (both NULL).

Revision ID: 0023_send_attempts
Revises: 0022_one_road_to_temporal
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_send_attempts"
down_revision: str | None = "0022_one_road_to_temporal"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the attempt's key and start time to `communications`."""
    op.add_column("communications", sa.Column("send_attempt", sa.String(length=32), nullable=True))
    op.add_column("communications", sa.Column("send_attempt_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop them."""
    op.drop_column("communications", "send_attempt_at")
    op.drop_column("communications", "send_attempt")
