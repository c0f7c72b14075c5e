"""scheduling: no overlapping slots, booking conversations and slot holds, the waitlist

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 13:02:12.242691
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A practitioner's slots never overlap (btree_gist is created by 0001).
    op.execute(
        "ALTER TABLE time_slots ADD CONSTRAINT ex_time_slots_practitioner_overlap "
        "EXCLUDE USING gist (practitioner_id WITH =, tstzrange(start_time, end_time, '[)') WITH &&)"
    )
    op.create_table(
        "booking_conversations",
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("criteria", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("offered_slot_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("hold_minutes", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("appointment_id", sa.UUID(), nullable=True),
        sa.Column("workflow_id", sa.String(length=100), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "channel IN ('whatsapp', 'sms', 'email')", name=op.f("ck_booking_conversations_channel")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'booked', 'expired', 'closed')",
            name=op.f("ck_booking_conversations_status"),
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_booking_conversations_appointment_id_appointments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_booking_conversations_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_booking_conversations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_conversations")),
    )
    op.create_index(
        "ix_booking_conversations_patient_status",
        "booking_conversations",
        ["patient_id", "status"],
        unique=False,
    )
    op.create_index(
        op.f("ix_booking_conversations_tenant_id"), "booking_conversations", ["tenant_id"], unique=False
    )
    op.create_table(
        "waitlist_entries",
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("practitioner_id", sa.UUID(), nullable=True),
        sa.Column("speciality", sa.String(length=100), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("appointment_type", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("appointment_id", sa.UUID(), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('waiting', 'offered', 'booked', 'removed')", name=op.f("ck_waitlist_entries_status")
        ),
        sa.CheckConstraint("end_date >= start_date", name=op.f("ck_waitlist_entries_dates_ordered")),
        sa.CheckConstraint(
            "practitioner_id IS NOT NULL OR speciality IS NOT NULL",
            name=op.f("ck_waitlist_entries_has_target"),
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_waitlist_entries_appointment_id_appointments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_waitlist_entries_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["practitioner_id"],
            ["practitioners.id"],
            name=op.f("fk_waitlist_entries_practitioner_id_practitioners"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_waitlist_entries_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_entries")),
    )
    op.create_index(op.f("ix_waitlist_entries_tenant_id"), "waitlist_entries", ["tenant_id"], unique=False)
    op.create_index(
        "ix_waitlist_entries_tenant_status_created",
        "waitlist_entries",
        ["tenant_id", "status", "created_at"],
        unique=False,
    )
    op.create_table(
        "slot_holds",
        sa.Column("time_slot_id", sa.UUID(), nullable=False),
        sa.Column("conversation_id", sa.UUID(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["booking_conversations.id"],
            name=op.f("fk_slot_holds_conversation_id_booking_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_slot_holds_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["time_slot_id"],
            ["time_slots.id"],
            name=op.f("fk_slot_holds_time_slot_id_time_slots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slot_holds")),
    )
    op.create_index("ix_slot_holds_conversation", "slot_holds", ["conversation_id"], unique=False)
    op.create_index("ix_slot_holds_slot_expires", "slot_holds", ["time_slot_id", "expires_at"], unique=False)
    op.create_index(op.f("ix_slot_holds_tenant_id"), "slot_holds", ["tenant_id"], unique=False)
    op.create_table(
        "waitlist_offers",
        sa.Column("waitlist_entry_id", sa.UUID(), nullable=False),
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("cancelled_appointment_id", sa.UUID(), nullable=False),
        sa.Column("practitioner_id", sa.UUID(), nullable=False),
        sa.Column("location_id", sa.UUID(), nullable=True),
        sa.Column("time_slot_id", sa.UUID(), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("appointment_id", sa.UUID(), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('offered', 'accepted', 'taken', 'declined', 'expired')",
            name=op.f("ck_waitlist_offers_status"),
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_waitlist_offers_appointment_id_appointments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.id"],
            name=op.f("fk_waitlist_offers_location_id_locations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_waitlist_offers_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["practitioner_id"],
            ["practitioners.id"],
            name=op.f("fk_waitlist_offers_practitioner_id_practitioners"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_waitlist_offers_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["time_slot_id"],
            ["time_slots.id"],
            name=op.f("fk_waitlist_offers_time_slot_id_time_slots"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["waitlist_entry_id"],
            ["waitlist_entries.id"],
            name=op.f("fk_waitlist_offers_waitlist_entry_id_waitlist_entries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_offers")),
    )
    op.create_index(
        "ix_waitlist_offers_cancelled_appointment",
        "waitlist_offers",
        ["cancelled_appointment_id"],
        unique=False,
    )
    op.create_index(
        "ix_waitlist_offers_patient_status", "waitlist_offers", ["patient_id", "status"], unique=False
    )
    op.create_index(op.f("ix_waitlist_offers_tenant_id"), "waitlist_offers", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_waitlist_offers_tenant_id"), table_name="waitlist_offers")
    op.drop_index("ix_waitlist_offers_patient_status", table_name="waitlist_offers")
    op.drop_index("ix_waitlist_offers_cancelled_appointment", table_name="waitlist_offers")
    op.drop_table("waitlist_offers")
    op.drop_index(op.f("ix_slot_holds_tenant_id"), table_name="slot_holds")
    op.drop_index("ix_slot_holds_slot_expires", table_name="slot_holds")
    op.drop_index("ix_slot_holds_conversation", table_name="slot_holds")
    op.drop_table("slot_holds")
    op.drop_index("ix_waitlist_entries_tenant_status_created", table_name="waitlist_entries")
    op.drop_index(op.f("ix_waitlist_entries_tenant_id"), table_name="waitlist_entries")
    op.drop_table("waitlist_entries")
    op.drop_index(op.f("ix_booking_conversations_tenant_id"), table_name="booking_conversations")
    op.drop_index("ix_booking_conversations_patient_status", table_name="booking_conversations")
    op.drop_table("booking_conversations")
    op.drop_constraint("ex_time_slots_practitioner_overlap", "time_slots")
