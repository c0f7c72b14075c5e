"""Patient search at scale: seeds N patients (default one million) and times the search endpoints.

    .venv/bin/python -m bench.patient_search [--patients 1000000] [--requests 200]

Uses DATABASE_URL when set (an embedded PostgreSQL otherwise), in a scratch database it drops afterwards.
The figures replace the `patient-search` section of BENCHMARKS.md.
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
from core.auth import Role, issue_dev_token
from core.embedded_db import to_libpq_url
from core.settings import Settings

FIRST_NAMES = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard "
    "Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy Matthew Betty "
    "Anthony Margaret Mark Sandra Donald Ashley Steven Kimberly Paul Emily Andrew Donna Joshua "
    "Michelle Kenneth Carol Kevin Amanda Brian Dorothy George Melissa Timothy Deborah Ronald "
    "Stephanie Edward Rebecca Jason Sharon Jeffrey Laura Ryan Cynthia Jacob Kathleen Gary Amy "
    "Nicholas Angela Eric Shirley Jonathan Anna Stephen Brenda Larry Pamela Justin Emma Scott Nicole "
    "Brandon Helen Benjamin Samantha Samuel Katherine Gregory Christine Alexander Debra Frank Rachel "
    "Raymond Carolyn Patrick Janet Jack Catherine Dennis Maria Jerry Heather Tyler Diane Aaron Ruth "
    "Jose Julie Adam Olivia Nathan Joyce Henry Virginia Douglas Victoria Zachary Kelly Peter Lauren "
    "Kyle Christina Ethan Joan Walter Evelyn"
).split()
SYLLABLES = (
    "an ber car dal el fen gar hol in jor kel lan mar nor ol per quin ros sal tor ul van wel xan yor zel "
    "ash bro cha dre ev fos gri ham ing jen kov lin mon nes ost pat ric son tam vik"
).split()


def seed(url: str, tenant_id: uuid.UUID, patients: int, batch: int = 100_000) -> float:
    """Insert `patients` synthetic patients with SQL (names from syllables); returns seconds taken."""
    started = time.perf_counter()
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute("SELECT setseed(0.42)")
        for offset in range(0, patients, batch):
            conn.execute(
                """
                INSERT INTO patients (id, tenant_id, mrn, first_name, last_name, date_of_birth, gender,
                                      phone_primary, email_primary, status, meta_data, preferred_channel)
                SELECT gen_random_uuid(), %(tenant)s, 'MRN-' || lpad(i::text, 9, '0'), f, l,
                       date '1930-01-01' + (random() * 32000)::int,
                       (array['male','female','other','unknown'])[1 + (i %% 4)],
                       '+1415' || lpad((1000000 + i)::text, 7, '0'),
                       lower(f) || '.' || lower(l) || i || '@example.com',
                       'active', '{}'::jsonb, (array['whatsapp','sms','email'])[1 + (i %% 3)]
                FROM (
                    SELECT i,
                           (%(firsts)s::text[])[1 + floor(random() * %(nf)s)::int] AS f,
                           initcap((%(syl)s::text[])[1 + floor(random() * %(ns)s)::int]
                                || (%(syl)s::text[])[1 + floor(random() * %(ns)s)::int]
                                || (%(syl)s::text[])[1 + floor(random() * %(ns)s)::int]) AS l
                    FROM generate_series(%(lo)s, %(hi)s) AS i
                ) AS s
                """,
                {
                    "tenant": tenant_id,
                    "firsts": FIRST_NAMES,
                    "nf": len(FIRST_NAMES),
                    "syl": SYLLABLES,
                    "ns": len(SYLLABLES),
                    "lo": offset + 1,
                    "hi": min(offset + batch, patients),
                },
            )
            print(f"  seeded {min(offset + batch, patients):>9,} patients", flush=True)
        conn.execute("ANALYZE patients")
    return time.perf_counter() - started


def sample_people(url: str, tenant_id: uuid.UUID, count: int) -> list[tuple[str, str, str, str]]:
    """Real (first, last, phone, mrn) tuples to derive queries from."""
    with psycopg.connect(to_libpq_url(url)) as conn:
        rows = conn.execute(
            "SELECT first_name, last_name, phone_primary, mrn FROM patients WHERE tenant_id = %s "
            "ORDER BY random() LIMIT %s",
            (tenant_id, count),
        ).fetchall()
    return [tuple(r) for r in rows]


def typo(word: str, rng: random.Random) -> str:
    """Swap one inner letter, the way people mistype names."""
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + rng.choice("aeiourn") + word[i + 1 :]


async def measure(url: str, tenant_id: uuid.UUID, requests: int) -> list[Latency]:
    """Time each kind of patient search through the real API (in-process ASGI, real database)."""
    settings = Settings(env="test", database_url=url, temporal_address="127.0.0.1:1")
    token = issue_dev_token(settings, tenant_id=tenant_id, roles=[Role.VIEWER])
    headers = {"Authorization": f"Bearer {token}"}
    people = sample_people(url, tenant_id, requests)
    rng = random.Random(7)
    kinds = {
        "search by name (with a typo)": lambda p: (
            "/patients/search",
            {"query": f"{p[0]} {typo(p[1], rng)}"},
        ),
        "search by last name": lambda p: ("/patients/search", {"query": p[1], "type": "name"}),
        "search by phone fragment": lambda p: ("/patients/search", {"query": p[2][-7:], "type": "phone"}),
        "search by MRN": lambda p: ("/patients/search", {"query": p[3], "type": "mrn"}),
        "list with ?search= (page 1)": lambda p: ("/patients", {"search": p[1]}),
    }
    app = create_app(settings, database_url=url)
    results = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, build in kinds.items():
                samples = []
                for person in people:
                    path, params = build(person)
                    started = time.perf_counter()
                    resp = await client.get("/api/v1/prm" + path, params=params, headers=headers)
                    samples.append((time.perf_counter() - started) * 1000)
                    resp.raise_for_status()
                results.append(Latency(name, samples))
                print(f"  {results[-1].row()}", flush=True)
    return results


def main() -> None:
    """Seed, measure, report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="requests per kind of search")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    with scratch_database(keep=args.keep) as url:
        tenant_id = insert_tenant(url)
        print(f"seeding {args.patients:,} patients ...", flush=True)
        seconds = seed(url, tenant_id, args.patients)
        print(f"measuring {args.requests} requests per kind ...", flush=True)
        results = asyncio.run(measure(url, tenant_id, args.requests))

    body = "\n".join(
        [
            "## Patient search",
            "",
            f"`python -m bench.patient_search --patients {args.patients} --requests {args.requests}` "
            f"on {platform.machine()}, {platform.python_implementation()} {platform.python_version()}: "
            f"{args.patients:,} patients in one tenant (seeded in {seconds:.0f} s), each request through the "
            "real API (in-process ASGI, auth, real PostgreSQL), one at a time. Goal: name, phone and MRN "
            "search stay interactive (p95 well under 200 ms) at a million patients.",
            "",
            "| request | n | p50 ms | p95 ms | max ms |",
            "| --- | --- | --- | --- | --- |",
            *(r.row() for r in results),
        ]
    )
    write_section("patient-search", body)
    print("BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
