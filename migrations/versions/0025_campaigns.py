"""campaigns: a cohort enrolled into a journey, and its frozen members

`campaigns`: one per launch (`uq_campaigns_tenant_idempotency_key` for repeated launches), its status, start
time, daily send window and pace. `campaign_members`: one row per patient frozen at the start
(`uq_campaign_members_campaign_patient`), its state and skip reason, and the journey instance it got;
`ix_campaign_members_pending` serves the next batch. A cohort or a journey a campaign names cannot be
deleted (RESTRICT). `trg_campaigns_prm_metrics` tells the real-time stream of each batch.

Revision ID: 0025_campaigns
Revises: 0024_cohorts
Create Date: 2026-12-06 21:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025_campaigns"
down_revision: str | None = "0024_cohorts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CAMPAIGN_STATUSES = "'scheduled', 'running', 'paused', 'completed', 'cancelled', 'failed'"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    ]


def upgrade() -> None:
    """Create `campaigns` and `campaign_members`."""
    op.create_table(
        "campaigns",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("cohort_id", sa.UUID(), nullable=False),
        sa.Column("journey_id", sa.UUID(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("template_name", sa.String(length=100), nullable=True),
        sa.Column("message_text", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("send_window_start", sa.Time(), nullable=True),
        sa.Column("send_window_end", sa.Time(), nullable=True),
        sa.Column("pace_per_minute", sa.Integer(), nullable=True),
        sa.Column("member_count", sa.Integer(), nullable=True),
        sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_batch_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_reason", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(f"status IN ({CAMPAIGN_STATUSES})", name=op.f("ck_campaigns_status")),
        sa.CheckConstraint(
            "pace_per_minute IS NULL OR pace_per_minute > 0", name=op.f("ck_campaigns_pace_positive")
        ),
        sa.CheckConstraint(
            "(journey_id IS NULL) <> (channel IS NULL)", name=op.f("ck_campaigns_journey_or_message")
        ),
        sa.CheckConstraint(
            "(send_window_start IS NULL) = (send_window_end IS NULL)",
            name=op.f("ck_campaigns_send_window_both_or_neither"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_campaigns_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["cohort_id"], ["cohorts.id"], name=op.f("fk_campaigns_cohort_id_cohorts"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["journey_id"],
            ["journeys.id"],
            name=op.f("fk_campaigns_journey_id_journeys"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index(op.f("ix_campaigns_tenant_id"), "campaigns", ["tenant_id"], unique=False)
    op.create_index(
        "uq_campaigns_tenant_idempotency_key",
        "campaigns",
        ["tenant_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "campaign_members",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("skip_reason", sa.String(length=32), nullable=True),
        sa.Column("journey_instance_id", sa.UUID(), nullable=True),
        sa.Column("communication_id", sa.UUID(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "state IN ('pending', 'enrolled', 'sent', 'skipped')", name=op.f("ck_campaign_members_state")
        ),
        sa.CheckConstraint(
            "skip_reason IS NULL OR skip_reason IN "
            "('already_on_journey', 'inactive', 'merged', 'opted_out', 'no_contact')",
            name=op.f("ck_campaign_members_skip_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_campaign_members_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_members_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_campaign_members_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["journey_instance_id"],
            ["journey_instances.id"],
            name=op.f("fk_campaign_members_journey_instance_id_journey_instances"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["communication_id"],
            ["communications.id"],
            name=op.f("fk_campaign_members_communication_id_communications"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_members")),
        sa.UniqueConstraint("campaign_id", "patient_id", name="uq_campaign_members_campaign_patient"),
    )
    op.create_index(op.f("ix_campaign_members_tenant_id"), "campaign_members", ["tenant_id"], unique=False)
    op.create_index(
        "ix_campaign_members_pending",
        "campaign_members",
        ["campaign_id", "patient_id"],
        unique=False,
        postgresql_where=sa.text("state = 'pending'"),
    )
    # The real-time stream hears of each batch (its `last_batch_at`): the tenant id only, as for the others.
    op.execute(
        "CREATE TRIGGER trg_campaigns_prm_metrics AFTER INSERT OR UPDATE OR DELETE ON campaigns "
        "FOR EACH ROW EXECUTE FUNCTION prm_notify_metrics()"
    )


def downgrade() -> None:
    """Drop them."""
    op.execute("DROP TRIGGER IF EXISTS trg_campaigns_prm_metrics ON campaigns")
    op.drop_table("campaign_members")
    op.drop_table("campaigns")
