"""Patient search at scale: the shared data set's patients (default one million over five tenants, one of
800,000), then times the search endpoints in the largest tenant.

    .venv/bin/python -m bench.patient_search [--scale 1] [--requests 200] [--quick] [--keep | --reuse URL]

Uses DATABASE_URL when set (an embedded PostgreSQL otherwise), in a scratch database it drops afterwards
(`--keep` keeps it, `--reuse URL` measures one kept earlier). `--quick`: 50,000 patients, 40 requests per
kind, one run. The figures replace the `patient-search` section of BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import platform
import random
import uuid
from collections.abc import Callable

import httpx
import psycopg

from api.app import create_app
from bench.common import (
    Latency,
    SqlClock,
    api_settings,
    runs_table,
    scratch_database,
    search_bench_arguments,
    write_section,
)
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


async def measure_runs(
    url: str, tenant_id: uuid.UUID, requests: int, runs: int
) -> tuple[list[list[Latency]], list[Latency]]:
    """`runs` measurements one after the other (the machine is shared: figures move); the SQL time of the
    last one."""
    results: list[list[Latency]] = []
    for run in range(1, runs + 1):
        print(f"run {run} of {runs}:", flush=True)
        latencies, in_sql = await measure(url, tenant_id, requests)
        results.append(latencies)
    return results, in_sql


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
                    gets = (("/api/v1/prm" + path, params) for path, params in map(build, people))
                    whole, sql = await clock.time_gets(client, name, gets, headers)
                    results.append(whole)
                    in_sql.append(sql)
    return results, in_sql


def main() -> None:
    """Seed, measure, report."""
    args = search_bench_arguments(
        __doc__ or "",
        of="1,000,000 patients",
        requests=200,
        quick=(0.05, 40),
        quick_help="50,000 patients, 40 requests per kind",
    )

    if args.reuse:
        tenant, in_tenant, total = largest_tenant(args.reuse)
        loaded = f"{total:,} patients over several tenants, loaded earlier (`--keep`, then `--reuse`)"
        print(f"measuring {args.requests} requests per kind ...", flush=True)
        runs, in_sql = asyncio.run(measure_runs(args.reuse, tenant, args.requests, args.runs))
    else:
        with scratch_database(keep=args.keep) as url:
            if args.keep:
                print(f"database (kept): {url}", flush=True)
            print(f"seeding patients at scale {args.scale} ...", flush=True)
            dataset = seed_dataset(url, args.scale, parts=["patients"], rollups=False)
            loaded, in_tenant = describe(dataset), dataset.main.patients
            print(f"measuring {args.requests} requests per kind ...", flush=True)
            runs, in_sql = asyncio.run(measure_runs(url, dataset.main.id, args.requests, args.runs))

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
            *runs_table(runs, in_sql),
            "",
            f"{len(runs)} runs one after the other (figures move from run to run; the section after this "
            "one reads them). The last column is the part of each request spent inside SQL statements "
            "(the driver's calls summed per request: the search's own queries, the tenant check, the audit "
            "record); the rest is the API's own work (routing, auth, audit, the ORM, serialising up to 20 "
            "patients).",
        ]
    )
    if args.no_write:
        print(body)
        return
    write_section("patient-search", body)
    print("BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
