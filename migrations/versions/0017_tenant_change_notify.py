"""tenant change notices: every UPDATE or DELETE of a tenant notifies `prm_tenants` with its id

The API keeps the tenants it found active in each process (`domain.tenants.active.ActiveTenants`) rather
than reading the tenant on every request; these notices make each process forget a tenant as soon as a
change to it commits (NOTIFY is delivered at commit), whoever writes it. A TRUNCATE notifies `*`: forget all.

Revision ID: 0017_tenant_change_notify
Revises: 0016_hl7_messages
Create Date: 2026-12-01 18:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_tenant_change_notify"
down_revision: str | None = "0016_hl7_messages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Notify `prm_tenants` on every change to a tenant (the payload is its id, never anything else)."""
    op.execute(
        """
        CREATE FUNCTION tenants_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'TRUNCATE' THEN
                PERFORM pg_notify('prm_tenants', '*');
            ELSE
                PERFORM pg_notify('prm_tenants', OLD.id::text);
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER trg_tenants_notify_change AFTER UPDATE OR DELETE ON tenants "
        "FOR EACH ROW EXECUTE FUNCTION tenants_notify_change()"
    )
    op.execute(
        "CREATE TRIGGER trg_tenants_notify_truncate AFTER TRUNCATE ON tenants "
        "FOR EACH STATEMENT EXECUTE FUNCTION tenants_notify_change()"
    )


def downgrade() -> None:
    """Drop the triggers and their function."""
    op.execute("DROP TRIGGER IF EXISTS trg_tenants_notify_truncate ON tenants")
    op.execute("DROP TRIGGER IF EXISTS trg_tenants_notify_change ON tenants")
    op.execute("DROP FUNCTION IF EXISTS tenants_notify_change()")
