"""message search within one patient's messages reads an index, not each message's row

A search for a common word filtered by patient read every one of the patient's messages newest first
(about 1,300 at 5M messages) through `ix_communications_patient_created (patient_id, created_at)` and fetched
each row for its `search_vector`: 1,300 heap pages, 45 ms when they were not in shared buffers. The index
becomes `(patient_id, created_at, id) INCLUDE (tenant_id, search_vector)`, as the tenant's newest-first
index did in 0012, so that search is an index-only read of about 40 pages; every query that used the old
index (a patient's messages by date) can use this one. It is larger (1.3 GB instead of 0.2 GB at 5M
messages), and its build locks the table's writes: run it in a maintenance window.

Revision ID: 0035_message_search
Revises: 0034_analytics_at_commit
Create Date: 2026-12-07 06:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0035_message_search"
down_revision: str | None = "0034_analytics_at_commit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_communications_patient_created", table_name="communications")
    op.create_index(
        "ix_communications_patient_created",
        "communications",
        ["patient_id", "created_at", "id"],
        postgresql_include=["tenant_id", "search_vector"],
    )


def downgrade() -> None:
    op.drop_index("ix_communications_patient_created", table_name="communications")
    op.create_index("ix_communications_patient_created", "communications", ["patient_id", "created_at"])
