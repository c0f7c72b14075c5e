"""campaign recurrence: a campaign that repeats on a Temporal Schedule, and its occurrences

`campaigns.every_days` and `cooldown_days` make a campaign a recurring definition; an occurrence names its
definition and the time its schedule fired for (`definition_id`, `scheduled_for`), one per fire
(`uq_campaigns_definition_scheduled_for`). Members get the skip reason `cooldown`, and workflow commands the
kind `schedule` (a Temporal Schedule's create, pause, unpause or delete, through the same outbox).

Revision ID: 0027_campaign_recurrence
Revises: 0026_audit_keyed_chain
Create Date: 2026-12-06 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027_campaign_recurrence"
down_revision: str | None = "0026_audit_keyed_chain"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SKIP_REASONS = "'already_on_journey', 'inactive', 'merged', 'opted_out', 'no_contact'"


def upgrade() -> None:
    """Add the recurrence columns, the occurrences' key, the `cooldown` reason and `schedule` commands."""
    op.add_column("campaigns", sa.Column("every_days", sa.Integer(), nullable=True))
    op.add_column("campaigns", sa.Column("cooldown_days", sa.Integer(), nullable=True))
    op.add_column("campaigns", sa.Column("definition_id", sa.UUID(), nullable=True))
    op.add_column("campaigns", sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True))
    op.create_foreign_key(
        op.f("fk_campaigns_definition_id_campaigns"),
        "campaigns",
        "campaigns",
        ["definition_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.create_check_constraint("every_days_positive", "campaigns", "every_days IS NULL OR every_days >= 1")
    op.create_check_constraint(
        "cooldown_of_a_definition",
        "campaigns",
        "cooldown_days IS NULL OR (every_days IS NOT NULL AND cooldown_days >= 0)",
    )
    op.create_check_constraint(
        "occurrence_of_a_definition",
        "campaigns",
        "(definition_id IS NULL) = (scheduled_for IS NULL) AND (definition_id IS NULL OR every_days IS NULL)",
    )
    op.create_index(
        "uq_campaigns_definition_scheduled_for",
        "campaigns",
        ["definition_id", "scheduled_for"],
        unique=True,
        postgresql_where=sa.text("definition_id IS NOT NULL"),
    )
    op.drop_constraint(op.f("ck_campaign_members_skip_reason"), "campaign_members", type_="check")
    op.create_check_constraint(
        "skip_reason",
        "campaign_members",
        f"skip_reason IS NULL OR skip_reason IN ({SKIP_REASONS}, 'cooldown')",
    )
    op.drop_constraint(op.f("ck_workflow_commands_kind"), "workflow_commands", type_="check")
    op.create_check_constraint(
        "kind", "workflow_commands", "kind IN ('start', 'signal', 'cancel', 'schedule')"
    )


def downgrade() -> None:
    """Drop them (occurrences stay, as one-off campaigns; schedule commands go)."""
    op.execute("DELETE FROM workflow_commands WHERE kind = 'schedule'")
    op.drop_constraint(op.f("ck_workflow_commands_kind"), "workflow_commands", type_="check")
    op.create_check_constraint("kind", "workflow_commands", "kind IN ('start', 'signal', 'cancel')")
    op.execute(
        "UPDATE campaign_members SET skip_reason = 'already_on_journey' WHERE skip_reason = 'cooldown'"
    )
    op.drop_constraint(op.f("ck_campaign_members_skip_reason"), "campaign_members", type_="check")
    op.create_check_constraint(
        "skip_reason", "campaign_members", f"skip_reason IS NULL OR skip_reason IN ({SKIP_REASONS})"
    )
    op.drop_index("uq_campaigns_definition_scheduled_for", table_name="campaigns")
    op.drop_constraint(op.f("ck_campaigns_occurrence_of_a_definition"), "campaigns", type_="check")
    op.drop_constraint(op.f("ck_campaigns_cooldown_of_a_definition"), "campaigns", type_="check")
    op.drop_constraint(op.f("ck_campaigns_every_days_positive"), "campaigns", type_="check")
    op.drop_constraint(op.f("fk_campaigns_definition_id_campaigns"), "campaigns", type_="foreignkey")
    op.drop_column("campaigns", "scheduled_for")
    op.drop_column("campaigns", "definition_id")
    op.drop_column("campaigns", "cooldown_days")
    op.drop_column("campaigns", "every_days")
