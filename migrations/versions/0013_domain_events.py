"""domain events and the journey starts they trigger

`domain_events` is the transactional outbox of what happened to a tenant's records (`core.events`): the
services insert a row in the transaction of the change; the worker's trigger dispatcher takes undispatched
rows in id order (`ix_domain_events_undispatched`), and the dry run reads a tenant's recent ones
(`ix_domain_events_tenant_occurred`). `uq_domain_events_tenant_dedupe_key` makes a repeated external
message (an HL7 control id) emit once.

`journey_trigger_starts` is what the dispatcher decided: one row per (journey, patient, event), and the
journey's repeat policy held by the database: a partial unique index for `never` and for
`once_per_record`, an exclusion constraint over the cool-down window for `after_cooldown` (btree_gist is
created by 0001). A pending row waits for its trigger's delay (`ix_journey_trigger_starts_due`).

Revision ID: 0013_domain_events
Revises: 0012_search_indexes
Create Date: 2026-12-01 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013_domain_events"
down_revision: str | None = "0012_search_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_TYPES = (
    "patient.registered",
    "patient.updated",
    "patient.merged",
    "appointment.booked",
    "appointment.rescheduled",
    "appointment.checked_in",
    "appointment.completed",
    "appointment.no_show",
    "appointment.cancelled",
    "ticket.resolved",
    "message.received",
    "encounter.admitted",
    "encounter.discharged",
)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "domain_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("patient_id", sa.UUID(), nullable=True),
        sa.Column("subject_type", sa.String(32), nullable=True),
        sa.Column("subject_id", sa.String(100), nullable=True),
        sa.Column("facts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatch_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("dispatch_error", sa.String(200), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            f"type IN ({', '.join(repr(t) for t in EVENT_TYPES)})", name=op.f("ck_domain_events_type")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_domain_events_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_domain_events_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_domain_events")),
        sa.UniqueConstraint("tenant_id", "dedupe_key", name="uq_domain_events_tenant_dedupe_key"),
    )
    op.create_index(op.f("ix_domain_events_tenant_id"), "domain_events", ["tenant_id"], unique=False)
    op.create_index("ix_domain_events_patient", "domain_events", ["patient_id"], unique=False)
    op.create_index("ix_domain_events_tenant_occurred", "domain_events", ["tenant_id", "occurred_at"])
    op.create_index(
        "ix_domain_events_undispatched",
        "domain_events",
        ["id"],
        postgresql_where=sa.text("dispatched_at IS NULL"),
    )

    op.create_table(
        "journey_trigger_starts",
        sa.Column("journey_id", sa.UUID(), nullable=False),
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("record_key", sa.String(140), nullable=False),
        sa.Column("repeat_policy", sa.String(16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cooldown_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("instance_id", sa.UUID(), nullable=True),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('pending', 'started', 'skipped')", name=op.f("ck_journey_trigger_starts_status")
        ),
        sa.CheckConstraint(
            "repeat_policy IN ('never', 'once_per_record', 'after_cooldown')",
            name=op.f("ck_journey_trigger_starts_repeat_policy"),
        ),
        sa.ForeignKeyConstraint(
            ["journey_id"],
            ["journeys.id"],
            name=op.f("fk_journey_trigger_starts_journey_id_journeys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_journey_trigger_starts_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["domain_events.id"],
            name=op.f("fk_journey_trigger_starts_event_id_domain_events"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["journey_instances.id"],
            name=op.f("fk_journey_trigger_starts_instance_id_journey_instances"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_journey_trigger_starts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_trigger_starts")),
        sa.UniqueConstraint(
            "journey_id", "patient_id", "event_id", name="uq_journey_trigger_starts_journey_patient_event"
        ),
    )
    op.create_index(
        op.f("ix_journey_trigger_starts_tenant_id"), "journey_trigger_starts", ["tenant_id"], unique=False
    )
    op.create_index("ix_journey_trigger_starts_event", "journey_trigger_starts", ["event_id"])
    op.create_index(
        "ix_journey_trigger_starts_due",
        "journey_trigger_starts",
        ["due_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "uq_journey_trigger_starts_never",
        "journey_trigger_starts",
        ["journey_id", "patient_id"],
        unique=True,
        postgresql_where=sa.text("repeat_policy = 'never' AND status <> 'skipped'"),
    )
    op.create_index(
        "uq_journey_trigger_starts_once_per_record",
        "journey_trigger_starts",
        ["journey_id", "patient_id", "record_key"],
        unique=True,
        postgresql_where=sa.text("repeat_policy = 'once_per_record' AND status <> 'skipped'"),
    )
    op.execute(
        "ALTER TABLE journey_trigger_starts ADD CONSTRAINT ex_journey_trigger_starts_cooldown "
        "EXCLUDE USING gist (journey_id WITH =, patient_id WITH =, "
        "tstzrange(occurred_at, cooldown_until, '[)') WITH &&) "
        "WHERE (repeat_policy = 'after_cooldown' AND status <> 'skipped')"
    )


def downgrade() -> None:
    op.drop_table("journey_trigger_starts")
    op.drop_table("domain_events")
