"""Message search at scale: seeds N messages (default one million), times `GET /communications/search`.

    .venv/bin/python -m bench.communications_search [--messages 1000000] [--requests 100]

Uses DATABASE_URL when set (an embedded PostgreSQL otherwise), in a scratch database it drops afterwards.
Messages are sentences built from word lists with a skewed (Zipf-like) choice, so a common word matches a
large share of the rows, a medication a few percent, and a rare code word a handful. The searched tenant
holds most of the rows; a few other tenants hold the rest. The figures replace the `communications-search`
section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from api.app import create_app
from bench.common import Latency, insert_tenant, scratch_database, write_section
from bench.patient_search import FIRST_NAMES, SYLLABLES
from core.auth import Role, issue_dev_token
from core.embedded_db import to_libpq_url
from core.settings import Settings

OPENERS = (
    "Hi|Hello|Dear|Good morning|Good afternoon|Reminder:|Update:|Quick note:|Thank you|Important:"
).split("|")
# Ordered from most to least frequent: a word's chance falls off steeply with its position.
WORDS = (
    "your the appointment please to a is for and with on at you we clinic visit today tomorrow call "
    "reply confirm doctor results care team next week time check pharmacy prescription ready pickup "
    "follow up how feeling pain recovery questions portal bring insurance card arrive minutes early "
    "blood pressure test lab fasting hours before procedure surgery dressing wound stitches "
    "medication dose refill morning evening daily twice side effects nausea dizziness fever "
    "temperature swelling rest water diet exercise walk sleep review report scan x-ray mri ultrasound "
    "vaccine booster flu covid allergy rash cough headache balance payment invoice billing due "
    "reschedule cancel waitlist slot available opening confirmed cancelled feedback survey rating "
    "physiotherapy cardiology dermatology pediatrics orthopedics ophthalmology dental hygiene cleaning "
    "cholesterol glucose thyroid vitamin iron biopsy referral specialist consent form signature"
).split()
PHRASES = (
    "blood pressure|follow up|side effects|lab results|fasting hours|physical therapy|"
    "pain level|next appointment|insurance card|wound care"
).split("|")
MEDICATIONS = (
    "metformin lisinopril atorvastatin amlodipine omeprazole levothyroxine simvastatin losartan "
    "albuterol gabapentin hydrochlorothiazide sertraline furosemide pantoprazole prednisone tramadol "
    "amoxicillin azithromycin ciprofloxacin doxycycline ibuprofen acetaminophen naproxen insulin "
    "warfarin apixaban clopidogrel montelukast fluticasone escitalopram bupropion trazodone citalopram "
    "meloxicam carvedilol metoprolol rosuvastatin tamsulosin finasteride allopurinol"
).split()
CHANNELS = ("whatsapp", "sms", "email")
STATUSES = ("delivered", "delivered", "read", "read", "sent", "failed", "queued")
DAYS = 730  # messages span the last two years


def seed_patients(url: str, tenant_id: uuid.UUID, count: int) -> None:
    """`count` patients of one tenant (names from word lists), the senders and recipients of the messages."""
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO patients (id, tenant_id, mrn, first_name, last_name, status, meta_data,
                                  phone_primary, preferred_channel)
            SELECT gen_random_uuid(), %(tenant)s, 'MRN-' || lpad(i::text, 9, '0'),
                   (%(firsts)s::text[])[1 + floor(random() * %(nf)s)::int],
                   initcap((%(syl)s::text[])[1 + floor(random() * %(ns)s)::int]
                           || (%(syl)s::text[])[1 + floor(random() * %(ns)s)::int]),
                   'active', '{}'::jsonb, '+1415' || lpad((1000000 + i)::text, 7, '0'), 'sms'
            FROM generate_series(1, %(count)s::int) AS i
            """,
            {
                "tenant": tenant_id,
                "firsts": FIRST_NAMES,
                "nf": len(FIRST_NAMES),
                "syl": SYLLABLES,
                "ns": len(SYLLABLES),
                "count": count,
            },
        )
        conn.execute("ANALYZE patients")


def seed_messages(url: str, tenants: list[tuple[uuid.UUID, int]], batch: int = 100_000) -> float:
    """Insert the communications with SQL (secondary indexes dropped meanwhile, rebuilt after); seconds."""
    started = time.perf_counter()
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SELECT setseed(0.17)")
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'communications' "
            "AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE conrelid = 'communications'::regclass)"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        done = 0
        for tenant_id, count in tenants:
            patient_ids = [
                r[0]
                for r in conn.execute("SELECT id FROM patients WHERE tenant_id = %s", (tenant_id,)).fetchall()
            ]
            for offset in range(0, count, batch):
                n = min(batch, count - offset)
                conn.execute(
                    """
                    INSERT INTO communications (id, tenant_id, patient_id, direction, channel, recipient,
                        subject, message, template_vars, status, is_urgent, meta_data, created_at, updated_at)
                    SELECT gen_random_uuid(), %(tenant)s, s.patient_id,
                           CASE WHEN s.r < 0.12 THEN 'inbound' ELSE 'outbound' END,
                           s.channel, '+14155550100',
                           CASE WHEN s.channel = 'email' THEN initcap(s.words[1]) || ' ' || s.words[2] END,
                           s.opener || ' ' || array_to_string(s.words, ' ')
                               || CASE WHEN s.r2 < 0.30 THEN ' take ' || s.med || ' '
                                       || (5 * (1 + floor(random() * 40)))::int || ' mg daily' ELSE '' END
                               || CASE WHEN s.r3 < 0.08 THEN ' ' || s.phrase ELSE '' END
                               || CASE WHEN s.r4 < 0.05 THEN ' ref ' || s.rare ELSE '' END || '.',
                           '{}'::jsonb,
                           CASE WHEN s.r < 0.12 THEN 'received' ELSE s.status END,
                           false, '{}'::jsonb, s.at, s.at
                    FROM (
                        SELECT i,
                               (%(patients)s::uuid[])[1 + floor(random() * %(np)s)::int] AS patient_id,
                               (%(channels)s::text[])[1 + floor(random() * 3)::int] AS channel,
                               (%(statuses)s::text[])[1 + floor(random() * %(nst)s)::int] AS status,
                               (%(openers)s::text[])[1 + floor(random() * %(no)s)::int] AS opener,
                               (%(meds)s::text[])[1 + floor(%(nm)s * power(random(), 1.6))::int] AS med,
                               (%(phrases)s::text[])[1 + floor(random() * %(nph)s)::int] AS phrase,
                               (%(syl)s::text[])[1 + floor(random() * %(ns)s)::int]
                                   || (%(syl)s::text[])[1 + floor(random() * %(ns)s)::int]
                                   || (%(syl)s::text[])[1 + floor(random() * %(ns)s)::int]
                                   || (floor(random() * 10))::int AS rare,
                               ARRAY(
                                   SELECT (%(words)s::text[])[1 + floor(%(nw)s * power(random(), 2.2))::int]
                                   FROM generate_series(1, 5 + (i::bigint * 7919) %% 12) AS w
                                   WHERE i IS NOT NULL
                               ) AS words,
                               random() AS r, random() AS r2, random() AS r3, random() AS r4,
                               now() - random() * %(days)s::int * interval '1 day' AS at
                        FROM generate_series(%(lo)s::int, %(hi)s::int) AS i
                    ) AS s
                    """,
                    {
                        "tenant": tenant_id,
                        "patients": patient_ids,
                        "np": len(patient_ids),
                        "channels": list(CHANNELS),
                        "statuses": list(STATUSES),
                        "nst": len(STATUSES),
                        "openers": OPENERS,
                        "no": len(OPENERS),
                        "meds": MEDICATIONS,
                        "nm": len(MEDICATIONS),
                        "phrases": PHRASES,
                        "nph": len(PHRASES),
                        "syl": SYLLABLES,
                        "ns": len(SYLLABLES),
                        "words": WORDS,
                        "nw": len(WORDS),
                        "days": DAYS,
                        "lo": offset + 1,
                        "hi": offset + n,
                    },
                )
                done += n
                print(f"  seeded {done:>9,} messages", flush=True)
        print("  rebuilding indexes ...", flush=True)
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute("VACUUM ANALYZE communications")
    return time.perf_counter() - started


def sample(url: str, tenant_id: uuid.UUID, requests: int) -> tuple[list[str], list[uuid.UUID], int]:
    """Rare code words that occur in the tenant's messages, patients to filter by, and the row count."""
    with psycopg.connect(to_libpq_url(url)) as conn:
        rare = [
            r[0]
            for r in conn.execute(
                "SELECT substring(message from ' ref ([a-z0-9]+)\\.$') FROM communications "
                "WHERE tenant_id = %s AND message LIKE '%% ref %%' ORDER BY random() LIMIT %s",
                (tenant_id, requests),
            ).fetchall()
        ]
        patients = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM patients WHERE tenant_id = %s ORDER BY random() LIMIT %s",
                (tenant_id, requests),
            ).fetchall()
        ]
        total = conn.execute("SELECT count(*) FROM communications").fetchone()[0]  # type: ignore[index]
    return rare, patients, int(total)


def match_counts(url: str, tenant_id: uuid.UUID, queries: list[str]) -> dict[str, int]:
    """How many of the tenant's messages each query matches (selectivity, for the report)."""
    with psycopg.connect(to_libpq_url(url)) as conn:
        return {
            q: int(
                conn.execute(  # type: ignore[index]
                    "SELECT count(*) FROM communications WHERE tenant_id = %s "
                    "AND search_vector @@ websearch_to_tsquery('simple', %s)",
                    (tenant_id, q),
                ).fetchone()[0]
            )
            for q in queries
        }


Kind = Callable[[int], dict[str, str]]


async def measure(url: str, tenant_id: uuid.UUID, requests: int) -> tuple[list[Latency], dict[str, int]]:
    """Time each kind of search through the real API (in-process ASGI, real database)."""
    settings = Settings(env="test", database_url=url, temporal_address="127.0.0.1:1")
    token = issue_dev_token(settings, tenant_id=tenant_id, roles=[Role.VIEWER])
    headers = {"Authorization": f"Bearer {token}"}
    rare, patients, _ = sample(url, tenant_id, requests)
    rng = random.Random(11)
    common = ["appointment", "clinic", "please", "results", "pharmacy", "reply"]
    phrases = [f'"{p}"' for p in PHRASES]
    meds = MEDICATIONS[:12]
    now = datetime.now(UTC)

    def date_range(_: int) -> dict[str, str]:
        start = now - timedelta(days=rng.randrange(30, DAYS))
        return {
            "query": rng.choice(meds),
            "date_from": start.isoformat(),
            "date_to": (start + timedelta(days=30)).isoformat(),
        }

    kinds: dict[str, Kind] = {
        "rare term (code word, ~1 hit)": lambda i: {"query": rare[i % len(rare)]},
        "medication name (~1-4% of rows)": lambda i: {"query": meds[i % len(meds)]},
        "common term (5-35% of rows)": lambda i: {"query": common[i % len(common)]},
        'two-word phrase ("blood pressure")': lambda i: {"query": phrases[i % len(phrases)]},
        "common term + patient filter": lambda i: {
            "query": common[i % len(common)],
            "patient_id": str(patients[i % len(patients)]),
        },
        "medication + 30-day date range": date_range,
    }
    selectivity = match_counts(url, tenant_id, common + meds[:3] + phrases[:3] + rare[:3])
    app = create_app(settings, database_url=url)
    results = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(5):  # warm the connection pool and the caches
                await client.get(
                    "/api/v1/prm/communications/search", params={"query": "clinic"}, headers=headers
                )
            for name, build in kinds.items():
                samples = []
                for i in range(requests):
                    params = build(i)
                    started = time.perf_counter()
                    resp = await client.get(
                        "/api/v1/prm/communications/search", params=params, headers=headers
                    )
                    samples.append((time.perf_counter() - started) * 1000)
                    resp.raise_for_status()
                results.append(Latency(name, samples))
                print(f"  {results[-1].row()}", flush=True)
    return results, selectivity


def main() -> None:
    """Seed, measure, report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--patients", type=int, default=4_000, help="patients across all tenants")
    parser.add_argument("--requests", type=int, default=100, help="requests per kind of search")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", metavar="URL", help="measure a database seeded by an earlier --keep run")
    args = parser.parse_args()

    if args.reuse:
        url = args.reuse
        with psycopg.connect(to_libpq_url(url)) as conn:
            searched, main_share = conn.execute(  # type: ignore[misc]
                "SELECT tenant_id, count(*) FROM communications GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
            ).fetchone()
            args.messages = conn.execute("SELECT count(*) FROM communications").fetchone()[0]  # type: ignore[index]
            args.patients = conn.execute("SELECT count(*) FROM patients").fetchone()[0]  # type: ignore[index]
        seconds = float("nan")
        print(f"measuring {args.requests} requests per kind ...", flush=True)
        results, selectivity = asyncio.run(measure(url, searched, args.requests))
    else:
        with scratch_database(keep=args.keep) as url:
            if args.keep:
                print(f"database (kept): {url}", flush=True)
            searched = insert_tenant(url, "Searched clinic")
            others = [insert_tenant(url, f"Other clinic {n}") for n in range(1, 4)]
            main_share = int(args.messages * 0.85)
            rest = args.messages - main_share
            split = [(searched, main_share)] + [
                (t, rest // 3 + (rest % 3 if n == 0 else 0)) for n, t in enumerate(others)
            ]
            print(f"seeding {args.patients:,} patients ...", flush=True)
            seed_patients(url, searched, int(args.patients * 0.7))
            for t in others:
                seed_patients(url, t, int(args.patients * 0.1))
            print(f"seeding {args.messages:,} messages ...", flush=True)
            seconds = seed_messages(url, split)
            print(f"measuring {args.requests} requests per kind ...", flush=True)
            results, selectivity = asyncio.run(measure(url, searched, args.requests))

    hits = ", ".join(f"`{q}` {n:,}" for q, n in selectivity.items())
    body = "\n".join(
        [
            "## Communications search",
            "",
            f"`python -m bench.communications_search --messages {args.messages} --requests {args.requests}` "
            f"on {platform.machine()}, {platform.python_implementation()} {platform.python_version()}: "
            f"{args.messages:,} messages (seeded and indexed in {seconds:.0f} s) across {args.patients:,} "
            f"patients in four tenants, {main_share:,} of them in the searched tenant; sentences built from "
            "word lists with a skewed choice of words, medication names and rare code words. Each request "
            "goes through the real API (in-process ASGI, auth, real PostgreSQL), one at a time, page 1 of "
            "20. Goal: p50 <= 20 ms.",
            "",
            f"Matches in the searched tenant: {hits}.",
            "",
            "| request | n | p50 ms | p95 ms | max ms |",
            "| --- | --- | --- | --- | --- |",
            *(r.row() for r in results),
        ]
    )
    write_section("communications-search", body)
    print("BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
