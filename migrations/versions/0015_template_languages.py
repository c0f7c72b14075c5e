"""template languages: a tenant's template exists once per language, and a message records its language

`communication_templates.language` (a normalised BCP 47 tag, `en` for the templates that exist already)
makes a template a set of variants: `uq_communication_templates_tenant_key_language` replaces the unique
(tenant, key), so a template id has at most one variant per language. Each variant keeps its own text and
its own WhatsApp Content template (Twilio approves a Content template per language).
`communications.language` records the language a message was rendered in (NULL: literal text, or a message
sent before languages).

The downgrade keeps one variant of each template (its English one when it has one) and drops the rest.

Revision ID: 0015_template_languages
Revises: 0014_integration_clients
Create Date: 2026-12-15 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_template_languages"
down_revision: str | None = "0014_integration_clients"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The shape `core.languages.normalise` stores: language[-script][-region]; the service checks the registry.
LANGUAGE_CHECK = "language ~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$'"


def upgrade() -> None:
    op.add_column(
        "communication_templates",
        sa.Column("language", sa.String(length=16), server_default=sa.text("'en'"), nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_communication_templates_language"), "communication_templates", LANGUAGE_CHECK
    )
    op.drop_constraint("uq_communication_templates_tenant_key", "communication_templates", type_="unique")
    op.create_unique_constraint(
        "uq_communication_templates_tenant_key_language",
        "communication_templates",
        ["tenant_id", "key", "language"],
    )
    op.add_column("communications", sa.Column("language", sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column("communications", "language")
    op.execute(
        """
        DELETE FROM communication_templates t
        USING communication_templates keep
        WHERE keep.tenant_id = t.tenant_id AND keep.key = t.key
          AND keep.language = 'en' AND t.language <> 'en'
        """
    )
    op.execute(
        """
        DELETE FROM communication_templates t
        USING communication_templates keep
        WHERE keep.tenant_id = t.tenant_id AND keep.key = t.key AND keep.language < t.language
        """
    )
    op.drop_constraint(
        "uq_communication_templates_tenant_key_language", "communication_templates", type_="unique"
    )
    op.create_unique_constraint(
        "uq_communication_templates_tenant_key", "communication_templates", ["tenant_id", "key"]
    )
    op.drop_constraint(op.f("ck_communication_templates_language"), "communication_templates", type_="check")
    op.drop_column("communication_templates", "language")
