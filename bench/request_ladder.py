"""Where a request's time goes, by subtraction: the same `GET /patients/{id}` served by a ladder of apps
from the bare point read up to the service, one layer added per rung, each under the same load.

    .venv/bin/python -m bench.request_ladder [--patients 5000] [--duration 15] [--no-write]

A profiler spreads a request's cost over hundreds of small frames (and py-spy splits the stacks of
coroutines); the ladder measures what each layer costs as a whole. Each rung is one uvicorn process with
the flags of `prm run` (`cli.stack.uvicorn_argv`), loaded by wrk with 32 connections, one after the other
on the same data (`bench.http_load`'s seed). Every SQLAlchemy rung has the bare app's pool: 10
connections, no overflow. Each rung's cost is the API process's CPU time per request answered; the
differences between rungs are what each layer adds.
The rungs are `bench.ladder_apps`. The figures replace the `request-ladder` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import scratch_database, write_section
from bench.http_load import (
    API_PREFIX,
    Result,
    api_env,
    free_port,
    run_wrk,
    seed,
    serve,
    write_wrk_data,
)
from cli.stack import uvicorn_argv
from core.auth import Role, issue_dev_token
from core.embedded_db import to_libpq_url
from core.settings import Settings


@dataclass(frozen=True)
class Rung:
    """One app of the ladder: what it adds, its factory, the path prefix and wrk scenario it answers."""

    name: str
    adds: str
    factory: str
    prefix: str = ""
    scenario: str = "bare_get_patient"
    env: tuple[tuple[str, str], ...] = ()
    against: str = ""  # a rung off the service's path: measured against this one, not the one before


LADDER = (
    Rung("bare", "FastAPI + psycopg's pool, one point read of the patient row", "bench.bare_api:create_app"),
    Rung(
        "statement",
        "the service's statement instead (the patient and eight statistics subqueries)",
        "bench.ladder_apps:statistics_psycopg",
    ),
    Rung(
        "response model",
        "the answer validated and serialised through `PatientDetailResponse`",
        "bench.ladder_apps:statistics_psycopg_model",
    ),
    Rung(
        "(aside) SQLAlchemy Core",
        "off the service's path since `core.reads`: the statement on SQLAlchemy's async engine (Core "
        "connection) instead of psycopg's pool, against 'statement'",
        "bench.ladder_apps:sqlalchemy_connection",
        against="statement",
    ),
    Rung(
        "(aside) SQLAlchemy session",
        "the same through a read session of the service's, against 'statement'",
        "bench.ladder_apps:sqlalchemy_session",
        against="statement",
    ),
    Rung(
        "service route",
        "the service's app, its read pool (`core.reads`) as the route's only dependency",
        "bench.ladder_apps:service_route_only",
        prefix="/lean",
        scenario="get_patient",
    ),
    Rung(
        "+ dependencies",
        "the service's route and dependencies: token, rate limits, active tenant, permission, audit hooks",
        "bench.ladder_apps:service_no_middleware",
        prefix=API_PREFIX,
        scenario="get_patient",
    ),
    Rung(
        "service",
        "+ the middlewares: metrics and access log, request id, security headers, CORS, deprecation "
        "headers, input guard, audit trail",
        "api.app:create_app_from_env",
        prefix=API_PREFIX,
        scenario="get_patient",
    ),
)
# The service with one part taken away: what that part costs on its own.
WITHOUT = (
    Rung(
        "service without the audit trail",
        "",
        "bench.ladder_apps:service_no_audit",
        prefix=API_PREFIX,
        scenario="get_patient",
    ),
    *(
        Rung(
            f"service without {part}",
            "",
            f"bench.ladder_apps:{factory}",
            prefix=API_PREFIX,
            scenario="get_patient",
        )
        for part, factory in (
            ("the request metrics and access log", "service_no_metrics"),
            ("the request id", "service_no_request_id"),
            ("the input guard", "service_no_input_guard"),
            ("the security, CORS and deprecation headers", "service_no_headers"),
        )
    ),
    Rung(
        "service with its rate-limit counters in Redis",
        "",
        "api.app:create_app_from_env",
        prefix=API_PREFIX,
        scenario="get_patient",
        env=(("REDIS_URL", "from --redis-url"),),
    ),
    Rung(
        "service without rate limits",
        "",
        "api.app:create_app_from_env",
        prefix=API_PREFIX,
        scenario="get_patient",
        env=(("PRM_RATE_LIMITS_ENABLED", "false"),),
    ),
)


def cost_ms(result: Result) -> float:
    """Milliseconds of the API process's CPU per request answered (its CPU time over the run divided by
    its requests): unlike 1000 / (req/s) it does not move with what else the machine's cores run."""
    return result.cpu_ms


def main() -> None:
    """Seed, serve each rung, load it, report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=5_000)
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per rung")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL"), help="also the service with counters in Redis"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench.request_ladder needs wrk: `apt-get install wrk` as root.")

    with scratch_database() as url, tempfile.TemporaryDirectory() as tmp:
        seeded = seed(url, args.patients, random.Random(42))
        token = issue_dev_token(
            Settings(), tenant_id=seeded.tenant_id, roles=[Role.COORDINATOR], sub="bench-coordinator",
            ttl=timedelta(hours=6),
        )  # fmt: skip
        data = Path(tmp) / "data.lua"
        write_wrk_data(data, token, seeded)
        env = {
            **api_env(url, None),
            "BENCH_DATABASE_URL": to_libpq_url(url),
            "BENCH_TENANT_ID": str(seeded.tenant_id),
            "PRM_DB_POOL_SIZE": "10",
            "PRM_DB_MAX_OVERFLOW": "0",
        }
        results: list[tuple[Rung, Result]] = []
        for rung in (*LADDER, *WITHOUT):
            if dict(rung.env).get("REDIS_URL") and not args.redis_url:
                continue
            rung_env = {k: args.redis_url if k == "REDIS_URL" else v for k, v in rung.env}
            argv = uvicorn_argv(rung.factory, "127.0.0.1", free_port(), "info")
            probe = f"/patients/{seeded.patients[0]}" if rung.prefix == "" else "/health"
            with serve(rung.name, argv, {**env, **rung_env}, prefix=rung.prefix, probe=probe) as app:
                run_wrk(app, rung.scenario, data, duration=3, connections=32, threads=2)  # warm up
                result = run_wrk(app, rung.scenario, data, duration=args.duration, connections=32, threads=2)
            results.append((rung, result))
            print(
                f"{rung.name}: {result.rps:.0f} req/s ({cost_ms(result):.2f} ms of CPU each), "
                f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, errors {result.errors}",
                flush=True,
            )

    service = next(r for rung, r in results if rung.name == "service")
    rows = [
        "| rung | adds | req/s | CPU ms per request | added ms | p50 ms | p99 ms | errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    previous: Result | None = None
    measured = {rung.name: result for rung, result in results}
    for rung, result in results[: len(LADDER)]:
        base = measured[rung.against] if rung.against else previous
        added = f"{cost_ms(result) - cost_ms(base):+.2f}" if base else ""
        rows.append(
            f"| {rung.name} | {rung.adds} | {result.rps:.0f} | {cost_ms(result):.2f} | {added} "
            f"| {result.p50_ms:.1f} | {result.p99_ms:.1f} | {result.errors} |"
        )
        if not rung.against:
            previous = result
    for rung, result in results[len(LADDER) :]:
        difference = cost_ms(result) - cost_ms(service)
        rows.append(
            f"| {rung.name} | (against the service) | {result.rps:.0f} | {cost_ms(result):.2f} "
            f"| {difference:+.2f} | {result.p50_ms:.1f} | {result.p99_ms:.1f} | {result.errors} |"
        )
    body = "\n".join(
        [
            "## Request ladder: where GET /patients/{id} spends its time",
            "",
            f"`python -m bench.request_ladder --patients {args.patients} --duration {args.duration}` on "
            f"{platform.machine()}, CPython {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d}: "
            "the same request served by apps that each add one layer to the one before "
            "(`bench/ladder_apps.py`), one uvicorn process each with the flags of `prm run`, wrk with 32 "
            f"connections for {args.duration} s each, one after the other on the same data; every pool "
            "holds 10 connections, none overflow. "
            "'CPU ms per request' is the API process's CPU time over the run divided by the requests it "
            "answered (a measure that does not move with what else the machine's cores run, as req/s "
            "does). 'added ms' is what the rung's layer costs; for the variants of the service below the "
            "ladder, what the change makes of the service's cost.",
            "",
            *rows,
        ]
    )
    print(body)
    if not args.no_write:
        write_section("request-ladder", body)
        print("BENCHMARKS.md updated")


if __name__ == "__main__":
    main()
