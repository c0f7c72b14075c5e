"""campaign speed: each patient's last completed visit kept by a trigger; one active instance where the
journey's repeat policy says so

`patients.last_completed_visit_at`: the start of the patient's latest completed appointment, kept by
triggers on `appointments` (insert, update of status, start time or patient, delete), so a cohort's
`last_visit` criterion reads a column of the patient's row instead of probing appointments per patient.
Changing only this column does not raise the patient's FHIR version (nothing the record says changed).
`ix_patients_tenant_dob` includes the columns cohort criteria read on the patient's row (gender, status,
merged, last visit), so a preview counts a million patients by an index-only scan.

`journey_instances.one_active`: set when the instance was placed on a journey whose repeat policy allows a
patient on it once at a time (`never`, or a default journey); a partial unique index lets such a patient
hold one active instance of the journey, whichever road (the API, a trigger, a campaign) placed them.

Revision ID: 0032_campaign_speed
Revises: 0031_fhir_history
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032_campaign_speed"
down_revision: str | None = "0031_fhir_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LAST_VISIT_FUNCTION = """
CREATE OR REPLACE FUNCTION prm_patient_last_visit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('prm.last_visit_only', 'on', true);  -- not a change to the record: no new version
    IF TG_OP = 'INSERT' THEN  -- a new completed visit can only move the latest one later
        UPDATE patients SET last_completed_visit_at = NEW.start_time
        WHERE id = NEW.patient_id
          AND (last_completed_visit_at IS NULL OR last_completed_visit_at < NEW.start_time);
    ELSE
        UPDATE patients p SET last_completed_visit_at = (
            SELECT max(a.start_time) FROM appointments a WHERE a.patient_id = p.id AND a.status = 'completed'
        )
        WHERE p.id = OLD.patient_id OR (TG_OP = 'UPDATE' AND p.id = NEW.patient_id);
    END IF;
    PERFORM set_config('prm.last_visit_only', 'off', true);
    RETURN NULL;
END
$$;
"""

# The patient's version (FHIR meta.versionId) stays put when only its last visit moved.
BUMP_PATIENT_VERSION = """
CREATE OR REPLACE FUNCTION prm_bump_patient_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('prm.last_visit_only', true) = 'on' THEN
        RETURN NEW;
    END IF;
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;
"""

# Every patient's last visit computed again from the appointments: the backfill here, and after a bulk load
# that skipped the triggers (`bench.seed`).
REBUILD_FUNCTION = """
CREATE OR REPLACE FUNCTION prm_last_visits_rebuild() RETURNS void LANGUAGE sql AS $$
    SELECT set_config('prm.last_visit_only', 'on', true);
    UPDATE patients p SET last_completed_visit_at = v.latest
    FROM (
        SELECT q.id, max(a.start_time) AS latest
        FROM patients q LEFT JOIN appointments a ON a.patient_id = q.id AND a.status = 'completed'
        GROUP BY q.id
    ) v
    WHERE p.id = v.id AND p.last_completed_visit_at IS DISTINCT FROM v.latest;
    SELECT set_config('prm.last_visit_only', 'off', true);
$$;
"""

# The cohort criteria read on the patient's row, in the age index: a preview counts by an index-only scan.
COHORT_COLUMNS = ["id", "gender", "status", "merged_into_id", "last_completed_visit_at"]

TRIGGERS = """
CREATE TRIGGER trg_appointments_last_visit_insert AFTER INSERT ON appointments
FOR EACH ROW WHEN (NEW.status = 'completed') EXECUTE FUNCTION prm_patient_last_visit();

CREATE TRIGGER trg_appointments_last_visit_delete AFTER DELETE ON appointments
FOR EACH ROW WHEN (OLD.status = 'completed') EXECUTE FUNCTION prm_patient_last_visit();

CREATE TRIGGER trg_appointments_last_visit_update
AFTER UPDATE OF status, start_time, patient_id ON appointments
FOR EACH ROW WHEN (
    (OLD.status = 'completed' OR NEW.status = 'completed')
    AND (OLD.status IS DISTINCT FROM NEW.status OR OLD.start_time IS DISTINCT FROM NEW.start_time
         OR OLD.patient_id IS DISTINCT FROM NEW.patient_id)
) EXECUTE FUNCTION prm_patient_last_visit();
"""


def upgrade() -> None:
    """Add the stored last visit (filled from the appointments), its triggers, and the one-active rule."""
    op.add_column("patients", sa.Column("last_completed_visit_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(BUMP_PATIENT_VERSION)
    op.execute("DROP TRIGGER IF EXISTS trg_patients_version ON patients")
    op.execute(
        "CREATE TRIGGER trg_patients_version BEFORE UPDATE ON patients "
        "FOR EACH ROW EXECUTE FUNCTION prm_bump_patient_version()"
    )
    op.execute(REBUILD_FUNCTION)
    op.execute("SELECT prm_last_visits_rebuild()")
    op.execute("DROP INDEX ix_patients_tenant_dob")
    op.create_index(
        "ix_patients_tenant_dob",
        "patients",
        ["tenant_id", "date_of_birth"],
        postgresql_include=COHORT_COLUMNS,
    )
    op.execute(LAST_VISIT_FUNCTION)
    op.execute(TRIGGERS)

    op.add_column(
        "journey_instances",
        sa.Column("one_active", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_index(
        "uq_journey_instances_one_active",
        "journey_instances",
        ["journey_id", "patient_id"],
        unique=True,
        postgresql_where=sa.text("one_active AND status = 'active'"),
    )


def downgrade() -> None:
    """Drop the one-active rule, the stored last visit and its triggers."""
    op.drop_index(
        "uq_journey_instances_one_active",
        table_name="journey_instances",
        postgresql_where=sa.text("one_active AND status = 'active'"),
    )
    op.drop_column("journey_instances", "one_active")
    for event in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS trg_appointments_last_visit_{event} ON appointments")
    op.execute("DROP FUNCTION IF EXISTS prm_patient_last_visit()")
    op.execute("DROP TRIGGER IF EXISTS trg_patients_version ON patients")
    op.execute(
        "CREATE TRIGGER trg_patients_version BEFORE UPDATE ON patients "
        "FOR EACH ROW EXECUTE FUNCTION prm_bump_version()"
    )
    op.execute("DROP FUNCTION IF EXISTS prm_bump_patient_version()")
    op.execute("DROP FUNCTION IF EXISTS prm_last_visits_rebuild()")
    op.drop_index("ix_patients_tenant_dob", table_name="patients")
    op.create_index("ix_patients_tenant_dob", "patients", ["tenant_id", "date_of_birth"])
    op.drop_column("patients", "last_completed_visit_at")
