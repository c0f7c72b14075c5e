"""FHIR versions and SMART Backend Services

`patients.version`, `practitioners.version`, `appointments.version`: the FHIR `meta.versionId` (and the
`ETag` that `If-Match` is checked against), 1 for every row already stored, raised by one by a trigger on
every UPDATE whoever makes it (the API, an import, a journey's activity, a bulk statement), so no path can
change a record and leave its version behind.

`integration_clients.jwks` / `jwks_uri`: a client's public keys (a JWK Set inline, or the URL it is fetched
from; never both), for the `private_key_jwt` client authentication of SMART Backend Services.
`integration_client_assertions`: the `jti` of every assertion traded for a token, keyed by client and `jti`
so that the database refuses a replay; rows go once the assertion has expired.

Revision ID: 0029_fhir_versions_smart
Revises: 0028_sender_pacing
Create Date: 2026-12-06 23:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0029_fhir_versions_smart"
down_revision: str | None = "0028_sender_pacing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


VERSIONED = ("patients", "practitioners", "appointments")

BUMP_VERSION = """
CREATE OR REPLACE FUNCTION prm_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;
"""


def upgrade() -> None:
    """Add the records' versions, the clients' keys and the table of assertions already used."""
    op.execute(BUMP_VERSION)
    for table in VERSIONED:
        op.add_column(table, sa.Column("version", sa.Integer(), server_default="1", nullable=False))
        op.execute(
            f"CREATE TRIGGER trg_{table}_version BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION prm_bump_version()"
        )
    op.add_column("integration_clients", sa.Column("jwks", postgresql.JSONB(), nullable=True))
    op.add_column("integration_clients", sa.Column("jwks_uri", sa.String(length=2000), nullable=True))
    op.create_check_constraint(
        op.f("ck_integration_clients_one_key_source"),
        "integration_clients",
        "jwks IS NULL OR jwks_uri IS NULL",
    )
    op.create_table(
        "integration_client_assertions",
        sa.Column("integration_client_id", sa.UUID(), nullable=False),
        sa.Column("jti", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["integration_client_id"], ["integration_clients.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("integration_client_id", "jti"),
    )
    op.create_index(
        "ix_integration_client_assertions_expires_at", "integration_client_assertions", ["expires_at"]
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_integration_client_assertions_expires_at", table_name="integration_client_assertions")
    op.drop_table("integration_client_assertions")
    op.drop_constraint(op.f("ck_integration_clients_one_key_source"), "integration_clients", type_="check")
    op.drop_column("integration_clients", "jwks_uri")
    op.drop_column("integration_clients", "jwks")
    for table in VERSIONED:
        op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_version ON {table}")
        op.drop_column(table, "version")
    op.execute("DROP FUNCTION IF EXISTS prm_bump_version()")
