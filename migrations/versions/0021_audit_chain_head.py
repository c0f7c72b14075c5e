"""audit chain head in one round trip: `prm_audit_chain_head(tenant)` locks the tenant's trail and reads its
last record

Appending to a tenant's audit trail must hold the tenant's advisory lock before it reads the last record
(`core.audit.append`), and that read must see every record committed before the lock was granted. Two
statements did this (the lock, then the read); this PL/pgSQL function does both in one call: in a VOLATILE
function each statement takes a new snapshot, so the read after the lock sees what the lock waited for.
The lock key is the one `core.database.advisory_xact_lock` takes for `audit:<tenant id>`.

Revision ID: 0021_audit_chain_head
Revises: 0020_hl7_messages_retention
Create Date: 2026-12-01 21:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021_audit_chain_head"
down_revision: str | None = "0020_hl7_messages_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `prm_audit_chain_head(tenant)`: the trail's last (seq, hash), or no row for an empty trail."""
    op.execute(
        """
        CREATE FUNCTION prm_audit_chain_head(p_tenant uuid)
        RETURNS TABLE (seq bigint, hash varchar) LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock(hashtextextended('audit:' || p_tenant::text, 0));
            RETURN QUERY
                SELECT a.seq, a.hash FROM audit_records a
                WHERE a.tenant_id = p_tenant ORDER BY a.seq DESC LIMIT 1;
        END
        $$
        """
    )


def downgrade() -> None:
    """Drop the function."""
    op.execute("DROP FUNCTION prm_audit_chain_head(uuid)")
