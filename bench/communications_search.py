"""Message search at scale: the shared data set's messages (default five million over five tenants, 80 % in
the largest), then times `GET /communications/search` in the largest tenant.

    .venv/bin/python -m bench.communications_search [--scale 1] [--requests 100] [--quick]
                                                    [--keep | --reuse URL]

Uses DATABASE_URL when set (an embedded PostgreSQL otherwise), in a scratch database it drops afterwards.
Messages (`bench.seed`) are sentences built from word lists with a skewed (Zipf-like) choice, so a common
word matches a large share of the rows, a medication a few percent, and a rare code word a handful.
`--quick`: 250,000 messages, 30 requests per kind, one run. The figures replace the `communications-search`
section of BENCHMARKS.md.
"""

from __future__ import annotations

import asyncio
import platform
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

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
from bench.seed import MEDICATIONS, MESSAGE_DAYS, PHRASES, describe, seed_dataset
from core.auth import Role, issue_dev_token
from core.embedded_db import to_libpq_url

DAYS = MESSAGE_DAYS


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


async def measure(
    url: str, tenant_id: uuid.UUID, requests: int, runs: int = 1
) -> tuple[list[list[Latency]], list[Latency], dict[str, int]]:
    """Time each kind of search through the real API (in-process ASGI, real database)."""
    settings = api_settings(url)
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
    all_runs: list[list[Latency]] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(5):  # warm the connection pool and the caches
                await client.get(
                    "/api/v1/prm/communications/search", params={"query": "clinic"}, headers=headers
                )
            with SqlClock() as clock:
                for run in range(1, runs + 1):
                    print(f"run {run} of {runs}:", flush=True)
                    results, in_sql = [], []
                    for name, build in kinds.items():
                        gets = (("/api/v1/prm/communications/search", build(i)) for i in range(requests))
                        whole, sql = await clock.time_gets(client, name, gets, headers)
                        results.append(whole)
                        in_sql.append(sql)
                    all_runs.append(results)
    return all_runs, in_sql, selectivity


def main() -> None:
    """Seed, measure, report."""
    args = search_bench_arguments(
        __doc__ or "",
        of="5,000,000 messages",
        requests=100,
        quick=(0.05, 30),
        quick_help="250,000 messages, 30 requests per kind",
    )

    if args.reuse:
        url = args.reuse
        with psycopg.connect(to_libpq_url(url)) as conn:
            searched, main_share = conn.execute(  # type: ignore[misc]
                "SELECT tenant_id, count(*) FROM communications GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
            ).fetchone()
            messages = conn.execute("SELECT count(*) FROM communications").fetchone()[0]  # type: ignore[index]
        loaded = f"{messages:,} messages over several tenants, loaded earlier (`--keep`, then `--reuse`)"
        print(f"measuring {args.requests} requests per kind ...", flush=True)
        runs, in_sql, selectivity = asyncio.run(measure(url, searched, args.requests, args.runs))
    else:
        with scratch_database(keep=args.keep) as url:
            if args.keep:
                print(f"database (kept): {url}", flush=True)
            print(f"seeding messages at scale {args.scale} ...", flush=True)
            dataset = seed_dataset(url, args.scale, parts=["messages"], rollups=False)
            loaded, main_share = describe(dataset), dataset.main.messages
            print(f"measuring {args.requests} requests per kind ...", flush=True)
            runs, in_sql, selectivity = asyncio.run(measure(url, dataset.main.id, args.requests, args.runs))

    hits = ", ".join(f"`{q}` {n:,}" for q, n in selectivity.items())
    body = "\n".join(
        [
            "## Communications search",
            "",
            f"`python -m bench.communications_search --scale {args.scale} --requests {args.requests}` "
            f"on {platform.machine()}, {platform.python_implementation()} {platform.python_version()}: "
            f"{loaded} (`bench.seed`, messages and their patients), {main_share:,} messages in the searched "
            "tenant over two years; sentences built from word lists with a skewed choice of words, "
            "medication names and rare code words. Each request goes through the real API (in-process "
            "ASGI, auth, real PostgreSQL), one at a time, page 1 of 20. "
            "Goal: p50 <= 20 ms at 5,000,000 messages.",
            "",
            f"Matches in the searched tenant: {hits}.",
            "",
            *runs_table(runs, in_sql),
            "",
            f"{len(runs)} runs one after the other (figures move from run to run; the section "
            "after this one reads them). The last column is the part of each request spent inside SQL "
            "statements (the driver's calls summed per request: the search's own queries, the tenant "
            "check, the audit record).",
        ]
    )
    if args.no_write:
        print(body)
        return
    write_section("communications-search", body)
    print("BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
