"""whatsapp content templates: a tenant's WhatsApp template may name its approved Twilio Content template

Outside WhatsApp's 24-hour window after the patient's last message, only a pre-approved template is
accepted (Twilio's Content API). `communication_templates.whatsapp_content_sid` names it (`HX` + 32 hex,
WhatsApp templates only) and `whatsapp_content_variables` lists, in order, the variables whose values fill
its `{{1}}`, `{{2}}`, ... Existing templates have none.

Revision ID: 0009_whatsapp_content_templates
Revises: 0008_analytics_rollups
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_whatsapp_content_templates"
down_revision: str | None = "0008_analytics_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONTENT_SID_CHECK = (
    "whatsapp_content_sid IS NULL OR (channel = 'whatsapp' AND whatsapp_content_sid ~ '^HX[0-9a-f]{32}$')"
)


def upgrade() -> None:
    op.add_column(
        "communication_templates", sa.Column("whatsapp_content_sid", sa.String(length=34), nullable=True)
    )
    op.add_column(
        "communication_templates",
        sa.Column(
            "whatsapp_content_variables",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.create_check_constraint(
        op.f("ck_communication_templates_whatsapp_content_sid"), "communication_templates", CONTENT_SID_CHECK
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("ck_communication_templates_whatsapp_content_sid"), "communication_templates", type_="check"
    )
    op.drop_column("communication_templates", "whatsapp_content_variables")
    op.drop_column("communication_templates", "whatsapp_content_sid")
