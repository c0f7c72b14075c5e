"""search indexes: name keys and a name vocabulary for patient search at a million patients

Name search used to run pg_trgm over `lower(first_name || ' ' || last_name)` of every patient: a common
first name shares its trigrams with tens of thousands of rows, each fetched and scored, so a search took
60-120 ms at a million patients. Now it is answered in tiers (`PatientRepository.search_names`):

- `first_name_key` / `last_name_key`: the names unaccented, lower-cased and with their spaces collapsed
  (`prm_name_key`), stored, in the "C" collation so one btree serves equality, prefix ranges and the
  order of the results. `ix_patients_tenant_first_key` and `ix_patients_tenant_last_key` (tenant first)
  answer exact and prefix matches with an index range read in order, 20 rows for a page of 20.
- `patient_name_terms`: every distinct name key of a tenant (a few tens of thousands, not a million),
  keyed (tenant, term), with a trigram GIN index. A word with a typo is looked up there first (every
  variant one edit away, by primary key; names containing the word, by the GIN index), and the few
  matching terms then select the patients through the btrees above. Statement triggers on
  `patients` add the keys of inserted and updated rows (`ON CONFLICT DO NOTHING`, in key order so
  concurrent writers never deadlock); a term is never removed (a stale one costs one empty lookup).

Revision ID: 0012_search_indexes
Revises: 0011_audit_records
Create Date: 2026-12-01 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_search_indexes"
down_revision: str | None = "0011_audit_records"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# IMMUTABLE although unaccent() is STABLE (its dictionary could change): the dictionary is named
# explicitly, schema-qualified, as the generated columns and indexes need.
NAME_KEY_FUNCTION = r"""
CREATE FUNCTION prm_name_key(name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$ SELECT lower(regexp_replace(btrim(public.unaccent('public.unaccent'::regdictionary, name)),
                                  '\s+', ' ', 'g')) $$
"""
ADD_TERMS_FUNCTION = """
CREATE FUNCTION patient_name_terms_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO patient_name_terms (tenant_id, term)
    SELECT DISTINCT n.tenant_id, k.term
    FROM new_rows AS n CROSS JOIN LATERAL (VALUES (n.first_name_key), (n.last_name_key)) AS k (term)
    WHERE k.term <> ''
    ORDER BY 1, 2
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public")
    op.execute("CREATE EXTENSION IF NOT EXISTS fuzzystrmatch SCHEMA public")
    op.execute(NAME_KEY_FUNCTION)
    # One ALTER, so the table is rewritten once.
    op.execute(
        'ALTER TABLE patients ADD COLUMN first_name_key TEXT COLLATE "C" '
        "GENERATED ALWAYS AS (prm_name_key(first_name)) STORED, "
        'ADD COLUMN last_name_key TEXT COLLATE "C" GENERATED ALWAYS AS (prm_name_key(last_name)) STORED'
    )
    op.create_index(
        "ix_patients_tenant_first_key", "patients", ["tenant_id", "first_name_key", "last_name_key", "id"]
    )
    op.create_index(
        "ix_patients_tenant_last_key", "patients", ["tenant_id", "last_name_key", "first_name_key", "id"]
    )
    op.create_table(
        "patient_name_terms",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("term", sa.Text(collation="C"), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_patient_name_terms_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "term", name=op.f("pk_patient_name_terms")),
    )
    op.create_index(
        "ix_patient_name_terms_trgm",
        "patient_name_terms",
        ["term"],
        postgresql_using="gin",
        postgresql_ops={"term": "gin_trgm_ops"},
    )
    op.execute(
        "INSERT INTO patient_name_terms (tenant_id, term) "
        "SELECT DISTINCT tenant_id, term FROM patients "
        "CROSS JOIN LATERAL (VALUES (first_name_key), (last_name_key)) AS k (term) WHERE term <> ''"
    )
    op.execute(ADD_TERMS_FUNCTION)
    for event in ("INSERT", "UPDATE"):
        op.execute(
            f"CREATE TRIGGER trg_patients_name_terms_{event.lower()} AFTER {event} ON patients "
            "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION patient_name_terms_add()"
        )


def downgrade() -> None:
    for event in ("insert", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS trg_patients_name_terms_{event} ON patients")
    op.execute("DROP FUNCTION IF EXISTS patient_name_terms_add()")
    op.drop_index("ix_patient_name_terms_trgm", table_name="patient_name_terms", postgresql_using="gin")
    op.drop_table("patient_name_terms")
    op.drop_index("ix_patients_tenant_last_key", table_name="patients")
    op.drop_index("ix_patients_tenant_first_key", table_name="patients")
    op.execute("ALTER TABLE patients DROP COLUMN last_name_key, DROP COLUMN first_name_key")
    op.execute("DROP FUNCTION IF EXISTS prm_name_key(text)")
