"""Patient search at scale: the shared data set's patients (default one million over five tenants, one of
800,000), then times the search endpoints in the largest tenant.

    .venv/bin/python -m bench.patient_search [--scale 1] [--requests 200] [--quick] [--keep | --reuse URL]

Uses DATABASE_URL when set (an embedded PostgreSQL otherwise), in a scratch database it drops afterwards
(`--keep` keeps it, `--reuse URL` measures one kept earlier). `--quick`: 50,000 patients, 40 requests per
kind. The figures replace the `patient-search` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import time
import uuid
from collections.abc import Callable

import httpx
import psycopg

from api.app import create_app
from bench.common import Latency, SqlClock, api_settings, scratch_database, write_section
from bench.seed import describe, seed_dataset
from core.auth import Role, issue_dev_token
from core.embedded_db import to_libpq_url

Person = tuple[str, str, str, str]  # first name, last name, phone, MRN
Kind = Callable[[Person], tuple[str, dict[str, str]]]


def sample_people(url: str, tenant_id: uuid.UUID, count: int) -> list[Person]:
    """Real (first, last, phone, mrn) tuples of the tenant to derive queries from."""
    with psycopg.connect(to_libpq_url(url)) as conn:
        rows = conn.execute(
            "SELECT first_name, last_name, phone_primary, mrn FROM patients WHERE tenant_id = %s "
            "ORDER BY random() LIMIT %s",
            (tenant_id, count),
        ).fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def largest_tenant(url: str) -> tuple[uuid.UUID, int, int]:
    """The tenant with the most patients, its patient count and the count of all patients."""
    with psycopg.connect(to_libpq_url(url)) as conn:
        tenant, count = conn.execute(  # type: ignore[misc]
            "SELECT tenant_id, count(*) FROM patients GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
        ).fetchone()
        total = conn.execute("SELECT count(*) FROM patients").fetchone()[0]  # type: ignore[index]
    return tenant, int(count), int(total)


def typo(word: str, rng: random.Random) -> str:
    """Change one inner letter, the way people mistype names."""
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + rng.choice([c for c in "aeiourn" if c != word[i].lower()]) + word[i + 1 :]


def kinds(rng: random.Random) -> dict[str, Kind]:
    """Each kind of request, built from a sampled person."""
    return {
        "name: first name": lambda p: ("/patients/search", {"query": p[0]}),
        "name: last name": lambda p: ("/patients/search", {"query": p[1]}),
        "name: full name": lambda p: ("/patients/search", {"query": f"{p[0]} {p[1]}"}),
        "name: full name with a typo": lambda p: ("/patients/search", {"query": f"{p[0]} {typo(p[1], rng)}"}),
        "name: last name with a typo": lambda p: ("/patients/search", {"query": typo(p[1], rng)}),
        "name: prefix of 2-3 letters": lambda p: (
            "/patients/search",
            {"query": rng.choice(p[:2])[: rng.choice((2, 3))]},
        ),
        "phone fragment": lambda p: ("/patients/search", {"query": p[2][-7:], "type": "phone"}),
        "MRN": lambda p: ("/patients/search", {"query": p[3], "type": "mrn"}),
        "list with ?search= (page 1)": lambda p: ("/patients", {"search": p[1]}),
    }


async def measure(url: str, tenant_id: uuid.UUID, requests: int) -> tuple[list[Latency], list[Latency]]:
    """Time each kind of patient search through the real API (in-process ASGI, real database): the whole
    request, and the part of it spent in SQL statements."""
    settings = api_settings(url)
    token = issue_dev_token(settings, tenant_id=tenant_id, roles=[Role.VIEWER])
    headers = {"Authorization": f"Bearer {token}"}
    people = sample_people(url, tenant_id, requests)
    rng = random.Random(7)
    app = create_app(settings, database_url=url)
    results, in_sql = [], []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for person in people[:10]:  # warm the pool, the caches and the prepared statements
                await client.get("/api/v1/prm/patients/search", params={"query": person[1]}, headers=headers)
            with SqlClock() as clock:
                for name, build in kinds(rng).items():
                    samples, sql_samples = [], []
                    for person in people:
                        path, params = build(person)
                        clock.take()
                        started = time.perf_counter()
                        resp = await client.get("/api/v1/prm" + path, params=params, headers=headers)
                        samples.append((time.perf_counter() - started) * 1000)
                        sql_samples.append(clock.take())
                        resp.raise_for_status()
                    results.append(Latency(name, samples))
                    in_sql.append(Latency(name, sql_samples))
                    print(f"  {results[-1].row()}  SQL p50 {in_sql[-1].p50:.1f} ms", flush=True)
    return results, in_sql


def main() -> None:
    """Seed, measure, report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="of 1,000,000 patients (default 1)")
    parser.add_argument("--requests", type=int, default=200, help="requests per kind of search")
    parser.add_argument("--quick", action="store_true", help="50,000 patients, 40 requests per kind")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", metavar="URL", help="measure a database seeded by an earlier --keep run")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    if args.quick:
        args.scale, args.requests = 0.05, 40

    if args.reuse:
        tenant, in_tenant, total = largest_tenant(args.reuse)
        loaded = f"{total:,} patients over several tenants (reused database)"
        print(f"measuring {args.requests} requests per kind ...", flush=True)
        results, in_sql = asyncio.run(measure(args.reuse, tenant, args.requests))
    else:
        with scratch_database(keep=args.keep) as url:
            if args.keep:
                print(f"database (kept): {url}", flush=True)
            print(f"seeding patients at scale {args.scale} ...", flush=True)
            dataset = seed_dataset(url, args.scale, parts=["patients"], rollups=False)
            loaded, in_tenant = describe(dataset), dataset.main.patients
            print(f"measuring {args.requests} requests per kind ...", flush=True)
            results, in_sql = asyncio.run(measure(url, dataset.main.id, args.requests))

    body = "\n".join(
        [
            "## Patient search",
            "",
            f"`python -m bench.patient_search --scale {args.scale} --requests {args.requests}` on "
            f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}: "
            f"{loaded} (`bench.seed`, patients only); every request searches the largest tenant "
            f"({in_tenant:,} patients) through the real API (in-process ASGI, auth, real PostgreSQL), one at "
            "a time, for patients sampled at random (so common and rare names alike). Goal: every kind of "
            "name search p50 <= 10 ms and p95 <= 30 ms at 1,000,000 patients.",
            "",
            "| request | n | p50 ms | p95 ms | max ms |",
            "| --- | --- | --- | --- | --- |",
            *(r.row() for r in results),
            "",
            "Of which inside SQL statements (the driver's calls summed per request: the search's own "
            "queries, the tenant check, the audit record):",
            "",
            "| request | n | p50 ms | p95 ms | max ms |",
            "| --- | --- | --- | --- | --- |",
            *(r.row() for r in in_sql),
        ]
    )
    if args.no_write:
        print(body)
        return
    write_section("patient-search", body)
    print("BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
