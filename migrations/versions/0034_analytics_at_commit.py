"""analytics counters bumped at commit: concurrent writers of a tenant no longer queue on its counter rows

The rollups of migration 0008 are upserts on one row per tenant, day and key ("SMS sent today", "journeys
started today"), run by row triggers in the writing statement, so each writer held the row's lock until its
transaction ended: every concurrent transaction of a busy tenant writing a message, a journey instance or
an appointment queued behind the one before it for the rest of that transaction (its later statements and
its client's round trips). Measured on the journey benchmark: 20 journey starts at once spent most of
their time waiting on `analytics_journey_daily` (`Lock:transactionid` on the INSERT), and journey
activities on `analytics_communication_daily`.

The counting triggers are now constraint triggers, `DEFERRABLE INITIALLY DEFERRED`: they fire when the
transaction commits, with the row versions of each event, in the order the events happened, so the counts
are the same and a counter row is locked only while its transaction commits. What stays immediate reads
the state a statement leaves and must see it then: pairing replies in a patient's conversation (the
communications trigger now does that alone; its counting moved to `analytics_count_communication`), moving
a scored message's sentiment, the sentiment trigger, and the BEFORE DELETE triggers that take a deleted
message's score or an instance's completed stages out. `analytics_rebuild` first fires the counts its
transaction has pending (`SET CONSTRAINTS ... IMMEDIATE`), so a rebuild in a transaction that wrote counted
rows counts each once.

Revision ID: 0034_analytics_at_commit
Revises: 0033_audit_pending
Create Date: 2026-12-07 06:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0034_analytics_at_commit"
down_revision: str | None = "0033_audit_pending"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (trigger, table, events and condition, function): the counting triggers, as migration 0008 made them.
COUNTING = (
    ("trg_appointments_analytics", "appointments", "INSERT OR DELETE", "analytics_on_appointment"),
    (
        "trg_appointments_analytics_update",
        "appointments",
        "UPDATE OF start_time, status, source_channel, practitioner_id",
        "analytics_on_appointment",
        "OLD.start_time IS DISTINCT FROM NEW.start_time OR OLD.status IS DISTINCT FROM NEW.status"
        " OR OLD.source_channel IS DISTINCT FROM NEW.source_channel"
        " OR OLD.practitioner_id IS DISTINCT FROM NEW.practitioner_id",
    ),
    (
        "trg_journey_instances_analytics",
        "journey_instances",
        "INSERT OR DELETE",
        "analytics_on_journey_instance",
    ),
    (
        "trg_journey_instances_analytics_update",
        "journey_instances",
        "UPDATE OF status, started_at, completed_at, cancelled_at, updated_at, journey_id",
        "analytics_on_journey_instance",
        "OLD.status IS DISTINCT FROM NEW.status OR OLD.started_at IS DISTINCT FROM NEW.started_at"
        " OR OLD.completed_at IS DISTINCT FROM NEW.completed_at"
        " OR OLD.cancelled_at IS DISTINCT FROM NEW.cancelled_at"
        " OR (NEW.status = 'failed' AND OLD.updated_at IS DISTINCT FROM NEW.updated_at)"
        " OR OLD.journey_id IS DISTINCT FROM NEW.journey_id",
    ),
    (
        "trg_journey_instance_stages_analytics",
        "journey_instance_stages",
        "INSERT OR DELETE",
        "analytics_on_journey_stage",
    ),
    (
        "trg_journey_instance_stages_analytics_update",
        "journey_instance_stages",
        "UPDATE OF status, started_at, completed_at, order_index, name, instance_id",
        "analytics_on_journey_stage",
        "OLD.status IS DISTINCT FROM NEW.status OR OLD.started_at IS DISTINCT FROM NEW.started_at"
        " OR OLD.completed_at IS DISTINCT FROM NEW.completed_at"
        " OR OLD.order_index IS DISTINCT FROM NEW.order_index OR OLD.name IS DISTINCT FROM NEW.name"
        " OR OLD.instance_id IS DISTINCT FROM NEW.instance_id",
    ),
    (
        "trg_analytics_replies_histogram",
        "analytics_replies",
        "INSERT OR DELETE OR UPDATE OF day, bucket",
        "analytics_on_reply",
    ),
)

# The message counts, moved out of analytics_on_communication into a trigger of their own.
NEW_COUNTING = (
    (
        "trg_communications_analytics_count",
        "communications",
        "INSERT OR DELETE",
        "analytics_count_communication",
    ),
    (
        "trg_communications_analytics_count_update",
        "communications",
        "UPDATE OF created_at, direction, channel, status",
        "analytics_count_communication",
        "OLD.created_at IS DISTINCT FROM NEW.created_at OR OLD.direction IS DISTINCT FROM NEW.direction"
        " OR OLD.channel IS DISTINCT FROM NEW.channel OR OLD.status IS DISTINCT FROM NEW.status",
    ),
)


def _trigger(spec: tuple[str, ...], *, at_commit: bool) -> str:
    name, table, events, function, *condition = spec
    when = f" WHEN ({condition[0]})" if condition else ""
    if at_commit:
        return (
            f"CREATE CONSTRAINT TRIGGER {name} AFTER {events} ON {table} DEFERRABLE INITIALLY DEFERRED"
            f" FOR EACH ROW{when} EXECUTE FUNCTION {function}()"
        )
    return f"CREATE TRIGGER {name} AFTER {events} ON {table} FOR EACH ROW{when} EXECUTE FUNCTION {function}()"


COUNT_INSERT = (
    "PERFORM analytics_bump_message(NEW.tenant_id, new_day, NEW.direction, NEW.channel, NEW.status, 1);"
)
COUNT_DELETE = (
    "PERFORM analytics_bump_message(OLD.tenant_id, old_day, OLD.direction, OLD.channel, OLD.status, -1);"
)
# Both counter rows in key order: two updates moving counts between the same keys cannot deadlock.
COUNT_UPDATE = """
    IF (old_day, OLD.direction, OLD.channel, OLD.status) < (new_day, NEW.direction, NEW.channel, NEW.status)
    THEN
        PERFORM analytics_bump_message(OLD.tenant_id, old_day, OLD.direction, OLD.channel, OLD.status, -1);
        PERFORM analytics_bump_message(NEW.tenant_id, new_day, NEW.direction, NEW.channel, NEW.status, 1);
    ELSIF (old_day, OLD.direction, OLD.channel, OLD.status)
            > (new_day, NEW.direction, NEW.channel, NEW.status) THEN
        PERFORM analytics_bump_message(NEW.tenant_id, new_day, NEW.direction, NEW.channel, NEW.status, 1);
        PERFORM analytics_bump_message(OLD.tenant_id, old_day, OLD.direction, OLD.channel, OLD.status, -1);
    END IF;
"""

COUNT_COMMUNICATION = f"""
CREATE FUNCTION analytics_count_communication() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    zone text;
    old_day date;
    new_day date;
BEGIN
    IF TG_OP = 'DELETE' THEN
        zone := analytics_zone(OLD.tenant_id);
    ELSE
        zone := analytics_zone(NEW.tenant_id);
    END IF;
    IF zone IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        new_day := (NEW.created_at AT TIME ZONE zone)::date;
        {COUNT_INSERT}
        RETURN NULL;
    END IF;
    old_day := (OLD.created_at AT TIME ZONE zone)::date;
    IF TG_OP = 'DELETE' THEN
        {COUNT_DELETE}
        RETURN NULL;
    END IF;
    new_day := (NEW.created_at AT TIME ZONE zone)::date;
    {COUNT_UPDATE}
    RETURN NULL;
END
$$;
"""

# analytics_on_communication as migration 0008 made it, without the message counts (`with_counts`) or
# with them (the downgrade).
ON_COMMUNICATION = """
CREATE OR REPLACE FUNCTION analytics_on_communication() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    zone text;
    old_day date;
    new_day date;
    score record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        zone := analytics_zone(OLD.tenant_id);
    ELSE
        zone := analytics_zone(NEW.tenant_id);
    END IF;
    IF zone IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        new_day := (NEW.created_at AT TIME ZONE zone)::date;
        {count_insert}
        IF NEW.patient_id IS NOT NULL THEN
            PERFORM analytics_lock_stripe(analytics_patient_stripe(NEW.patient_id));
            PERFORM analytics_reply_place(
                zone, NEW.tenant_id, NEW.patient_id, NEW.id, NEW.direction, NEW.created_at);
        END IF;
        RETURN NULL;
    END IF;
    old_day := (OLD.created_at AT TIME ZONE zone)::date;
    IF TG_OP = 'DELETE' THEN
        {count_delete}
        IF OLD.patient_id IS NOT NULL THEN
            PERFORM analytics_lock_stripe(analytics_patient_stripe(OLD.patient_id));
            PERFORM analytics_reply_remove(zone, OLD.patient_id, OLD.id, OLD.direction, OLD.created_at);
        END IF;
        RETURN NULL;
    END IF;
    new_day := (NEW.created_at AT TIME ZONE zone)::date;
    {count_update}
    -- A scored message that moves to another day (or stops or starts being inbound) moves its score.
    IF (old_day, OLD.direction) IS DISTINCT FROM (new_day, NEW.direction) THEN
        SELECT compound, label INTO score FROM message_sentiments WHERE communication_id = NEW.id;
        IF FOUND THEN
            IF OLD.direction = 'inbound' THEN
                PERFORM analytics_bump_sentiment(OLD.tenant_id, old_day, score.compound, score.label, -1);
            END IF;
            IF NEW.direction = 'inbound' THEN
                PERFORM analytics_bump_sentiment(NEW.tenant_id, new_day, score.compound, score.label, 1);
            END IF;
        END IF;
    END IF;
    IF (OLD.patient_id, OLD.direction, OLD.created_at)
            IS DISTINCT FROM (NEW.patient_id, NEW.direction, NEW.created_at) THEN
        -- Both patients' stripes in order (a merge relinks messages between two patients).
        IF OLD.patient_id IS NOT NULL AND NEW.patient_id IS NOT NULL AND OLD.patient_id <> NEW.patient_id THEN
            PERFORM analytics_lock_stripe(
                least(analytics_patient_stripe(OLD.patient_id), analytics_patient_stripe(NEW.patient_id)));
            PERFORM analytics_lock_stripe(
                greatest(analytics_patient_stripe(OLD.patient_id), analytics_patient_stripe(NEW.patient_id)));
        END IF;
        IF OLD.patient_id IS NOT NULL THEN
            PERFORM analytics_lock_stripe(analytics_patient_stripe(OLD.patient_id));
            PERFORM analytics_reply_remove(zone, OLD.patient_id, OLD.id, OLD.direction, OLD.created_at);
        END IF;
        IF NEW.patient_id IS NOT NULL THEN
            PERFORM analytics_lock_stripe(analytics_patient_stripe(NEW.patient_id));
            PERFORM analytics_reply_place(
                zone, NEW.tenant_id, NEW.patient_id, NEW.id, NEW.direction, NEW.created_at);
        END IF;
    ELSIF OLD.sent_at IS DISTINCT FROM NEW.sent_at AND NEW.direction = 'outbound' THEN
        UPDATE analytics_replies SET
            response_seconds = extract(epoch FROM replied_at - coalesce(NEW.sent_at, NEW.created_at)),
            bucket = analytics_reply_bucket(
                extract(epoch FROM replied_at - coalesce(NEW.sent_at, NEW.created_at))::double precision),
            updated_at = now()
        WHERE outbound_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;
"""

# The immediate part of the communications trigger: pairing and sentiment need no status or channel.
PAIRING_UPDATE = (
    "trg_communications_analytics_update",
    "communications",
    "UPDATE OF created_at, direction, patient_id, sent_at",
    "analytics_on_communication",
    "OLD.created_at IS DISTINCT FROM NEW.created_at OR OLD.direction IS DISTINCT FROM NEW.direction"
    " OR OLD.patient_id IS DISTINCT FROM NEW.patient_id OR OLD.sent_at IS DISTINCT FROM NEW.sent_at",
)
PAIRING_UPDATE_0008 = (
    "trg_communications_analytics_update",
    "communications",
    "UPDATE OF created_at, direction, channel, status, patient_id, sent_at",
    "analytics_on_communication",
    "OLD.created_at IS DISTINCT FROM NEW.created_at OR OLD.direction IS DISTINCT FROM NEW.direction"
    " OR OLD.channel IS DISTINCT FROM NEW.channel OR OLD.status IS DISTINCT FROM NEW.status"
    " OR OLD.patient_id IS DISTINCT FROM NEW.patient_id OR OLD.sent_at IS DISTINCT FROM NEW.sent_at",
)

DEFERRED_NAMES = ", ".join(spec[0] for spec in (*COUNTING, *NEW_COUNTING))

REBUILD = f"""
ALTER FUNCTION analytics_rebuild(uuid) RENAME TO analytics_rebuild_rows;
CREATE FUNCTION analytics_rebuild(p_tenant uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- The counts this transaction has pending go in first (and its later ones at once): the rebuild then
    -- replaces them all with what the tables hold, so nothing is counted twice.
    SET CONSTRAINTS {DEFERRED_NAMES} IMMEDIATE;
    PERFORM analytics_rebuild_rows(p_tenant);
END
$$;
"""


def upgrade() -> None:
    """Counting triggers fire at commit; the communications trigger keeps only what must be immediate."""
    for name, table, *_ in COUNTING:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    for spec in COUNTING:
        op.execute(_trigger(spec, at_commit=True))
    op.execute("DROP TRIGGER trg_communications_analytics_update ON communications")
    op.execute(ON_COMMUNICATION.format(count_insert="", count_delete="", count_update=""))
    op.execute(_trigger(PAIRING_UPDATE, at_commit=False))
    op.execute(COUNT_COMMUNICATION)
    for spec in NEW_COUNTING:
        op.execute(_trigger(spec, at_commit=True))
    op.execute(REBUILD)


def downgrade() -> None:
    """The triggers of migration 0008, immediate."""
    op.execute("DROP FUNCTION analytics_rebuild(uuid)")
    op.execute("ALTER FUNCTION analytics_rebuild_rows(uuid) RENAME TO analytics_rebuild")
    for name, table, *_ in NEW_COUNTING:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    op.execute("DROP FUNCTION analytics_count_communication()")
    op.execute("DROP TRIGGER trg_communications_analytics_update ON communications")
    op.execute(
        ON_COMMUNICATION.format(
            count_insert=COUNT_INSERT, count_delete=COUNT_DELETE, count_update=COUNT_UPDATE
        )
    )
    op.execute(_trigger(PAIRING_UPDATE_0008, at_commit=False))
    for name, table, *_ in COUNTING:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    for spec in COUNTING:
        op.execute(_trigger(spec, at_commit=False))
