"""waitlist: part of day on entries, one offer per entry per freed time, entries by patient

Revision ID: 0004_waitlist
Revises: 0003_communications
Create Date: 2026-11-25 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_waitlist"
down_revision: str | None = "0003_communications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "waitlist_entries",
        sa.Column("part_of_day", sa.String(length=16), server_default="any", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_waitlist_entries_part_of_day"),
        "waitlist_entries",
        "part_of_day IN ('any', 'morning', 'afternoon', 'evening')",
    )
    op.create_index("ix_waitlist_entries_patient", "waitlist_entries", ["patient_id"], unique=False)
    op.create_unique_constraint(
        "uq_waitlist_offers_slot_entry", "waitlist_offers", ["cancelled_appointment_id", "waitlist_entry_id"]
    )


def downgrade() -> None:
    op.drop_constraint("uq_waitlist_offers_slot_entry", "waitlist_offers", type_="unique")
    op.drop_index("ix_waitlist_entries_patient", table_name="waitlist_entries")
    op.drop_constraint(op.f("ck_waitlist_entries_part_of_day"), "waitlist_entries", type_="check")
    op.drop_column("waitlist_entries", "part_of_day")
