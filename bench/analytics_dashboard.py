"""Analytics dashboard at scale: seeds a clinic with a million appointments and five million messages, then
times `GET /analytics/dashboard` for several reporting periods, and what the rollup triggers cost writes.

    .venv/bin/python -m bench.analytics_dashboard [--appointments 1000000] [--communications 5000000]
                                                  [--requests 30] [--writes 10000]

Uses DATABASE_URL when set (an embedded PostgreSQL otherwise), in a scratch database it drops afterwards.
The figures replace the `analytics-dashboard` section of BENCHMARKS.md.

The data is bulk-loaded with triggers off (`session_replication_role = replica`), so the daily rollups
are then computed once by `analytics_rebuild(tenant)`, as after any bulk load (its time is reported).

The data, all in one tenant (time zone UTC), seeded with SQL (generate_series):
- 50,000 patients and 200 practitioners;
- appointments of 30 minutes, 13 a day per practitioner (never overlapping), from ~12 months ago to a month
  ahead: past ones completed / no-show / cancelled, future ones booked / confirmed / cancelled, booked
  through six source channels;
- messages spread evenly over the same 12 months: 70 % outbound (sent / delivered / read / failed, with
  their timestamps) and 30 % inbound patient replies, over WhatsApp, SMS and email; every inbound message
  already has its sentiment score (the steady state);
- 100,000 journey instances of five journeys (four stages each: 400,000 stage rows) started over the
  12 months, and 50,000 tickets.

The write cost: `--writes` single-row message inserts (30 % inbound, stored with their sentiment score as
the webhook does; 70 % outbound, each then moved to `sent` by the repository's conditional UPDATE), one
transaction each, on random patients' conversations, with the analytics triggers and with them disabled.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import time
import uuid

import httpx
import psycopg

from api.app import create_app
from bench.common import Latency, insert_tenant, scratch_database, write_section
from bench.seed import number_patients, seed_journeys, seed_tickets
from core.auth import Role, issue_dev_token
from core.embedded_db import to_libpq_url
from core.settings import Settings

PATIENTS = 50_000
PRACTITIONERS = 200
PER_DAY = 13  # appointments a day per practitioner, 40 minutes apart from 08:00
DAYS_AHEAD = 30
PERIODS = ("TODAY", "LAST_7_DAYS", "LAST_30_DAYS", "THIS_MONTH", "LAST_MONTH", "LAST_90_DAYS")
SOURCE_CHANNELS = ["phone", "web", "whatsapp", "walk_in", "sms", "referral"]
INBOUND_TEXTS = [
    "Yes, I confirm, thank you!",
    "Can I move it to next week?",
    "I am running late, sorry",
    "This is the third time nobody called me back, very frustrating",
    "ok",
    "Thanks a lot, great service",
    "I cannot make it tomorrow",
    "What should I bring?",
]
JOURNEY_INSTANCES = 100_000
TICKETS = 50_000
ROLLUP_TABLES = (
    "analytics_appointment_daily",
    "analytics_appointment_practitioner_daily",
    "analytics_communication_daily",
    "analytics_sentiment_daily",
    "analytics_replies",
    "analytics_reply_daily",
    "analytics_journey_daily",
    "analytics_journey_stage_daily",
)
EVERY_KEY = "one appointment rollup keyed on status, channel and practitioner"
ANALYTICS_TRIGGERS = {
    "communications": (
        "trg_communications_analytics",
        "trg_communications_analytics_update",
        "trg_communications_analytics_sentiment",
    ),
    "message_sentiments": ("trg_message_sentiments_analytics",),
}
OUTBOUND_TEXTS = [
    "Reminder: your appointment is tomorrow at 10:00. Reply YES to confirm.",
    "Your appointment has been booked.",
    "How was your visit? Reply with a number from 1 to 5.",
    "Your lab results are ready in the patient portal.",
]


def _connect(url: str) -> psycopg.Connection:
    conn = psycopg.connect(to_libpq_url(url), autocommit=True)
    # Bulk load: skip the per-row triggers (NOTIFY, the analytics rollups: `rebuild` fills those) and the
    # foreign-key checks (the data is consistent by construction); every index, including the exclusion
    # constraint, is still maintained.
    conn.execute("SET session_replication_role = replica")
    conn.execute("SET maintenance_work_mem = '512MB'")
    return conn


def seed(
    url: str, tenant_id: uuid.UUID, appointments: int, communications: int, batch: int = 250_000
) -> float:
    """Insert the clinic's data with SQL; returns seconds taken."""
    started = time.perf_counter()
    per_practitioner = -(-appointments // PRACTITIONERS)
    days = -(-per_practitioner // PER_DAY)
    with _connect(url) as conn:
        conn.execute("SELECT setseed(0.42)")
        conn.execute(
            """
            INSERT INTO practitioners (id, tenant_id, first_name, last_name, speciality, is_active, meta_data)
            SELECT gen_random_uuid(), %(t)s, 'Doc', 'Number ' || i, 'general', true, '{}'::jsonb
            FROM generate_series(1, %(n)s::int) AS i
            """,
            {"t": tenant_id, "n": PRACTITIONERS},
        )
        conn.execute(
            """
            INSERT INTO patients (id, tenant_id, mrn, first_name, last_name, phone_primary, status,
                                  meta_data, preferred_channel)
            SELECT gen_random_uuid(), %(t)s, 'MRN-' || lpad(i::text, 9, '0'), 'Pat', 'Number ' || i,
                   '+1415' || lpad((1000000 + i)::text, 7, '0'), 'active', '{}'::jsonb,
                   (array['whatsapp','sms','email'])[1 + (i %% 3)]
            FROM generate_series(1, %(n)s::int) AS i
            """,
            {"t": tenant_id, "n": PATIENTS},
        )
        conn.execute(
            "CREATE TEMP TABLE bench_practitioners AS SELECT row_number() OVER () AS n, id FROM practitioners"
        )
        conn.execute("CREATE TEMP TABLE bench_patients AS SELECT row_number() OVER () AS n, id FROM patients")
        conn.execute("CREATE UNIQUE INDEX ON bench_practitioners (n)")
        conn.execute("CREATE UNIQUE INDEX ON bench_patients (n)")
        print(f"  seeded {PATIENTS:,} patients, {PRACTITIONERS} practitioners", flush=True)

        # Appointment i: practitioner i % P, its (i / P)-th appointment -> day and slot of that day.
        for lo in range(0, appointments, batch):
            hi = min(lo + batch, appointments)
            conn.execute(
                """
                INSERT INTO appointments (id, tenant_id, patient_id, practitioner_id, shared_slot, start_time,
                                          end_time, status, appointment_type, source_channel, meta_data,
                                          created_at, updated_at)
                SELECT gen_random_uuid(), %(t)s, pa.id, pr.id, false, s.start,
                       s.start + interval '30 minutes',
                       CASE WHEN s.start < now() THEN
                                (array['completed','completed','completed','completed','completed',
                                       'completed','no_show','cancelled'])[1 + floor(random() * 8)::int]
                            ELSE (array['booked','confirmed','confirmed',
                                        'cancelled'])[1 + floor(random() * 4)::int]
                       END,
                       'consultation', (%(channels)s::text[])[1 + floor(random() * 6)::int], '{}'::jsonb,
                       s.start - interval '10 days', s.start - interval '10 days'
                FROM (
                    SELECT i, date_trunc('day', now()) - %(back)s::int * interval '1 day' + interval '8 hours'
                              + ((i / %(np)s::int) / %(per_day)s::int) * interval '1 day'
                              + ((i / %(np)s::int) %% %(per_day)s::int) * interval '40 minutes' AS start
                    FROM generate_series(%(lo)s::int, %(hi)s::int) AS i
                ) AS s
                JOIN bench_practitioners pr ON pr.n = 1 + s.i %% %(np)s::int
                JOIN bench_patients pa ON pa.n = 1 + (hashint4(s.i::int) & 2147483647) %% %(npat)s::int
                """,
                {
                    "t": tenant_id,
                    "channels": SOURCE_CHANNELS,
                    "back": days - DAYS_AHEAD - 1,
                    "np": PRACTITIONERS,
                    "npat": PATIENTS,
                    "per_day": PER_DAY,
                    "lo": lo,
                    "hi": hi - 1,
                },
            )
            print(f"  seeded {hi:>9,} appointments", flush=True)

        # Messages spread evenly over the last 365 days (ordered by time, like a real log).
        step_ms = 365 * 86_400_000 / communications
        for lo in range(0, communications, batch):
            hi = min(lo + batch, communications)
            conn.execute(
                """
                INSERT INTO communications (id, tenant_id, patient_id, direction, channel, recipient, message,
                                            template_vars, status, is_urgent, sent_at, delivered_at, read_at,
                                            failed_at, meta_data, created_at, updated_at)
                SELECT gen_random_uuid(), %(t)s, pa.id, m.direction, m.channel, NULL,
                       CASE WHEN m.direction = 'inbound'
                            THEN (%(inbound)s::text[])[1 + floor(random() * 8)::int]
                            ELSE (%(outbound)s::text[])[1 + floor(random() * 4)::int] END,
                       '{}'::jsonb, m.status, false,
                       CASE WHEN m.direction = 'outbound' THEN m.at + interval '2 seconds' END,
                       CASE WHEN m.status IN ('delivered', 'read') THEN m.at + interval '5 seconds' END,
                       CASE WHEN m.status = 'read' THEN m.at + interval '20 minutes' END,
                       CASE WHEN m.status = 'failed' THEN m.at + interval '3 seconds' END,
                       '{}'::jsonb, m.at, m.at
                FROM (
                    SELECT i, at, direction,
                           (array['whatsapp','whatsapp','sms',
                                  'email'])[1 + floor(random() * 4)::int] AS channel,
                           CASE WHEN direction = 'inbound' THEN 'received'
                                ELSE (array['sent','delivered','delivered','delivered','read','read','read',
                                            'failed'])[1 + floor(random() * 8)::int] END AS status
                    FROM (
                        SELECT i, now() - interval '365 days' + i * %(step)s * interval '1 millisecond' AS at,
                               CASE WHEN random() < 0.3 THEN 'inbound' ELSE 'outbound' END AS direction
                        FROM generate_series(%(lo)s::int, %(hi)s::int) AS i
                    ) AS g
                ) AS m
                JOIN bench_patients pa ON pa.n = 1 + (hashint4(m.i::int) & 2147483647) %% %(npat)s::int
                """,
                {
                    "t": tenant_id,
                    "inbound": INBOUND_TEXTS,
                    "outbound": OUTBOUND_TEXTS,
                    "step": step_ms,
                    "npat": PATIENTS,
                    "lo": lo,
                    "hi": hi - 1,
                },
            )
            print(f"  seeded {hi:>9,} communications", flush=True)
        conn.execute(
            """
            INSERT INTO message_sentiments (id, tenant_id, communication_id, compound, label, analyzer)
            SELECT gen_random_uuid(), tenant_id, id, v, CASE WHEN v >= 0.05 THEN 'positive'
                                                        WHEN v <= -0.05 THEN 'negative' ELSE 'neutral' END,
                   'vaderSentiment'
            FROM (SELECT tenant_id, id, round((random() * 2 - 1)::numeric, 4)::float8 AS v
                  FROM communications WHERE direction = 'inbound') AS s
            """
        )
        print("  scored the inbound messages", flush=True)
        number_patients(conn)
        seed_journeys(conn, [(tenant_id, PATIENTS, JOURNEY_INSTANCES)])
        print(f"  seeded {JOURNEY_INSTANCES:,} journey instances (4 stages each)", flush=True)
        seed_tickets(conn, [(tenant_id, PATIENTS, TICKETS)])
        print(f"  seeded {TICKETS:,} tickets", flush=True)
    return time.perf_counter() - started


def rebuild(url: str, tenant_id: uuid.UUID) -> tuple[float, dict[str, int]]:
    """Fill the tenant's rollups from the bulk-loaded rows (seconds taken, rows per rollup table), then
    VACUUM ANALYZE everything."""
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute("SELECT analytics_rebuild(%s)", (tenant_id,))
        seconds = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE")
        sizes = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]  # noqa: S608
            for table in ROLLUP_TABLES
        }
        # What one appointment rollup keyed on status, channel and practitioner together would hold.
        sizes[EVERY_KEY] = conn.execute(  # type: ignore[index]
            "SELECT count(*) FROM (SELECT DISTINCT start_time::date, status, source_channel, practitioner_id "
            "FROM appointments) AS k"
        ).fetchone()[0]
    return seconds, sizes


async def measure(url: str, tenant_id: uuid.UUID, requests: int) -> list[Latency]:
    """Time the dashboard for each period through the real API (in-process ASGI, real database)."""
    settings = Settings(env="test", database_url=url, temporal_address="127.0.0.1:1")
    token = issue_dev_token(settings, tenant_id=tenant_id, roles=[Role.VIEWER])
    headers = {"Authorization": f"Bearer {token}"}
    app = create_app(settings, database_url=url)
    results = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:
            for period in PERIODS:
                params = {"time_period": period}
                warm = await client.get("/api/v1/prm/analytics/dashboard", params=params, headers=headers)
                warm.raise_for_status()
                samples = []
                for _ in range(requests):
                    started = time.perf_counter()
                    resp = await client.get("/api/v1/prm/analytics/dashboard", params=params, headers=headers)
                    samples.append((time.perf_counter() - started) * 1000)
                    resp.raise_for_status()
                body = resp.json()
                results.append(Latency(f"dashboard {period}", samples))
                print(
                    f"  {results[-1].row()}  ({body['appointments']['total']:,} appointments, "
                    f"{body['communication']['total']:,} messages in the period)",
                    flush=True,
                )
    return results


def _set_triggers(conn: psycopg.Connection, enabled: bool) -> None:
    verb = "ENABLE" if enabled else "DISABLE"
    for table, triggers in ANALYTICS_TRIGGERS.items():
        conn.execute(f"ALTER TABLE {table} " + ", ".join(f"{verb} TRIGGER {t}" for t in triggers))


def write_cost(url: str, tenant_id: uuid.UUID, writes: int) -> list[Latency]:
    """Single-row message writes, one transaction each, with and without the analytics triggers (in
    alternating halves, after a warm-up): an inbound message with its sentiment score, or an outbound one
    and then its move to `sent` (the repository's conditional UPDATE)."""
    samples: dict[str, list[float]] = {}
    rng = random.Random(5)
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        patients = [r[0] for r in conn.execute("SELECT id FROM patients ORDER BY id LIMIT 5000")]

        def one_write(mode: str) -> None:
            patient, inbound = rng.choice(patients), rng.random() < 0.3
            started = time.perf_counter()
            with conn.transaction():
                message_id = conn.execute(
                    """
                    INSERT INTO communications (id, tenant_id, patient_id, direction, channel, message,
                                                template_vars, status, is_urgent, meta_data)
                    VALUES (gen_random_uuid(), %s, %s, %s, 'sms', 'Bench message', '{}', %s, false, '{}')
                    RETURNING id
                    """,
                    (
                        tenant_id,
                        patient,
                        "inbound" if inbound else "outbound",
                        "received" if inbound else "queued",
                    ),
                ).fetchone()[0]  # type: ignore[index]
                if inbound:
                    conn.execute(
                        "INSERT INTO message_sentiments (id, tenant_id, communication_id, compound, label, "
                        "analyzer) VALUES (gen_random_uuid(), %s, %s, 0.3, 'positive', 'bench')",
                        (tenant_id, message_id),
                    )
            done = time.perf_counter()
            samples.setdefault(
                f"{mode}: inbound insert + score" if inbound else f"{mode}: outbound insert", []
            ).append((done - started) * 1000)
            if inbound:
                return
            conn.execute(
                "UPDATE communications SET status = 'sent', sent_at = coalesce(sent_at, now()), "
                "updated_at = now() WHERE id = %s AND status IN ('pending', 'scheduled', 'queued')",
                (message_id,),
            )
            samples.setdefault(f"{mode}: status update", []).append((time.perf_counter() - done) * 1000)

        for _ in range(min(500, writes)):
            one_write("warm-up")
        for _ in range(2):
            for enabled in (True, False):
                _set_triggers(conn, enabled)
                for _write in range(writes // 4):
                    one_write("with triggers" if enabled else "without triggers")
        _set_triggers(conn, True)
    return [Latency(name, ms) for name, ms in sorted(samples.items()) if not name.startswith("warm-up")]


def main() -> None:
    """Seed, measure, report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--appointments", type=int, default=1_000_000)
    parser.add_argument("--communications", type=int, default=5_000_000)
    parser.add_argument("--requests", type=int, default=30, help="timed requests per period")
    parser.add_argument("--writes", type=int, default=10_000, help="single-row writes for the write cost")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()

    with scratch_database(keep=args.keep) as url:
        tenant_id = insert_tenant(url)
        print(f"seeding {args.appointments:,} appointments, {args.communications:,} messages ...", flush=True)
        seconds = seed(url, tenant_id, args.appointments, args.communications)
        print("rebuilding the rollups ...", flush=True)
        rebuild_seconds, sizes = rebuild(url, tenant_id)
        print(f"  {rebuild_seconds:.1f} s; rows: {sizes}", flush=True)
        print(f"measuring {args.requests} requests per period ...", flush=True)
        results = asyncio.run(measure(url, tenant_id, args.requests))
        print(f"measuring {args.writes:,} single-row writes ...", flush=True)
        writes = write_cost(url, tenant_id, args.writes)
        for w in writes:
            print(f"  {w.row()}", flush=True)

    body = report(args, seconds, rebuild_seconds, sizes, results, writes)
    if args.no_write:
        print(body)
        return
    write_section("analytics-dashboard", body)
    print("BENCHMARKS.md updated")


HOW = """\
How: the period figures are read from daily rollups that PostgreSQL triggers keep in the writing
transaction (migration 0008, so every write path counts, bulk UPDATEs included): appointments by local
day, status and channel, and by day and practitioner; messages by day, direction, channel and status;
sentiment scores per day; journey events per day and completed stages per day and stage; and the
patients' replies (an inbound message right after an outbound one in the patient's conversation, paired
when stored) with a per-day histogram of response times in 2 %-wide log-scale buckets. A period sums a
few rows per day instead of scanning its appointments and messages. The reply-time median is exact, not
an estimate: the summed histogram says which bucket holds the middle rank, and the median is read from
that bucket's replies in the period (an index range of about 1 % of them). The appointments by
practitioner have a rollup of their own: one keyed on status, channel and practitioner together would
hold several rows per practitioner and day (count below), too many to sum over 90 days in budget.
Still read from their tables, through index ranges: active and overdue journeys (now), voice calls and
tickets. Before this change the same appointments and messages took 75 ms (TODAY) to 5.6 s
(LAST_90_DAYS): a lateral probe per inbound message for the reply times, a scan of the period for
sentiment (which also scored unscored messages inside the request; `prm analytics backfill-sentiment`
does that now), scans of the period's counts."""


def report(
    args: argparse.Namespace,
    seed_seconds: float,
    rebuild_seconds: float,
    sizes: dict[str, int],
    results: list[Latency],
    writes: list[Latency],
) -> str:
    """The BENCHMARKS.md section."""
    command = (
        f"python -m bench.analytics_dashboard --appointments {args.appointments} --communications "
        f"{args.communications} --requests {args.requests} --writes {args.writes}"
    )
    machine = f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    return "\n".join(
        [
            "## Analytics dashboard",
            "",
            f"`{command}` on {machine}: one tenant with {args.appointments:,} appointments (~12 months back, "
            f"a month ahead; {PRACTITIONERS} practitioners, {PATIENTS:,} patients), {args.communications:,} "
            f"messages over 12 months, {JOURNEY_INSTANCES:,} journey instances (4 stages each) and "
            f"{TICKETS:,} tickets, bulk-loaded with triggers off in {seed_seconds:.0f} s; "
            f"`analytics_rebuild(tenant)` then filled the rollups in {rebuild_seconds:.0f} s. Each request "
            "is `GET /api/v1/prm/analytics/dashboard?time_period=...` through the real API (in-process "
            "ASGI, auth, real PostgreSQL), one at a time, after one warm-up request per period. Goal: "
            "p95 <= 200 ms.",
            "",
            "| request | n | p50 ms | p95 ms | max ms |",
            "| --- | --- | --- | --- | --- |",
            *(r.row() for r in results),
            "",
            HOW,
            "",
            "Rows for the tenant's 13 months: "
            + ", ".join(f"`{table}` {n:,}" for table, n in sizes.items() if table != EVERY_KEY)
            + f"; {EVERY_KEY} together would hold {sizes[EVERY_KEY]:,}.",
            "",
            f"Write cost: {args.writes:,} single-row message writes, one transaction each, on random "
            "patients' conversations (30 % inbound, stored with a sentiment score; 70 % outbound, then moved "
            "to `sent`), half with the analytics triggers and half with them disabled, interleaved:",
            "",
            "| write | n | p50 ms | p95 ms | max ms |",
            "| --- | --- | --- | --- | --- |",
            *(w.row() for w in writes),
            "",
            "Median extra time the triggers add per write: "
            + "; ".join(f"{kind} +{added:.2f} ms" for kind, added in _trigger_overhead(writes).items())
            + ". An inbound message pays most: besides its counter it is paired as a reply (a probe into "
            "the patient's conversation, a row in `analytics_replies` and its histogram count) and its "
            "score goes to the sentiment rollup; an outbound one checks whether a message already "
            "follows it.",
        ]
    )


def _trigger_overhead(writes: list[Latency]) -> dict[str, float]:
    """p50 with the triggers minus p50 without, per kind of write."""
    by_name = {w.name: w.p50 for w in writes}
    kinds = [w.name.split(": ", 1)[1] for w in writes if w.name.startswith("with triggers")]
    return {k: by_name[f"with triggers: {k}"] - by_name[f"without triggers: {k}"] for k in kinds}


if __name__ == "__main__":
    main()
