"""integration clients and external identifiers

`integration_clients` / `integration_client_secrets`: the systems (EHRs) that call the FHIR and HL7
endpoints, each with one or more active secrets (stored as SHA-256 hashes) so a rotation has no downtime.
`patient_identifiers`, `practitioner_identifiers`, `appointment_identifiers`: identifiers other systems give
our records (`system` + `value`, unique per tenant), by which FHIR imports upsert.
`ix_*_tenant_updated`: FHIR searches (and EHR syncs) page patients, appointments and messages in
`_lastUpdated` order.

Revision ID: 0014_integration_clients
Revises: 0013_domain_events
Create Date: 2026-12-01 17:47:15.885168
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_integration_clients"
down_revision: str | None = "0013_domain_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "integration_clients",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("scopes", sa.ARRAY(sa.String(length=16)), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("cardinality(scopes) >= 1", name=op.f("ck_integration_clients_has_scopes")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_integration_clients_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_clients")),
    )
    op.create_index("ix_integration_clients_tenant_id", "integration_clients", ["tenant_id"], unique=False)
    op.create_index("uq_integration_clients_client_id", "integration_clients", ["client_id"], unique=True)
    op.create_table(
        "integration_client_secrets",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("integration_client_id", sa.UUID(), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("hint", sa.String(length=8), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_client_id"],
            ["integration_clients.id"],
            name=op.f("fk_integration_client_secrets_integration_client_id_integration_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_client_secrets")),
    )
    op.create_index(
        "ix_integration_client_secrets_client",
        "integration_client_secrets",
        ["integration_client_id"],
        unique=False,
    )
    op.create_index(
        "uq_integration_client_secrets_secret_hash",
        "integration_client_secrets",
        ["secret_hash"],
        unique=True,
    )
    op.create_table(
        "patient_identifiers",
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("system", sa.String(length=255), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_patient_identifiers_patient_id_patients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_patient_identifiers_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_identifiers")),
        sa.UniqueConstraint(
            "tenant_id", "system", "value", name="uq_patient_identifiers_tenant_system_value"
        ),
    )
    op.create_index("ix_patient_identifiers_patient", "patient_identifiers", ["patient_id"], unique=False)
    op.create_index(
        op.f("ix_patient_identifiers_tenant_id"), "patient_identifiers", ["tenant_id"], unique=False
    )
    op.create_table(
        "practitioner_identifiers",
        sa.Column("practitioner_id", sa.UUID(), nullable=False),
        sa.Column("system", sa.String(length=255), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["practitioner_id"],
            ["practitioners.id"],
            name=op.f("fk_practitioner_identifiers_practitioner_id_practitioners"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_practitioner_identifiers_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_practitioner_identifiers")),
        sa.UniqueConstraint(
            "tenant_id", "system", "value", name="uq_practitioner_identifiers_tenant_system_value"
        ),
    )
    op.create_index(
        "ix_practitioner_identifiers_practitioner",
        "practitioner_identifiers",
        ["practitioner_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_practitioner_identifiers_tenant_id"), "practitioner_identifiers", ["tenant_id"], unique=False
    )
    op.create_table(
        "appointment_identifiers",
        sa.Column("appointment_id", sa.UUID(), nullable=False),
        sa.Column("system", sa.String(length=255), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name=op.f("fk_appointment_identifiers_appointment_id_appointments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_appointment_identifiers_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment_identifiers")),
        sa.UniqueConstraint(
            "tenant_id", "system", "value", name="uq_appointment_identifiers_tenant_system_value"
        ),
    )
    op.create_index(
        "ix_appointment_identifiers_appointment", "appointment_identifiers", ["appointment_id"], unique=False
    )
    op.create_index(
        op.f("ix_appointment_identifiers_tenant_id"), "appointment_identifiers", ["tenant_id"], unique=False
    )

    # FHIR searches page in `_lastUpdated` order (and EHRs sync by it).
    op.create_index("ix_patients_tenant_updated", "patients", ["tenant_id", "updated_at", "id"])
    op.create_index("ix_appointments_tenant_updated", "appointments", ["tenant_id", "updated_at", "id"])
    op.create_index("ix_communications_tenant_updated", "communications", ["tenant_id", "updated_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_communications_tenant_updated", table_name="communications")
    op.drop_index("ix_appointments_tenant_updated", table_name="appointments")
    op.drop_index("ix_patients_tenant_updated", table_name="patients")
    op.drop_index(op.f("ix_appointment_identifiers_tenant_id"), table_name="appointment_identifiers")
    op.drop_index("ix_appointment_identifiers_appointment", table_name="appointment_identifiers")
    op.drop_table("appointment_identifiers")
    op.drop_index(op.f("ix_practitioner_identifiers_tenant_id"), table_name="practitioner_identifiers")
    op.drop_index("ix_practitioner_identifiers_practitioner", table_name="practitioner_identifiers")
    op.drop_table("practitioner_identifiers")
    op.drop_index(op.f("ix_patient_identifiers_tenant_id"), table_name="patient_identifiers")
    op.drop_index("ix_patient_identifiers_patient", table_name="patient_identifiers")
    op.drop_table("patient_identifiers")
    op.drop_index("uq_integration_client_secrets_secret_hash", table_name="integration_client_secrets")
    op.drop_index("ix_integration_client_secrets_client", table_name="integration_client_secrets")
    op.drop_table("integration_client_secrets")
    op.drop_index("uq_integration_clients_client_id", table_name="integration_clients")
    op.drop_index("ix_integration_clients_tenant_id", table_name="integration_clients")
    op.drop_table("integration_clients")
