"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 12:32:10.763562
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Trigram search and the no-double-booking exclusion constraint need these.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "tenants",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("settings", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
    )
    op.create_table(
        "journeys",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("journey_type", sa.String(length=64), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("trigger_conditions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_journeys_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journeys")),
    )
    op.create_index(op.f("ix_journeys_tenant_id"), "journeys", ["tenant_id"], unique=False)
    op.create_index("ix_journeys_tenant_type", "journeys", ["tenant_id", "journey_type"], unique=False)
    op.create_table(
        "locations",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=400), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_locations_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_locations")),
    )
    op.create_index(op.f("ix_locations_tenant_id"), "locations", ["tenant_id"], unique=False)
    op.create_table(
        "patients",
        sa.Column("mrn", sa.String(length=64), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("middle_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=True),
        sa.Column("gender", sa.String(length=16), nullable=True),
        sa.Column("phone_primary", sa.String(length=20), nullable=True),
        sa.Column("phone_secondary", sa.String(length=20), nullable=True),
        sa.Column("email_primary", sa.String(length=254), nullable=True),
        sa.Column("address_line1", sa.String(length=200), nullable=True),
        sa.Column("address_line2", sa.String(length=200), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=100), nullable=True),
        sa.Column("postal_code", sa.String(length=20), nullable=True),
        sa.Column("country", sa.String(length=100), nullable=True),
        sa.Column("preferred_language", sa.String(length=16), nullable=True),
        sa.Column("preferred_channel", sa.String(length=16), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("merged_into_id", sa.UUID(), nullable=True),
        sa.Column("merged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("meta_data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "gender IS NULL OR gender IN ('male', 'female', 'other', 'unknown')",
            name=op.f("ck_patients_gender"),
        ),
        sa.CheckConstraint(
            "preferred_channel IS NULL OR preferred_channel IN ('whatsapp', 'sms', 'email')",
            name=op.f("ck_patients_preferred_channel"),
        ),
        sa.CheckConstraint("status IN ('active', 'inactive', 'deceased')", name=op.f("ck_patients_status")),
        sa.CheckConstraint(
            "merged_into_id IS NULL OR merged_into_id <> id", name=op.f("ck_patients_not_merged_into_self")
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["patients.id"],
            name=op.f("fk_patients_merged_into_id_patients"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_patients_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("tenant_id", "mrn", name="uq_patients_tenant_mrn"),
    )
    op.create_index(
        "ix_patients_email_trgm",
        "patients",
        [sa.literal_column("lower(email_primary)").label("email_lower")],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"email_lower": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_patients_full_name_trgm",
        "patients",
        [sa.literal_column("lower(first_name || ' ' || last_name)").label("full_name")],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"full_name": "gin_trgm_ops"},
    )
    op.create_index(
        "ix_patients_phone_trgm",
        "patients",
        ["phone_primary"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"phone_primary": "gin_trgm_ops"},
    )
    op.create_index("ix_patients_tenant_dob", "patients", ["tenant_id", "date_of_birth"], unique=False)
    op.create_index(
        "ix_patients_tenant_email",
        "patients",
        ["tenant_id", sa.literal_column("lower(email_primary)")],
        unique=False,
    )
    op.create_index(op.f("ix_patients_tenant_id"), "patients", ["tenant_id"], unique=False)
    op.create_index("ix_patients_tenant_phone", "patients", ["tenant_id", "phone_primary"], unique=False)
    op.create_index(
        "ix_patients_tenant_status_created", "patients", ["tenant_id", "status", "created_at"], unique=False
    )
    op.create_index(
        "ix_patients_tenant_mrn_pattern",
        "patients",
        ["tenant_id", "mrn"],
        unique=False,
        postgresql_ops={"mrn": "text_pattern_ops"},
    )
    op.create_index(
        "ix_patients_tenant_name", "patients", ["tenant_id", "last_name", "first_name", "id"], unique=False
    )
    op.create_table(
        "practitioners",
        sa.Column("first_name", sa.String(length=100), nullable=False),
        sa.Column("middle_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=False),
        sa.Column("gender", sa.String(length=16), nullable=True),
        sa.Column("qualification", sa.String(length=200), nullable=True),
        sa.Column("speciality", sa.String(length=100), nullable=True),
        sa.Column("sub_speciality", sa.String(length=100), nullable=True),
        sa.Column("license_number", sa.String(length=64), nullable=True),
        sa.Column("registration_number", sa.String(length=64), nullable=True),
        sa.Column("phone_primary", sa.String(length=20), nullable=True),
        sa.Column("email_primary", sa.String(length=254), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("meta_data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "gender IS NULL OR gender IN ('male', 'female', 'other', 'unknown')",
            name=op.f("ck_practitioners_gender"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_practitioners_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_practitioners")),
        sa.UniqueConstraint("tenant_id", "license_number", name="uq_practitioners_tenant_license"),
    )
    op.create_index(
        "ix_practitioners_full_name_trgm",
        "practitioners",
        [sa.literal_column("lower(first_name || ' ' || last_name)").label("full_name")],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"full_name": "gin_trgm_ops"},
    )
    op.create_index(op.f("ix_practitioners_tenant_id"), "practitioners", ["tenant_id"], unique=False)
    op.create_index(
        "ix_practitioners_tenant_speciality", "practitioners", ["tenant_id", "speciality"], unique=False
    )
    op.create_table(
        "channel_consents",
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "channel IN ('whatsapp', 'sms', 'email')", name=op.f("ck_channel_consents_channel")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_channel_consents_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_channel_consents_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_consents")),
        sa.UniqueConstraint("patient_id", "channel", name="uq_channel_consents_patient_channel"),
    )
    op.create_index(op.f("ix_channel_consents_tenant_id"), "channel_consents", ["tenant_id"], unique=False)
    op.create_table(
        "journey_stages",
        sa.Column("journey_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("order_index", sa.Integer(), nullable=False),
        sa.Column("trigger_event", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("actions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["journey_id"],
            ["journeys.id"],
            name=op.f("fk_journey_stages_journey_id_journeys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_journey_stages_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_stages")),
        sa.UniqueConstraint("journey_id", "order_index", name="uq_journey_stages_journey_order"),
    )
    op.create_index(op.f("ix_journey_stages_tenant_id"), "journey_stages", ["tenant_id"], unique=False)
    op.create_table(
        "time_slots",
        sa.Column("practitioner_id", sa.UUID(), nullable=False),
        sa.Column("location_id", sa.UUID(), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("booked_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('open', 'blocked')", name=op.f("ck_time_slots_status")),
        sa.CheckConstraint(
            "booked_count >= 0 AND booked_count <= capacity", name=op.f("ck_time_slots_within_capacity")
        ),
        sa.CheckConstraint("capacity >= 1", name=op.f("ck_time_slots_capacity_positive")),
        sa.CheckConstraint("end_time > start_time", name=op.f("ck_time_slots_ends_after_start")),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.id"],
            name=op.f("fk_time_slots_location_id_locations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["practitioner_id"],
            ["practitioners.id"],
            name=op.f("fk_time_slots_practitioner_id_practitioners"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_time_slots_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_time_slots")),
    )
    op.create_index(
        "ix_time_slots_practitioner_start", "time_slots", ["practitioner_id", "start_time"], unique=False
    )
    op.create_index(op.f("ix_time_slots_tenant_id"), "time_slots", ["tenant_id"], unique=False)
    op.create_index("ix_time_slots_tenant_start", "time_slots", ["tenant_id", "start_time"], unique=False)
    op.create_table(
        "appointments",
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("practitioner_id", sa.UUID(), nullable=False),
        sa.Column("location_id", sa.UUID(), nullable=True),
        sa.Column("time_slot_id", sa.UUID(), nullable=True),
        sa.Column("shared_slot", sa.Boolean(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("appointment_type", sa.String(length=64), nullable=True),
        sa.Column("reason_text", sa.Text(), nullable=True),
        sa.Column("source_channel", sa.String(length=32), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancellation_reason", sa.Text(), nullable=True),
        sa.Column("workflow_id", sa.String(length=100), nullable=True),
        sa.Column("workflow_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("meta_data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        postgresql.ExcludeConstraint(
            (sa.column("practitioner_id"), "="),
            (sa.text("tstzrange(start_time, end_time, '[)')"), "&&"),
            where=sa.text("status IN ('booked', 'confirmed', 'checked_in') AND NOT shared_slot"),
            using="gist",
            name="ex_appointments_practitioner_overlap",
        ),
        sa.CheckConstraint(
            "status IN ('booked', 'confirmed', 'checked_in', 'completed', 'cancelled', 'no_show')",
            name=op.f("ck_appointments_status"),
        ),
        sa.CheckConstraint("end_time > start_time", name=op.f("ck_appointments_ends_after_start")),
        sa.ForeignKeyConstraint(
            ["location_id"],
            ["locations.id"],
            name=op.f("fk_appointments_location_id_locations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_appointments_patient_id_patients"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["practitioner_id"],
            ["practitioners.id"],
            name=op.f("fk_appointments_practitioner_id_practitioners"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_appointments_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["time_slot_id"],
            ["time_slots.id"],
            name=op.f("fk_appointments_time_slot_id_time_slots"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointments")),
    )
    op.create_index(
        "ix_appointments_patient_start", "appointments", ["patient_id", "start_time"], unique=False
    )
    op.create_index(
        "ix_appointments_practitioner_start", "appointments", ["practitioner_id", "start_time"], unique=False
    )
    op.create_index(op.f("ix_appointments_tenant_id"), "appointments", ["tenant_id"], unique=False)
    op.create_index("ix_appointments_tenant_start", "appointments", ["tenant_id", "start_time"], unique=False)
    op.create_index("ix_appointments_tenant_status", "appointments", ["tenant_id", "status"], unique=False)
    op.create_table(
        "journey_instances",
        sa.Column("journey_id", sa.UUID(), nullable=False),
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("appointment_id", sa.UUID(), nullable=True),
        sa.Column("encounter_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("current_stage_id", sa.UUID(), nullable=True),
        sa.Column("context", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("definition_snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("workflow_id", sa.String(length=100), nullable=True),
        sa.Column("workflow_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('active', 'completed', 'cancelled', 'failed')",
            name=op.f("ck_journey_instances_status"),
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_journey_instances_appointment_id_appointments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["journey_id"],
            ["journeys.id"],
            name=op.f("fk_journey_instances_journey_id_journeys"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_journey_instances_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_journey_instances_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_instances")),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name="uq_journey_instances_tenant_idempotency_key"
        ),
    )
    op.create_index("ix_journey_instances_journey", "journey_instances", ["journey_id"], unique=False)
    op.create_index("ix_journey_instances_patient", "journey_instances", ["patient_id"], unique=False)
    op.create_index(op.f("ix_journey_instances_tenant_id"), "journey_instances", ["tenant_id"], unique=False)
    op.create_index(
        "ix_journey_instances_tenant_status", "journey_instances", ["tenant_id", "status"], unique=False
    )
    op.create_table(
        "communications",
        sa.Column("patient_id", sa.UUID(), nullable=True),
        sa.Column("journey_instance_id", sa.UUID(), nullable=True),
        sa.Column("appointment_id", sa.UUID(), nullable=True),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=True),
        sa.Column("sender", sa.String(length=254), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("template_name", sa.String(length=100), nullable=True),
        sa.Column("template_vars", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("is_urgent", sa.Boolean(), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("provider_message_id", sa.String(length=100), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("workflow_id", sa.String(length=100), nullable=True),
        sa.Column("meta_data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed(
                "to_tsvector('simple', coalesce(subject, '') || ' ' || coalesce(message, ''))", persisted=True
            ),
            nullable=False,
        ),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("channel IN ('whatsapp', 'sms', 'email')", name=op.f("ck_communications_channel")),
        sa.CheckConstraint("direction IN ('outbound', 'inbound')", name=op.f("ck_communications_direction")),
        sa.CheckConstraint(
            "status IN ('pending', 'scheduled', 'queued', 'sent', 'delivered', 'read', 'failed', 'received')",
            name=op.f("ck_communications_status"),
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_communications_appointment_id_appointments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["journey_instance_id"],
            ["journey_instances.id"],
            name=op.f("fk_communications_journey_instance_id_journey_instances"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_communications_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_communications_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_communications")),
        sa.UniqueConstraint("provider_message_id", name="uq_communications_provider_message_id"),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_communications_tenant_idempotency_key"),
    )
    op.create_index(
        "ix_communications_journey_instance", "communications", ["journey_instance_id"], unique=False
    )
    op.create_index(
        "ix_communications_patient_created", "communications", ["patient_id", "created_at"], unique=False
    )
    op.create_index(
        "ix_communications_search", "communications", ["search_vector"], unique=False, postgresql_using="gin"
    )
    op.create_index(
        "ix_communications_tenant_created", "communications", ["tenant_id", "created_at"], unique=False
    )
    op.create_index(op.f("ix_communications_tenant_id"), "communications", ["tenant_id"], unique=False)
    op.create_table(
        "journey_instance_stages",
        sa.Column("instance_id", sa.UUID(), nullable=False),
        sa.Column("stage_id", sa.UUID(), nullable=True),
        sa.Column("order_index", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'completed', 'skipped', 'failed')",
            name=op.f("ck_journey_instance_stages_status"),
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["journey_instances.id"],
            name=op.f("fk_journey_instance_stages_instance_id_journey_instances"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_journey_instance_stages_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_instance_stages")),
        sa.UniqueConstraint("instance_id", "order_index", name="uq_journey_instance_stages_instance_order"),
    )
    op.create_index(
        op.f("ix_journey_instance_stages_tenant_id"), "journey_instance_stages", ["tenant_id"], unique=False
    )
    op.create_table(
        "tickets",
        sa.Column("patient_id", sa.UUID(), nullable=True),
        sa.Column("journey_instance_id", sa.UUID(), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("assigned_to", sa.UUID(), nullable=True),
        sa.Column("resolution_notes", sa.Text(), nullable=True),
        sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_breached", sa.Boolean(), nullable=False),
        sa.Column("resolution_breached", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("workflow_id", sa.String(length=100), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "priority IN ('low', 'medium', 'high', 'urgent')", name=op.f("ck_tickets_priority")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'in_progress', 'waiting_on_patient', 'resolved', 'closed')",
            name=op.f("ck_tickets_status"),
        ),
        sa.ForeignKeyConstraint(
            ["journey_instance_id"],
            ["journey_instances.id"],
            name=op.f("fk_tickets_journey_instance_id_journey_instances"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_tickets_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_tickets_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_tickets_tenant_idempotency_key"),
    )
    op.create_index("ix_tickets_assigned_to", "tickets", ["assigned_to"], unique=False)
    op.create_index("ix_tickets_patient", "tickets", ["patient_id"], unique=False)
    op.create_index(op.f("ix_tickets_tenant_id"), "tickets", ["tenant_id"], unique=False)
    op.create_index(
        "ix_tickets_tenant_status_priority", "tickets", ["tenant_id", "status", "priority"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_tenant_status_priority", table_name="tickets")
    op.drop_index(op.f("ix_tickets_tenant_id"), table_name="tickets")
    op.drop_index("ix_tickets_patient", table_name="tickets")
    op.drop_index("ix_tickets_assigned_to", table_name="tickets")
    op.drop_table("tickets")
    op.drop_index(op.f("ix_journey_instance_stages_tenant_id"), table_name="journey_instance_stages")
    op.drop_table("journey_instance_stages")
    op.drop_index(op.f("ix_communications_tenant_id"), table_name="communications")
    op.drop_index("ix_communications_tenant_created", table_name="communications")
    op.drop_index("ix_communications_search", table_name="communications", postgresql_using="gin")
    op.drop_index("ix_communications_patient_created", table_name="communications")
    op.drop_index("ix_communications_journey_instance", table_name="communications")
    op.drop_table("communications")
    op.drop_index("ix_journey_instances_tenant_status", table_name="journey_instances")
    op.drop_index(op.f("ix_journey_instances_tenant_id"), table_name="journey_instances")
    op.drop_index("ix_journey_instances_patient", table_name="journey_instances")
    op.drop_index("ix_journey_instances_journey", table_name="journey_instances")
    op.drop_table("journey_instances")
    op.drop_index("ix_appointments_tenant_status", table_name="appointments")
    op.drop_index("ix_appointments_tenant_start", table_name="appointments")
    op.drop_index(op.f("ix_appointments_tenant_id"), table_name="appointments")
    op.drop_index("ix_appointments_practitioner_start", table_name="appointments")
    op.drop_index("ix_appointments_patient_start", table_name="appointments")
    op.drop_table("appointments")
    op.drop_index("ix_time_slots_tenant_start", table_name="time_slots")
    op.drop_index(op.f("ix_time_slots_tenant_id"), table_name="time_slots")
    op.drop_index("ix_time_slots_practitioner_start", table_name="time_slots")
    op.drop_table("time_slots")
    op.drop_index(op.f("ix_journey_stages_tenant_id"), table_name="journey_stages")
    op.drop_table("journey_stages")
    op.drop_index(op.f("ix_channel_consents_tenant_id"), table_name="channel_consents")
    op.drop_table("channel_consents")
    op.drop_index("ix_practitioners_tenant_speciality", table_name="practitioners")
    op.drop_index(op.f("ix_practitioners_tenant_id"), table_name="practitioners")
    op.drop_index(
        "ix_practitioners_full_name_trgm",
        table_name="practitioners",
        postgresql_using="gin",
        postgresql_ops={"full_name": "gin_trgm_ops"},
    )
    op.drop_table("practitioners")
    op.drop_index("ix_patients_tenant_name", table_name="patients")
    op.drop_index(
        "ix_patients_tenant_mrn_pattern", table_name="patients", postgresql_ops={"mrn": "text_pattern_ops"}
    )
    op.drop_index("ix_patients_tenant_status_created", table_name="patients")
    op.drop_index("ix_patients_tenant_phone", table_name="patients")
    op.drop_index(op.f("ix_patients_tenant_id"), table_name="patients")
    op.drop_index("ix_patients_tenant_email", table_name="patients")
    op.drop_index("ix_patients_tenant_dob", table_name="patients")
    op.drop_index(
        "ix_patients_phone_trgm",
        table_name="patients",
        postgresql_using="gin",
        postgresql_ops={"phone_primary": "gin_trgm_ops"},
    )
    op.drop_index(
        "ix_patients_full_name_trgm",
        table_name="patients",
        postgresql_using="gin",
        postgresql_ops={"full_name": "gin_trgm_ops"},
    )
    op.drop_index(
        "ix_patients_email_trgm",
        table_name="patients",
        postgresql_using="gin",
        postgresql_ops={"email_lower": "gin_trgm_ops"},
    )
    op.drop_table("patients")
    op.drop_index(op.f("ix_locations_tenant_id"), table_name="locations")
    op.drop_table("locations")
    op.drop_index("ix_journeys_tenant_type", table_name="journeys")
    op.drop_index(op.f("ix_journeys_tenant_id"), table_name="journeys")
    op.drop_table("journeys")
    op.drop_table("tenants")
