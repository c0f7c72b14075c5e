"""audit keyed chain: records say how their hash was computed, and the app's role `prm_app` owns nothing

`audit_records.hash_version` (`core.audit.HashVersion`): 1 for the records already stored (plain SHA-256,
still verified as such), 2 for every record written from now on (HMAC-SHA256 under PRM_AUDIT_HMAC_KEY, a
key the database never holds). Adding a column with a constant default rewrites no row, so the
append-only trigger is not involved.

`prm_app` is the role the API and the worker connect as (`prm run`, docker-compose.yml); migrations keep
running as the owner. It owns nothing: it may SELECT, INSERT, UPDATE and DELETE the ordinary tables, only
SELECT and INSERT `audit_records` (so it can neither change the trail nor ALTER TABLE ... DISABLE TRIGGER,
which needs ownership), only SELECT `alembic_version`, and use sequences. The owner's default privileges
give it the same on tables later migrations create. The role is created NOLOGIN when missing (roles belong
to the server, not the database, so it may exist already); whoever deploys gives it LOGIN and a password
(`prm db app-role`). A `prm_app` found with a special attribute (superuser, createrole, createdb,
bypassrls) or a membership in another role is refused: it would not be least privilege.

Revision ID: 0026_audit_keyed_chain
Revises: 0025_campaigns
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026_audit_keyed_chain"
down_revision: str | None = "0025_campaigns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'prm_app') THEN
        BEGIN  -- roles are the cluster's: a database migrated at the same moment may create it first
            CREATE ROLE prm_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    ELSIF EXISTS (
        SELECT 1 FROM pg_roles
        WHERE rolname = 'prm_app'
          AND (rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls OR rolreplication)
    ) OR EXISTS (SELECT 1 FROM pg_auth_members WHERE member = 'prm_app'::regrole) THEN
        RAISE EXCEPTION 'role prm_app must hold no special attribute and belong to no other role';
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO prm_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO prm_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO prm_app;
REVOKE UPDATE, DELETE ON audit_records FROM prm_app;
REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM prm_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO prm_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO prm_app;
"""

REVOKE_APP_ROLE = """
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM prm_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM prm_app;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM prm_app;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM prm_app;
REVOKE USAGE ON SCHEMA public FROM prm_app;
"""


def upgrade() -> None:
    """Add `hash_version` (1 for the stored records) and grant `prm_app` what the app needs, no more."""
    op.add_column(
        "audit_records", sa.Column("hash_version", sa.SmallInteger(), server_default="1", nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_audit_records_hash_version"), "audit_records", "hash_version IN (1, 2)"
    )
    op.execute(APP_ROLE)


def downgrade() -> None:
    """Revoke `prm_app`'s grants (the role stays: other databases of the server may use it) and drop the
    column; refused while keyed records exist, which would no longer verify without their version."""
    keyed = op.get_bind().scalar(sa.text("SELECT count(*) FROM audit_records WHERE hash_version <> 1"))
    if keyed:
        raise RuntimeError(f"{keyed} keyed audit record(s): downgrading would leave them unverifiable")
    op.execute(REVOKE_APP_ROLE)
    op.drop_constraint(op.f("ck_audit_records_hash_version"), "audit_records", type_="check")
    op.drop_column("audit_records", "hash_version")
