"""hl7 feed realism: per-client feed settings, MSH-10 unique per sender

`integration_clients` gains the settings of its HL7 v2 feed: `timezone` (the IANA zone an HL7 time without
an offset is read in; null: the tenant's), `code_maps` (the sender's local codes mapped onto ours: language,
sex, appointment type) and `ignore_unsupported_messages` (message types this receiver does not use are
accepted and ignored instead of refused).

`hl7_messages` records each message's sender (MSH-3 sending application, MSH-4 sending facility), and its
control id is unique per (tenant, sender) instead of per tenant: two feeds whose control ids collide no
longer refuse each other. Rows already stored take their sender from the ACK they were answered with (its
MSH-5/MSH-6 are the message's MSH-3/MSH-4, turned around), so a resend of such a message is still a repeat;
they were unique per tenant, so they stay unique under the wider key.

Revision ID: 0030_hl7_feed_realism
Revises: 0029_fhir_versions_smart
Create Date: 2026-12-06 23:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0030_hl7_feed_realism"
down_revision: str | None = "0029_fhir_versions_smart"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The first component of each stored ACK's MSH-5 and MSH-6 (ACKs with the default `|` separator).
BACKFILL_SENDERS = """
UPDATE hl7_messages SET
    sending_application = left(split_part(split_part(split_part(ack, E'\\r', 1), '|', 5), '^', 1), 227),
    sending_facility = left(split_part(split_part(split_part(ack, E'\\r', 1), '|', 6), '^', 1), 227)
WHERE ack LIKE 'MSH|%'
"""


def upgrade() -> None:
    op.add_column("integration_clients", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.add_column(
        "integration_clients",
        sa.Column("code_maps", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
    )
    op.add_column(
        "integration_clients",
        sa.Column("ignore_unsupported_messages", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "hl7_messages",
        sa.Column("sending_application", sa.String(length=227), server_default="", nullable=False),
    )
    op.add_column(
        "hl7_messages",
        sa.Column("sending_facility", sa.String(length=227), server_default="", nullable=False),
    )
    op.execute(BACKFILL_SENDERS)
    op.drop_constraint("uq_hl7_messages_tenant_control_id", "hl7_messages", type_="unique")
    op.create_unique_constraint(
        "uq_hl7_messages_tenant_sender_control_id",
        "hl7_messages",
        ["tenant_id", "sending_application", "sending_facility", "control_id"],
    )


def downgrade() -> None:
    # Rows of two senders sharing a control id cannot both stay under the narrower key: keep the oldest.
    op.execute(
        "DELETE FROM hl7_messages m USING hl7_messages o "
        "WHERE m.tenant_id = o.tenant_id AND m.control_id = o.control_id "
        "AND (m.created_at, m.id) > (o.created_at, o.id)"
    )
    op.drop_constraint("uq_hl7_messages_tenant_sender_control_id", "hl7_messages", type_="unique")
    op.create_unique_constraint(
        "uq_hl7_messages_tenant_control_id", "hl7_messages", ["tenant_id", "control_id"]
    )
    op.drop_column("hl7_messages", "sending_facility")
    op.drop_column("hl7_messages", "sending_application")
    op.drop_column("integration_clients", "ignore_unsupported_messages")
    op.drop_column("integration_clients", "code_maps")
    op.drop_column("integration_clients", "timezone")
