"""analytics rollups: daily counters of appointments, messages and sentiment, and patients' replies with a
response-time histogram, all kept by triggers so the dashboard sums a few rows per day

Tables (models in domain/analytics/models.py), all keyed on the tenant and its local `day`:
- `analytics_appointment_daily` (status, source channel) and `analytics_appointment_practitioner_daily`
  (practitioner), by the day of `appointments.start_time`;
- `analytics_communication_daily` (direction, channel, status), by the day of `communications.created_at`;
- `analytics_sentiment_daily` (scored, sum of compound scores, count per label) of inbound messages;
- `analytics_replies`: one row per reply, the message right after an outbound message in the patient's
  conversation when it is inbound (order: created_at, inbound before outbound at the same instant, id), so
  each outbound message is answered at most once, by the first inbound message after it; with its
  response seconds (from `coalesce(sent_at, created_at)` of the outbound message) and their bucket;
- `analytics_reply_daily`: the number of replies per day and response-time bucket;
- `analytics_journey_daily` (event: started / completed / cancelled / failed, by the day of the instance's
  started_at / completed_at / cancelled_at / updated_at) and `analytics_journey_stage_daily` (journey,
  stage: completed stages with a start, and the sum of their durations), by the day of completion.
The partial indexes `ix_journey_instance_stages_active_started` and `ix_tickets_tenant_resolved` serve the
overdue-journeys count and the tickets resolved in a period.

"Day" is the local date in `tenants.timezone`. Changing a tenant's time zone rebuilds its rows
(`analytics_rebuild(tenant)`, also what this migration runs for the existing data, and what a bulk load
with triggers disabled runs afterwards).

Triggers (row level, in the writing transaction, so every write path counts: ORM flushes, bulk UPDATE
statements, cascades, psql):
- appointments: insert +1, delete -1, an update of start_time / status / source_channel / practitioner_id
  moves one count from the old key to the new one;
- communications: the same for day / direction / channel / status; an insert, delete or move (patient,
  direction, created_at) re-pairs the replies around the message's place in the conversation; a change
  of `sent_at` recomputes the response time of the reply to it; BEFORE DELETE takes an inbound
  message's sentiment out of the rollup (the cascade that deletes the score can no longer see the
  message);
- message_sentiments: insert / delete / update adjust the sentiment rollup;
- analytics_replies: keep the histogram;
- journey_instances: the events move with status and their timestamps; BEFORE DELETE takes the
  instance's completed stages out (the cascade that deletes them can no longer see the instance's journey);
- journey_instance_stages: a completed stage adds its duration, and moves when it changes;
- tenants: AFTER UPDATE OF timezone rebuilds the tenant.

Concurrency. Counters are upserts (`INSERT ... ON CONFLICT DO UPDATE SET n = n + delta`); a row that
reaches 0 stays (readers skip it). An upsert holds the counter row's lock until the writing transaction
ends, so concurrent writers of the same tenant, day and key queue behind each other's commit; that is
cheap while write transactions stay short (one request, one activity), and costly if one is held open.

Deadlocks. One trigger call takes at most two rows of a rollup table, in key order (two updates moving a
count between the same two keys in opposite directions wait for each other instead of deadlocking), and
its tables in a fixed order: message counts, sentiment, replies, histogram; appointment counts before
practitioner counts; journey events in the order cancelled, completed, failed, started. Two transactions
can still deadlock when each has already taken counter rows, in earlier statements, that the other now
needs (say both update two messages of the same day and channel in opposite order): PostgreSQL detects
it after `deadlock_timeout` and aborts one, which the API answers with the retryable 409, exactly as for
the row locks the same two transactions take on the messages themselves. Reply pairing serializes per
patient (`pg_advisory_xact_lock` on one of 256 stripes of patients, so a statement touching thousands of
patients holds at most 256 such locks), so two messages of one patient written concurrently pair as if
written one after the other (READ COMMITTED: the trigger's statements after the lock see what committed
before it); a statement writing several patients' messages takes their stripes in row order, a patient
merge in stripe order. Every trigger call also takes the tenant's analytics lock (one of 1,024 stripes)
in shared mode, and `analytics_rebuild` takes it exclusively: a rebuild waits for the tenant's writers in
flight and holds new ones back until it commits, so recomputed rows and trigger updates never
interleave.

Revision ID: 0008_analytics_rollups
Revises: 0007_message_dispatch
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_analytics_rollups"
down_revision: str | None = "0007_message_dispatch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLLUPS = (
    "analytics_journey_daily",
    "analytics_journey_stage_daily",
    "analytics_appointment_daily",
    "analytics_appointment_practitioner_daily",
    "analytics_communication_daily",
    "analytics_sentiment_daily",
    "analytics_reply_daily",
)

# Buckets of response seconds: 0 for up to one second (and the odd negative value, a reply that arrived
# before its outbound message was marked sent), then ceil(ln(s) / ln(1.02)): each bucket 2 % wide.
FUNCTIONS = r"""
CREATE FUNCTION analytics_reply_bucket(seconds double precision) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN seconds <= 1 THEN 0 ELSE ceil(ln(seconds) / ln(1.02::double precision))::integer END
$$;

-- The tenant's stripe of the analytics lock (1,024 stripes: a statement touching thousands of tenants
-- holds at most 1,024 such locks; a rebuild holds back the writers of the tenants sharing its stripe).
CREATE FUNCTION analytics_tenant_stripe(p_tenant uuid) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtext(p_tenant::text) & 1023
$$;

-- The tenant's time zone, for a trigger about to adjust its rollups (holding the tenant's analytics lock
-- in shared mode). NULL when there is nothing to do: the tenant is being deleted (its rollups go with
-- it), or analytics_rebuild is recomputing the rollups in this transaction.
CREATE FUNCTION analytics_zone(p_tenant uuid) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    zone text;
BEGIN
    IF current_setting('prm.analytics_rebuilding', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock_shared(hashtext('prm.analytics'), analytics_tenant_stripe(p_tenant));
    SELECT timezone INTO zone FROM tenants WHERE id = p_tenant;
    RETURN zone;
END
$$;

CREATE FUNCTION analytics_bump_appointment(
    p_tenant uuid, p_day date, p_status text, p_channel text, p_delta integer
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_appointment_daily AS r (tenant_id, day, status, source_channel, n)
    VALUES (p_tenant, p_day, p_status, p_channel, p_delta)
    ON CONFLICT (tenant_id, day, status, source_channel)
    DO UPDATE SET n = r.n + EXCLUDED.n, updated_at = now();
END
$$;

CREATE FUNCTION analytics_bump_practitioner(
    p_tenant uuid, p_day date, p_practitioner uuid, p_delta integer
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_appointment_practitioner_daily AS r (tenant_id, day, practitioner_id, n)
    VALUES (p_tenant, p_day, p_practitioner, p_delta)
    ON CONFLICT (tenant_id, day, practitioner_id) DO UPDATE SET n = r.n + EXCLUDED.n, updated_at = now();
END
$$;

CREATE FUNCTION analytics_bump_message(
    p_tenant uuid, p_day date, p_direction text, p_channel text, p_status text, p_delta integer
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_communication_daily AS r (tenant_id, day, direction, channel, status, n)
    VALUES (p_tenant, p_day, p_direction, p_channel, p_status, p_delta)
    ON CONFLICT (tenant_id, day, direction, channel, status)
    DO UPDATE SET n = r.n + EXCLUDED.n, updated_at = now();
END
$$;

CREATE FUNCTION analytics_bump_sentiment(
    p_tenant uuid, p_day date, p_compound double precision, p_label text, p_delta integer
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_sentiment_daily AS r
        (tenant_id, day, scored, compound_sum, positive, neutral, negative)
    VALUES (
        p_tenant, p_day, p_delta, p_delta * p_compound::numeric,
        CASE WHEN p_label = 'positive' THEN p_delta ELSE 0 END,
        CASE WHEN p_label = 'neutral' THEN p_delta ELSE 0 END,
        CASE WHEN p_label = 'negative' THEN p_delta ELSE 0 END
    )
    ON CONFLICT (tenant_id, day) DO UPDATE SET
        scored = r.scored + EXCLUDED.scored,
        compound_sum = r.compound_sum + EXCLUDED.compound_sum,
        positive = r.positive + EXCLUDED.positive,
        neutral = r.neutral + EXCLUDED.neutral,
        negative = r.negative + EXCLUDED.negative,
        updated_at = now();
END
$$;

CREATE FUNCTION analytics_bump_reply(p_tenant uuid, p_day date, p_bucket integer, p_delta integer)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_reply_daily AS r (tenant_id, day, bucket, n)
    VALUES (p_tenant, p_day, p_bucket, p_delta)
    ON CONFLICT (tenant_id, day, bucket) DO UPDATE SET n = r.n + EXCLUDED.n, updated_at = now();
END
$$;

CREATE FUNCTION analytics_on_appointment() RETURNS trigger
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
        new_day := (NEW.start_time AT TIME ZONE zone)::date;
        PERFORM analytics_bump_appointment(
            NEW.tenant_id, new_day, NEW.status, coalesce(NEW.source_channel, ''), 1);
        PERFORM analytics_bump_practitioner(NEW.tenant_id, new_day, NEW.practitioner_id, 1);
        RETURN NULL;
    END IF;
    old_day := (OLD.start_time AT TIME ZONE zone)::date;
    IF TG_OP = 'DELETE' THEN
        PERFORM analytics_bump_appointment(
            OLD.tenant_id, old_day, OLD.status, coalesce(OLD.source_channel, ''), -1);
        PERFORM analytics_bump_practitioner(OLD.tenant_id, old_day, OLD.practitioner_id, -1);
        RETURN NULL;
    END IF;
    new_day := (NEW.start_time AT TIME ZONE zone)::date;
    -- Both rows of a table in key order: two updates moving counts between the same keys cannot deadlock.
    IF (old_day, OLD.status, coalesce(OLD.source_channel, ''))
            < (new_day, NEW.status, coalesce(NEW.source_channel, '')) THEN
        PERFORM analytics_bump_appointment(
            OLD.tenant_id, old_day, OLD.status, coalesce(OLD.source_channel, ''), -1);
        PERFORM analytics_bump_appointment(
            NEW.tenant_id, new_day, NEW.status, coalesce(NEW.source_channel, ''), 1);
    ELSIF (old_day, OLD.status, coalesce(OLD.source_channel, ''))
            > (new_day, NEW.status, coalesce(NEW.source_channel, '')) THEN
        PERFORM analytics_bump_appointment(
            NEW.tenant_id, new_day, NEW.status, coalesce(NEW.source_channel, ''), 1);
        PERFORM analytics_bump_appointment(
            OLD.tenant_id, old_day, OLD.status, coalesce(OLD.source_channel, ''), -1);
    END IF;
    IF (old_day, OLD.practitioner_id) < (new_day, NEW.practitioner_id) THEN
        PERFORM analytics_bump_practitioner(OLD.tenant_id, old_day, OLD.practitioner_id, -1);
        PERFORM analytics_bump_practitioner(NEW.tenant_id, new_day, NEW.practitioner_id, 1);
    ELSIF (old_day, OLD.practitioner_id) > (new_day, NEW.practitioner_id) THEN
        PERFORM analytics_bump_practitioner(NEW.tenant_id, new_day, NEW.practitioner_id, 1);
        PERFORM analytics_bump_practitioner(OLD.tenant_id, old_day, OLD.practitioner_id, -1);
    END IF;
    RETURN NULL;
END
$$;

-- Record that `p_inbound` answers `p_outbound` (replacing what either was paired with).
CREATE FUNCTION analytics_reply_record(
    p_zone text, p_tenant uuid, p_patient uuid, p_outbound uuid, p_sent timestamptz,
    p_inbound uuid, p_replied_at timestamptz
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    seconds double precision := extract(epoch FROM p_replied_at - p_sent)::double precision;
BEGIN
    DELETE FROM analytics_replies WHERE inbound_id = p_inbound AND outbound_id <> p_outbound;
    INSERT INTO analytics_replies AS r
        (tenant_id, patient_id, outbound_id, inbound_id, replied_at, response_seconds, bucket, day)
    VALUES (
        p_tenant, p_patient, p_outbound, p_inbound, p_replied_at, seconds,
        analytics_reply_bucket(seconds), (p_replied_at AT TIME ZONE p_zone)::date
    )
    ON CONFLICT (outbound_id) DO UPDATE SET
        patient_id = EXCLUDED.patient_id,
        inbound_id = EXCLUDED.inbound_id,
        replied_at = EXCLUDED.replied_at,
        response_seconds = EXCLUDED.response_seconds,
        bucket = EXCLUDED.bucket,
        day = EXCLUDED.day,
        updated_at = now()
    WHERE (r.inbound_id, r.response_seconds, r.day)
        IS DISTINCT FROM (EXCLUDED.inbound_id, EXCLUDED.response_seconds, EXCLUDED.day);
END
$$;

-- Recompute the reply to one outbound message: the message right after it in the patient's
-- conversation, when that one is inbound.
CREATE FUNCTION analytics_reply_refresh(p_zone text, p_outbound uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    o record;
    s record;
BEGIN
    SELECT id, tenant_id, patient_id, direction, created_at, coalesce(sent_at, created_at) AS sent
    INTO o FROM communications WHERE id = p_outbound;
    IF NOT FOUND OR o.direction <> 'outbound' OR o.patient_id IS NULL THEN
        DELETE FROM analytics_replies WHERE outbound_id = p_outbound;
        RETURN;
    END IF;
    SELECT c.id, c.direction, c.created_at INTO s
    FROM communications c
    WHERE c.patient_id = o.patient_id AND c.created_at >= o.created_at
      AND (c.created_at, c.direction = 'outbound', c.id) > (o.created_at, true, o.id)
    ORDER BY c.created_at, c.direction = 'outbound', c.id
    LIMIT 1;
    IF NOT FOUND OR s.direction <> 'inbound' THEN
        DELETE FROM analytics_replies WHERE outbound_id = p_outbound;
        RETURN;
    END IF;
    PERFORM analytics_reply_record(p_zone, o.tenant_id, o.patient_id, o.id, o.sent, s.id, s.created_at);
END
$$;

-- A message now stands at (p_at, p_direction, p_id) in the patient's conversation: pair around it.
CREATE FUNCTION analytics_reply_place(
    p_zone text, p_tenant uuid, p_patient uuid, p_id uuid, p_direction text, p_at timestamptz
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    before record;
BEGIN
    SELECT c.id, c.direction, coalesce(c.sent_at, c.created_at) AS sent INTO before
    FROM communications c
    WHERE c.patient_id = p_patient AND c.created_at <= p_at
      AND (c.created_at, c.direction = 'outbound', c.id) < (p_at, p_direction = 'outbound', p_id)
    ORDER BY c.created_at DESC, c.direction = 'outbound' DESC, c.id DESC
    LIMIT 1;
    IF p_direction = 'inbound' THEN
        IF FOUND AND before.direction = 'outbound' THEN
            PERFORM analytics_reply_record(p_zone, p_tenant, p_patient, before.id, before.sent, p_id, p_at);
        END IF;
    ELSE
        -- An outbound message right before this one is no longer followed by an inbound message.
        IF FOUND AND before.direction = 'outbound' THEN
            DELETE FROM analytics_replies WHERE outbound_id = before.id;
        END IF;
        PERFORM analytics_reply_refresh(p_zone, p_id);
    END IF;
END
$$;

-- The message left its place (p_at, p_direction, p_id) in the patient's conversation: re-pair there.
CREATE FUNCTION analytics_reply_remove(
    p_zone text, p_patient uuid, p_id uuid, p_direction text, p_at timestamptz
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    before record;
    answered uuid;
BEGIN
    IF p_direction = 'outbound' THEN
        DELETE FROM analytics_replies WHERE outbound_id = p_id;
    ELSE
        DELETE FROM analytics_replies WHERE inbound_id = p_id RETURNING outbound_id INTO answered;
    END IF;
    SELECT c.id, c.direction INTO before
    FROM communications c
    WHERE c.patient_id = p_patient AND c.created_at <= p_at AND c.id <> p_id
      AND (c.created_at, c.direction = 'outbound', c.id) < (p_at, p_direction = 'outbound', p_id)
    ORDER BY c.created_at DESC, c.direction = 'outbound' DESC, c.id DESC
    LIMIT 1;
    IF FOUND AND before.direction = 'outbound' THEN
        PERFORM analytics_reply_refresh(p_zone, before.id);
    END IF;
    IF answered IS NOT NULL AND answered IS DISTINCT FROM before.id THEN
        PERFORM analytics_reply_refresh(p_zone, answered);
    END IF;
END
$$;

-- Reply pairing serializes per patient, through one of 256 lock stripes: a statement touching thousands
-- of patients (a retention purge, a bulk relink) holds at most 256 advisory locks, never enough to fill
-- the shared lock table.
CREATE FUNCTION analytics_patient_stripe(p_patient uuid) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtext(p_patient::text) & 255
$$;

CREATE FUNCTION analytics_lock_stripe(p_stripe integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('prm.replies'), p_stripe);
END
$$;

CREATE FUNCTION analytics_on_communication() RETURNS trigger
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
        PERFORM analytics_bump_message(NEW.tenant_id, new_day, NEW.direction, NEW.channel, NEW.status, 1);
        IF NEW.patient_id IS NOT NULL THEN
            PERFORM analytics_lock_stripe(analytics_patient_stripe(NEW.patient_id));
            PERFORM analytics_reply_place(
                zone, NEW.tenant_id, NEW.patient_id, NEW.id, NEW.direction, NEW.created_at);
        END IF;
        RETURN NULL;
    END IF;
    old_day := (OLD.created_at AT TIME ZONE zone)::date;
    IF TG_OP = 'DELETE' THEN
        PERFORM analytics_bump_message(OLD.tenant_id, old_day, OLD.direction, OLD.channel, OLD.status, -1);
        IF OLD.patient_id IS NOT NULL THEN
            PERFORM analytics_lock_stripe(analytics_patient_stripe(OLD.patient_id));
            PERFORM analytics_reply_remove(zone, OLD.patient_id, OLD.id, OLD.direction, OLD.created_at);
        END IF;
        RETURN NULL;
    END IF;
    new_day := (NEW.created_at AT TIME ZONE zone)::date;
    -- Both counter rows in key order: two updates moving counts between the same keys cannot deadlock.
    IF (old_day, OLD.direction, OLD.channel, OLD.status) < (new_day, NEW.direction, NEW.channel, NEW.status)
    THEN
        PERFORM analytics_bump_message(OLD.tenant_id, old_day, OLD.direction, OLD.channel, OLD.status, -1);
        PERFORM analytics_bump_message(NEW.tenant_id, new_day, NEW.direction, NEW.channel, NEW.status, 1);
    ELSIF (old_day, OLD.direction, OLD.channel, OLD.status)
            > (new_day, NEW.direction, NEW.channel, NEW.status) THEN
        PERFORM analytics_bump_message(NEW.tenant_id, new_day, NEW.direction, NEW.channel, NEW.status, 1);
        PERFORM analytics_bump_message(OLD.tenant_id, old_day, OLD.direction, OLD.channel, OLD.status, -1);
    END IF;
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

-- Before an inbound message goes, its sentiment score leaves the rollup: the cascade that deletes the
-- score runs after the message is gone, when the score's day can no longer be known.
CREATE FUNCTION analytics_on_message_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    zone text;
    score record;
BEGIN
    zone := analytics_zone(OLD.tenant_id);
    IF zone IS NOT NULL THEN
        SELECT compound, label INTO score FROM message_sentiments WHERE communication_id = OLD.id;
        IF FOUND THEN
            PERFORM analytics_bump_sentiment(
                OLD.tenant_id, (OLD.created_at AT TIME ZONE zone)::date, score.compound, score.label, -1);
        END IF;
    END IF;
    RETURN OLD;
END
$$;

CREATE FUNCTION analytics_on_sentiment() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    zone text;
    message record;
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        zone := analytics_zone(OLD.tenant_id);
        SELECT created_at, direction INTO message FROM communications WHERE id = OLD.communication_id;
        -- Not found: the message itself is being deleted and took the score out already.
        IF zone IS NOT NULL AND FOUND AND message.direction = 'inbound' THEN
            PERFORM analytics_bump_sentiment(
                OLD.tenant_id, (message.created_at AT TIME ZONE zone)::date, OLD.compound, OLD.label, -1);
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        zone := analytics_zone(NEW.tenant_id);
        SELECT created_at, direction INTO message FROM communications WHERE id = NEW.communication_id;
        IF zone IS NOT NULL AND FOUND AND message.direction = 'inbound' THEN
            PERFORM analytics_bump_sentiment(
                NEW.tenant_id, (message.created_at AT TIME ZONE zone)::date, NEW.compound, NEW.label, 1);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION analytics_on_reply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF analytics_zone(OLD.tenant_id) IS NOT NULL THEN
            PERFORM analytics_bump_reply(OLD.tenant_id, OLD.day, OLD.bucket, -1);
        END IF;
        RETURN NULL;
    END IF;
    IF analytics_zone(NEW.tenant_id) IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM analytics_bump_reply(NEW.tenant_id, NEW.day, NEW.bucket, 1);
    ELSIF (OLD.day, OLD.bucket) < (NEW.day, NEW.bucket) THEN
        PERFORM analytics_bump_reply(OLD.tenant_id, OLD.day, OLD.bucket, -1);
        PERFORM analytics_bump_reply(NEW.tenant_id, NEW.day, NEW.bucket, 1);
    ELSIF (OLD.day, OLD.bucket) > (NEW.day, NEW.bucket) THEN
        PERFORM analytics_bump_reply(NEW.tenant_id, NEW.day, NEW.bucket, 1);
        PERFORM analytics_bump_reply(OLD.tenant_id, OLD.day, OLD.bucket, -1);
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION analytics_bump_journey(p_tenant uuid, p_day date, p_event text, p_delta integer)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_journey_daily AS r (tenant_id, day, event, n)
    VALUES (p_tenant, p_day, p_event, p_delta)
    ON CONFLICT (tenant_id, day, event) DO UPDATE SET n = r.n + EXCLUDED.n, updated_at = now();
END
$$;

-- One event of an instance moves from day p_old to day p_new (NULL: the instance has no such event).
CREATE FUNCTION analytics_move_journey_event(p_tenant uuid, p_event text, p_old date, p_new date)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_old IS NOT DISTINCT FROM p_new THEN
        RETURN;
    END IF;
    IF p_old IS NOT NULL AND (p_new IS NULL OR p_old < p_new) THEN
        PERFORM analytics_bump_journey(p_tenant, p_old, p_event, -1);
        IF p_new IS NOT NULL THEN
            PERFORM analytics_bump_journey(p_tenant, p_new, p_event, 1);
        END IF;
    ELSE
        PERFORM analytics_bump_journey(p_tenant, p_new, p_event, 1);
        IF p_old IS NOT NULL THEN
            PERFORM analytics_bump_journey(p_tenant, p_old, p_event, -1);
        END IF;
    END IF;
END
$$;

CREATE FUNCTION analytics_bump_stage(
    p_tenant uuid, p_day date, p_journey uuid, p_order integer, p_name text, p_seconds numeric,
    p_delta integer
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_journey_stage_daily AS r
        (tenant_id, day, journey_id, order_index, stage_name, n, seconds_sum)
    VALUES (p_tenant, p_day, p_journey, p_order, p_name, p_delta, p_delta * p_seconds)
    ON CONFLICT (tenant_id, day, journey_id, order_index, stage_name) DO UPDATE SET
        n = r.n + EXCLUDED.n, seconds_sum = r.seconds_sum + EXCLUDED.seconds_sum, updated_at = now();
END
$$;

-- Add (p_delta = 1) or take out (-1) every completed stage of one instance, counted under p_journey.
CREATE FUNCTION analytics_count_instance_stages(
    p_zone text, p_tenant uuid, p_instance uuid, p_journey uuid, p_delta integer
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    stage record;
BEGIN
    FOR stage IN
        SELECT (completed_at AT TIME ZONE p_zone)::date AS day, order_index, name,
               extract(epoch FROM completed_at - started_at) AS seconds
        FROM journey_instance_stages
        WHERE instance_id = p_instance AND status = 'completed'
          AND started_at IS NOT NULL AND completed_at IS NOT NULL
        ORDER BY 1, 2, 3
    LOOP
        PERFORM analytics_bump_stage(
            p_tenant, stage.day, p_journey, stage.order_index, stage.name, stage.seconds, p_delta);
    END LOOP;
END
$$;

CREATE FUNCTION analytics_on_journey_instance() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    zone text;
    tenant uuid;
    o_started date;
    o_completed date;
    o_cancelled date;
    o_failed date;
    n_started date;
    n_completed date;
    n_cancelled date;
    n_failed date;
BEGIN
    IF TG_OP = 'DELETE' THEN
        tenant := OLD.tenant_id;
    ELSE
        tenant := NEW.tenant_id;
    END IF;
    zone := analytics_zone(tenant);
    IF zone IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        o_started := (OLD.started_at AT TIME ZONE zone)::date;
        IF OLD.status = 'completed' THEN o_completed := (OLD.completed_at AT TIME ZONE zone)::date; END IF;
        IF OLD.status = 'cancelled' THEN o_cancelled := (OLD.cancelled_at AT TIME ZONE zone)::date; END IF;
        IF OLD.status = 'failed' THEN o_failed := (OLD.updated_at AT TIME ZONE zone)::date; END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        n_started := (NEW.started_at AT TIME ZONE zone)::date;
        IF NEW.status = 'completed' THEN n_completed := (NEW.completed_at AT TIME ZONE zone)::date; END IF;
        IF NEW.status = 'cancelled' THEN n_cancelled := (NEW.cancelled_at AT TIME ZONE zone)::date; END IF;
        IF NEW.status = 'failed' THEN n_failed := (NEW.updated_at AT TIME ZONE zone)::date; END IF;
    END IF;
    PERFORM analytics_move_journey_event(tenant, 'cancelled', o_cancelled, n_cancelled);
    PERFORM analytics_move_journey_event(tenant, 'completed', o_completed, n_completed);
    PERFORM analytics_move_journey_event(tenant, 'failed', o_failed, n_failed);
    PERFORM analytics_move_journey_event(tenant, 'started', o_started, n_started);
    IF TG_OP = 'UPDATE' AND OLD.journey_id IS DISTINCT FROM NEW.journey_id THEN
        PERFORM analytics_count_instance_stages(zone, tenant, NEW.id, OLD.journey_id, -1);
        PERFORM analytics_count_instance_stages(zone, tenant, NEW.id, NEW.journey_id, 1);
    END IF;
    RETURN NULL;
END
$$;

-- Before an instance goes, its completed stages leave the rollup: the cascade that deletes them runs
-- after the instance is gone, when their journey can no longer be known.
CREATE FUNCTION analytics_on_journey_instance_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    zone text;
BEGIN
    zone := analytics_zone(OLD.tenant_id);
    IF zone IS NOT NULL THEN
        PERFORM analytics_count_instance_stages(zone, OLD.tenant_id, OLD.id, OLD.journey_id, -1);
    END IF;
    RETURN OLD;
END
$$;

CREATE FUNCTION analytics_on_journey_stage() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    zone text;
    o_journey uuid;
    n_journey uuid;
    o_day date;
    n_day date;
BEGIN
    IF TG_OP = 'DELETE' THEN
        zone := analytics_zone(OLD.tenant_id);
    ELSE
        zone := analytics_zone(NEW.tenant_id);
    END IF;
    IF zone IS NULL THEN
        RETURN NULL;
    END IF;
    -- A journey not found: the instance itself is being deleted and took its stages out already.
    IF TG_OP <> 'INSERT' AND OLD.status = 'completed' AND OLD.started_at IS NOT NULL
            AND OLD.completed_at IS NOT NULL THEN
        SELECT journey_id INTO o_journey FROM journey_instances WHERE id = OLD.instance_id;
        o_day := (OLD.completed_at AT TIME ZONE zone)::date;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.status = 'completed' AND NEW.started_at IS NOT NULL
            AND NEW.completed_at IS NOT NULL THEN
        SELECT journey_id INTO n_journey FROM journey_instances WHERE id = NEW.instance_id;
        n_day := (NEW.completed_at AT TIME ZONE zone)::date;
    END IF;
    IF o_journey IS NOT NULL AND (n_journey IS NULL
            OR (o_day, o_journey, OLD.order_index, OLD.name) <= (n_day, n_journey, NEW.order_index, NEW.name))
    THEN
        PERFORM analytics_bump_stage(OLD.tenant_id, o_day, o_journey, OLD.order_index, OLD.name,
                                     extract(epoch FROM OLD.completed_at - OLD.started_at), -1);
        o_journey := NULL;
    END IF;
    IF n_journey IS NOT NULL THEN
        PERFORM analytics_bump_stage(NEW.tenant_id, n_day, n_journey, NEW.order_index, NEW.name,
                                     extract(epoch FROM NEW.completed_at - NEW.started_at), 1);
    END IF;
    IF o_journey IS NOT NULL THEN
        PERFORM analytics_bump_stage(OLD.tenant_id, o_day, o_journey, OLD.order_index, OLD.name,
                                     extract(epoch FROM OLD.completed_at - OLD.started_at), -1);
    END IF;
    RETURN NULL;
END
$$;

-- Recompute every rollup row of one tenant from the base tables (its time zone changed, the rows were
-- bulk-loaded with triggers off, or this migration fills them for the first time).
CREATE FUNCTION analytics_rebuild(p_tenant uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    zone text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('prm.analytics'), analytics_tenant_stripe(p_tenant));
    SELECT timezone INTO zone FROM tenants WHERE id = p_tenant;
    IF zone IS NULL THEN
        RETURN;
    END IF;
    PERFORM set_config('prm.analytics_rebuilding', 'on', true);

    DELETE FROM analytics_appointment_daily WHERE tenant_id = p_tenant;
    INSERT INTO analytics_appointment_daily (tenant_id, day, status, source_channel, n)
    SELECT p_tenant, (start_time AT TIME ZONE zone)::date, status, coalesce(source_channel, ''), count(*)
    FROM appointments WHERE tenant_id = p_tenant
    GROUP BY 2, 3, 4;

    DELETE FROM analytics_appointment_practitioner_daily WHERE tenant_id = p_tenant;
    INSERT INTO analytics_appointment_practitioner_daily (tenant_id, day, practitioner_id, n)
    SELECT p_tenant, (start_time AT TIME ZONE zone)::date, practitioner_id, count(*)
    FROM appointments WHERE tenant_id = p_tenant
    GROUP BY 2, 3;

    DELETE FROM analytics_communication_daily WHERE tenant_id = p_tenant;
    INSERT INTO analytics_communication_daily (tenant_id, day, direction, channel, status, n)
    SELECT p_tenant, (created_at AT TIME ZONE zone)::date, direction, channel, status, count(*)
    FROM communications WHERE tenant_id = p_tenant
    GROUP BY 2, 3, 4, 5;

    DELETE FROM analytics_sentiment_daily WHERE tenant_id = p_tenant;
    INSERT INTO analytics_sentiment_daily (tenant_id, day, scored, compound_sum, positive, neutral, negative)
    SELECT p_tenant, (c.created_at AT TIME ZONE zone)::date, count(*), sum(m.compound::numeric),
           count(*) FILTER (WHERE m.label = 'positive'),
           count(*) FILTER (WHERE m.label = 'neutral'),
           count(*) FILTER (WHERE m.label = 'negative')
    FROM message_sentiments m JOIN communications c ON c.id = m.communication_id
    WHERE m.tenant_id = p_tenant AND c.direction = 'inbound'
    GROUP BY 2;

    -- A reply is an inbound message whose predecessor in the patient's conversation is outbound.
    DELETE FROM analytics_replies WHERE tenant_id = p_tenant;
    INSERT INTO analytics_replies
        (tenant_id, patient_id, outbound_id, inbound_id, replied_at, response_seconds, bucket, day)
    SELECT p_tenant, patient_id, before_id, id, created_at, seconds, analytics_reply_bucket(seconds),
           (created_at AT TIME ZONE zone)::date
    FROM (
        SELECT id, patient_id, created_at, before_id,
               extract(epoch FROM created_at - before_sent)::double precision AS seconds
        FROM (
            SELECT id, patient_id, direction, created_at,
                   lag(id) OVER conversation AS before_id,
                   lag(direction) OVER conversation AS before_direction,
                   lag(coalesce(sent_at, created_at)) OVER conversation AS before_sent
            FROM communications
            WHERE tenant_id = p_tenant AND patient_id IS NOT NULL
            WINDOW conversation AS (PARTITION BY patient_id ORDER BY created_at, direction = 'outbound', id)
        ) AS ordered
        WHERE direction = 'inbound' AND before_direction = 'outbound'
    ) AS pairs;

    DELETE FROM analytics_journey_daily WHERE tenant_id = p_tenant;
    INSERT INTO analytics_journey_daily (tenant_id, day, event, n)
    SELECT p_tenant, day, event, count(*)
    FROM (
        SELECT (started_at AT TIME ZONE zone)::date, 'started' FROM journey_instances
        WHERE tenant_id = p_tenant AND started_at IS NOT NULL
        UNION ALL
        SELECT (completed_at AT TIME ZONE zone)::date, 'completed' FROM journey_instances
        WHERE tenant_id = p_tenant AND status = 'completed' AND completed_at IS NOT NULL
        UNION ALL
        SELECT (cancelled_at AT TIME ZONE zone)::date, 'cancelled' FROM journey_instances
        WHERE tenant_id = p_tenant AND status = 'cancelled' AND cancelled_at IS NOT NULL
        UNION ALL
        SELECT (updated_at AT TIME ZONE zone)::date, 'failed' FROM journey_instances
        WHERE tenant_id = p_tenant AND status = 'failed'
    ) AS events (day, event)
    GROUP BY day, event;

    DELETE FROM analytics_journey_stage_daily WHERE tenant_id = p_tenant;
    INSERT INTO analytics_journey_stage_daily
        (tenant_id, day, journey_id, order_index, stage_name, n, seconds_sum)
    SELECT p_tenant, (s.completed_at AT TIME ZONE zone)::date, i.journey_id, s.order_index, s.name, count(*),
           sum(extract(epoch FROM s.completed_at - s.started_at))
    FROM journey_instance_stages s JOIN journey_instances i ON i.id = s.instance_id
    WHERE s.tenant_id = p_tenant AND s.status = 'completed'
      AND s.started_at IS NOT NULL AND s.completed_at IS NOT NULL
    GROUP BY 2, 3, 4, 5;

    DELETE FROM analytics_reply_daily WHERE tenant_id = p_tenant;
    INSERT INTO analytics_reply_daily (tenant_id, day, bucket, n)
    SELECT p_tenant, day, bucket, count(*) FROM analytics_replies WHERE tenant_id = p_tenant GROUP BY 2, 3;

    PERFORM set_config('prm.analytics_rebuilding', 'off', true);
END
$$;

CREATE FUNCTION analytics_on_tenant_zone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM analytics_rebuild(NEW.id);
    RETURN NULL;
END
$$;
"""

TRIGGERS = """
CREATE TRIGGER trg_appointments_analytics AFTER INSERT OR DELETE ON appointments
FOR EACH ROW EXECUTE FUNCTION analytics_on_appointment();

CREATE TRIGGER trg_appointments_analytics_update
AFTER UPDATE OF start_time, status, source_channel, practitioner_id ON appointments
FOR EACH ROW WHEN (
    OLD.start_time IS DISTINCT FROM NEW.start_time OR OLD.status IS DISTINCT FROM NEW.status
    OR OLD.source_channel IS DISTINCT FROM NEW.source_channel
    OR OLD.practitioner_id IS DISTINCT FROM NEW.practitioner_id
) EXECUTE FUNCTION analytics_on_appointment();

CREATE TRIGGER trg_communications_analytics AFTER INSERT OR DELETE ON communications
FOR EACH ROW EXECUTE FUNCTION analytics_on_communication();

CREATE TRIGGER trg_communications_analytics_update
AFTER UPDATE OF created_at, direction, channel, status, patient_id, sent_at ON communications
FOR EACH ROW WHEN (
    OLD.created_at IS DISTINCT FROM NEW.created_at OR OLD.direction IS DISTINCT FROM NEW.direction
    OR OLD.channel IS DISTINCT FROM NEW.channel OR OLD.status IS DISTINCT FROM NEW.status
    OR OLD.patient_id IS DISTINCT FROM NEW.patient_id OR OLD.sent_at IS DISTINCT FROM NEW.sent_at
) EXECUTE FUNCTION analytics_on_communication();

CREATE TRIGGER trg_communications_analytics_sentiment BEFORE DELETE ON communications
FOR EACH ROW WHEN (OLD.direction = 'inbound') EXECUTE FUNCTION analytics_on_message_delete();

CREATE TRIGGER trg_message_sentiments_analytics
AFTER INSERT OR DELETE OR UPDATE OF communication_id, compound, label ON message_sentiments
FOR EACH ROW EXECUTE FUNCTION analytics_on_sentiment();

CREATE TRIGGER trg_analytics_replies_histogram
AFTER INSERT OR DELETE OR UPDATE OF day, bucket ON analytics_replies
FOR EACH ROW EXECUTE FUNCTION analytics_on_reply();

CREATE TRIGGER trg_journey_instances_analytics AFTER INSERT OR DELETE ON journey_instances
FOR EACH ROW EXECUTE FUNCTION analytics_on_journey_instance();

CREATE TRIGGER trg_journey_instances_analytics_update
AFTER UPDATE OF status, started_at, completed_at, cancelled_at, updated_at, journey_id ON journey_instances
FOR EACH ROW WHEN (
    OLD.status IS DISTINCT FROM NEW.status OR OLD.started_at IS DISTINCT FROM NEW.started_at
    OR OLD.completed_at IS DISTINCT FROM NEW.completed_at
    OR OLD.cancelled_at IS DISTINCT FROM NEW.cancelled_at
    OR (NEW.status = 'failed' AND OLD.updated_at IS DISTINCT FROM NEW.updated_at)
    OR OLD.journey_id IS DISTINCT FROM NEW.journey_id
) EXECUTE FUNCTION analytics_on_journey_instance();

CREATE TRIGGER trg_journey_instances_analytics_stages BEFORE DELETE ON journey_instances
FOR EACH ROW EXECUTE FUNCTION analytics_on_journey_instance_delete();

CREATE TRIGGER trg_journey_instance_stages_analytics AFTER INSERT OR DELETE ON journey_instance_stages
FOR EACH ROW EXECUTE FUNCTION analytics_on_journey_stage();

CREATE TRIGGER trg_journey_instance_stages_analytics_update
AFTER UPDATE OF status, started_at, completed_at, order_index, name, instance_id ON journey_instance_stages
FOR EACH ROW WHEN (
    OLD.status IS DISTINCT FROM NEW.status OR OLD.started_at IS DISTINCT FROM NEW.started_at
    OR OLD.completed_at IS DISTINCT FROM NEW.completed_at OR OLD.order_index IS DISTINCT FROM NEW.order_index
    OR OLD.name IS DISTINCT FROM NEW.name OR OLD.instance_id IS DISTINCT FROM NEW.instance_id
) EXECUTE FUNCTION analytics_on_journey_stage();

CREATE TRIGGER trg_tenants_analytics_zone AFTER UPDATE OF timezone ON tenants
FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone) EXECUTE FUNCTION analytics_on_tenant_zone();
"""

DROP = """
DROP TRIGGER IF EXISTS trg_tenants_analytics_zone ON tenants;
DROP TRIGGER IF EXISTS trg_analytics_replies_histogram ON analytics_replies;
DROP TRIGGER IF EXISTS trg_message_sentiments_analytics ON message_sentiments;
DROP TRIGGER IF EXISTS trg_communications_analytics_sentiment ON communications;
DROP TRIGGER IF EXISTS trg_communications_analytics_update ON communications;
DROP TRIGGER IF EXISTS trg_communications_analytics ON communications;
DROP TRIGGER IF EXISTS trg_appointments_analytics_update ON appointments;
DROP TRIGGER IF EXISTS trg_appointments_analytics ON appointments;
DROP TRIGGER IF EXISTS trg_journey_instance_stages_analytics_update ON journey_instance_stages;
DROP TRIGGER IF EXISTS trg_journey_instance_stages_analytics ON journey_instance_stages;
DROP TRIGGER IF EXISTS trg_journey_instances_analytics_stages ON journey_instances;
DROP TRIGGER IF EXISTS trg_journey_instances_analytics_update ON journey_instances;
DROP TRIGGER IF EXISTS trg_journey_instances_analytics ON journey_instances;
DROP FUNCTION IF EXISTS analytics_on_tenant_zone();
DROP FUNCTION IF EXISTS analytics_rebuild(uuid);
DROP FUNCTION IF EXISTS analytics_on_journey_stage();
DROP FUNCTION IF EXISTS analytics_on_journey_instance_delete();
DROP FUNCTION IF EXISTS analytics_on_journey_instance();
DROP FUNCTION IF EXISTS analytics_count_instance_stages(text, uuid, uuid, uuid, integer);
DROP FUNCTION IF EXISTS analytics_bump_stage(uuid, date, uuid, integer, text, numeric, integer);
DROP FUNCTION IF EXISTS analytics_move_journey_event(uuid, text, date, date);
DROP FUNCTION IF EXISTS analytics_bump_journey(uuid, date, text, integer);
DROP FUNCTION IF EXISTS analytics_on_reply();
DROP FUNCTION IF EXISTS analytics_on_sentiment();
DROP FUNCTION IF EXISTS analytics_on_message_delete();
DROP FUNCTION IF EXISTS analytics_on_communication();
DROP FUNCTION IF EXISTS analytics_lock_stripe(integer);
DROP FUNCTION IF EXISTS analytics_patient_stripe(uuid);
DROP FUNCTION IF EXISTS analytics_reply_remove(text, uuid, uuid, text, timestamptz);
DROP FUNCTION IF EXISTS analytics_reply_place(text, uuid, uuid, uuid, text, timestamptz);
DROP FUNCTION IF EXISTS analytics_reply_refresh(text, uuid);
DROP FUNCTION IF EXISTS analytics_reply_record(text, uuid, uuid, uuid, timestamptz, uuid, timestamptz);
DROP FUNCTION IF EXISTS analytics_on_appointment();
DROP FUNCTION IF EXISTS analytics_bump_reply(uuid, date, integer, integer);
DROP FUNCTION IF EXISTS analytics_bump_sentiment(uuid, date, double precision, text, integer);
DROP FUNCTION IF EXISTS analytics_bump_message(uuid, date, text, text, text, integer);
DROP FUNCTION IF EXISTS analytics_bump_practitioner(uuid, date, uuid, integer);
DROP FUNCTION IF EXISTS analytics_bump_appointment(uuid, date, text, text, integer);
DROP FUNCTION IF EXISTS analytics_zone(uuid);
DROP FUNCTION IF EXISTS analytics_tenant_stripe(uuid);
DROP FUNCTION IF EXISTS analytics_reply_bucket(double precision);
"""


def _rollup_columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
    ]


def _rollup_constraints(table: str) -> list[sa.Constraint]:
    return [
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f(f"fk_{table}_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def upgrade() -> None:
    op.create_table(
        "analytics_journey_daily",
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        *_rollup_columns(),
        *_rollup_constraints("analytics_journey_daily"),
        sa.UniqueConstraint("tenant_id", "day", "event", name="uq_analytics_journey_daily_key"),
    )
    op.create_table(
        "analytics_journey_stage_daily",
        sa.Column("journey_id", sa.UUID(), nullable=False),
        sa.Column("order_index", sa.Integer(), nullable=False),
        sa.Column("stage_name", sa.String(length=200), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("seconds_sum", sa.Numeric(), nullable=False),
        *_rollup_columns(),
        *_rollup_constraints("analytics_journey_stage_daily"),
        sa.UniqueConstraint(
            "tenant_id",
            "day",
            "journey_id",
            "order_index",
            "stage_name",
            name="uq_analytics_journey_stage_daily_key",
        ),
    )
    op.create_index(
        "ix_journey_instance_stages_active_started",
        "journey_instance_stages",
        ["tenant_id", "started_at"],
        unique=False,
        postgresql_include=["instance_id"],
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index(
        "ix_tickets_tenant_resolved",
        "tickets",
        ["tenant_id", "resolved_at"],
        unique=False,
        postgresql_where=sa.text("resolved_at IS NOT NULL"),
    )
    op.create_table(
        "analytics_appointment_daily",
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source_channel", sa.String(length=32), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        *_rollup_columns(),
        *_rollup_constraints("analytics_appointment_daily"),
        sa.UniqueConstraint(
            "tenant_id", "day", "status", "source_channel", name="uq_analytics_appointment_daily_key"
        ),
    )
    op.create_table(
        "analytics_appointment_practitioner_daily",
        sa.Column("practitioner_id", sa.UUID(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        *_rollup_columns(),
        *_rollup_constraints("analytics_appointment_practitioner_daily"),
        sa.UniqueConstraint(
            "tenant_id", "day", "practitioner_id", name="uq_analytics_appointment_practitioner_daily_key"
        ),
    )
    op.create_table(
        "analytics_communication_daily",
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        *_rollup_columns(),
        *_rollup_constraints("analytics_communication_daily"),
        sa.UniqueConstraint(
            "tenant_id", "day", "direction", "channel", "status", name="uq_analytics_communication_daily_key"
        ),
    )
    op.create_table(
        "analytics_sentiment_daily",
        sa.Column("scored", sa.Integer(), nullable=False),
        sa.Column("compound_sum", sa.Numeric(), nullable=False),
        sa.Column("positive", sa.Integer(), nullable=False),
        sa.Column("neutral", sa.Integer(), nullable=False),
        sa.Column("negative", sa.Integer(), nullable=False),
        *_rollup_columns(),
        *_rollup_constraints("analytics_sentiment_daily"),
        sa.UniqueConstraint("tenant_id", "day", name="uq_analytics_sentiment_daily_key"),
    )
    op.create_table(
        "analytics_reply_daily",
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        *_rollup_columns(),
        *_rollup_constraints("analytics_reply_daily"),
        sa.UniqueConstraint("tenant_id", "day", "bucket", name="uq_analytics_reply_daily_key"),
    )
    op.create_table(
        "analytics_replies",
        sa.Column("patient_id", sa.UUID(), nullable=False),
        sa.Column("outbound_id", sa.UUID(), nullable=False),
        sa.Column("inbound_id", sa.UUID(), nullable=False),
        sa.Column("replied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("response_seconds", sa.Float(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        *_rollup_columns(),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["communications.id"],
            name=op.f("fk_analytics_replies_inbound_id_communications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["outbound_id"],
            ["communications.id"],
            name=op.f("fk_analytics_replies_outbound_id_communications"),
            ondelete="CASCADE",
        ),
        *_rollup_constraints("analytics_replies"),
    )
    op.create_index(
        "ix_analytics_replies_tenant_bucket_replied",
        "analytics_replies",
        ["tenant_id", "bucket", "replied_at"],
        unique=False,
        postgresql_include=["response_seconds"],
    )
    op.create_index("uq_analytics_replies_inbound", "analytics_replies", ["inbound_id"], unique=True)
    op.create_index("uq_analytics_replies_outbound", "analytics_replies", ["outbound_id"], unique=True)
    # Counter rows are updated in place all day: room on each page keeps those updates HOT (no index churn).
    for table in ROLLUPS:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")
    op.execute(FUNCTIONS)
    op.execute(TRIGGERS)
    op.execute("SELECT analytics_rebuild(id) FROM tenants")


def downgrade() -> None:
    op.execute(DROP)
    op.drop_index("uq_analytics_replies_outbound", table_name="analytics_replies")
    op.drop_index("uq_analytics_replies_inbound", table_name="analytics_replies")
    op.drop_index(
        "ix_analytics_replies_tenant_bucket_replied",
        table_name="analytics_replies",
        postgresql_include=["response_seconds"],
    )
    op.drop_table("analytics_replies")
    for table in reversed(ROLLUPS):
        op.drop_table(table)
    op.drop_index(
        "ix_tickets_tenant_resolved",
        table_name="tickets",
        postgresql_where=sa.text("resolved_at IS NOT NULL"),
    )
    op.drop_index(
        "ix_journey_instance_stages_active_started",
        table_name="journey_instance_stages",
        postgresql_include=["instance_id"],
        postgresql_where=sa.text("status = 'active'"),
    )
