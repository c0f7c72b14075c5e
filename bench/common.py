"""Shared benchmark plumbing: a scratch database, an in-process API, latency statistics, BENCHMARKS.md."""

from __future__ import annotations

import argparse
import itertools
import os
import re
import statistics
import threading
import time
import uuid
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from temporalio.testing import WorkflowEnvironment

from core import reads
from core.embedded_db import start_embedded_postgres, to_libpq_url, to_sqlalchemy_url
from core.migrate import scratch_database as migrated_scratch
from core.settings import Settings, get_settings
from core.temporal import SEARCH_ATTRIBUTES, dev_server_binary

ROOT = Path(__file__).resolve().parent.parent
# `make bench QUICK=1` points this elsewhere: a smoke run's figures never replace the documented ones.
BENCHMARKS_MD = ROOT / os.environ.get("PRM_BENCHMARKS_FILE", "BENCHMARKS.md")


def server_url() -> str:
    """DATABASE_URL when set, otherwise the embedded PostgreSQL under PRM_DATA_DIR."""
    if os.environ.get("DATABASE_URL"):
        return to_sqlalchemy_url(os.environ["DATABASE_URL"])
    return start_embedded_postgres(get_settings().embedded_pgdata)


def scratch_database(keep: bool = False) -> AbstractContextManager[str]:
    """A new, migrated database on the configured server; dropped afterwards unless `keep`."""
    return migrated_scratch(server_url(), "prm_bench", keep=keep)


@dataclass
class Latency:
    """Latency figures of one kind of request, in milliseconds."""

    name: str
    samples_ms: list[float]

    @property
    def p50(self) -> float:
        """Median."""
        return statistics.median(self.samples_ms)

    @property
    def p95(self) -> float:
        """95th percentile."""
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def max(self) -> float:
        """Slowest sample."""
        return max(self.samples_ms)

    def row(self) -> str:
        """A Markdown table row."""
        return f"| {self.name} | {len(self.samples_ms)} | {self.p50:.1f} | {self.p95:.1f} | {self.max:.1f} |"


def write_section(section: str, body: str) -> None:
    """Replace (or append) the section `section` of BENCHMARKS.md with `body`."""
    begin, end = f"<!-- bench:{section}:begin -->", f"<!-- bench:{section}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    header = (
        "# Benchmarks\n\nFigures written by the scripts in `bench/`; each section says how to reproduce it.\n"
    )
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else header
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    text = pattern.sub(block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    BENCHMARKS_MD.write_text(text)


# Tenant settings for benchmarks whose messages are to go at once whatever the time of day: without quiet
# hours (21:00-08:00 by default) a benchmark run at night would hold every message in a delivery workflow.
NO_QUIET_HOURS = '{"quiet_hours": {"enabled": false}}'


async def temporal_dev_server() -> WorkflowEnvironment:
    """A Temporal dev server for one benchmark (the venv's `temporal` CLI, the search attributes the
    workflows set, errors only in its log)."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(dev_server_binary()),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=["--log-level", "error"],
    )


def insert_tenant(url: str, name: str = "Bench", settings: str = "{}") -> uuid.UUID:
    """A tenant row for the benchmark's data (`settings`: its settings, JSON); returns its id."""
    tenant_id = uuid.uuid4()
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tenants (id, name, timezone, settings, is_active) VALUES (%s, %s, 'UTC', %s, true)",
            (tenant_id, name, settings),
        )
    return tenant_id


def api_settings(url: str) -> Settings:
    """Settings for an in-process API over `url` that a benchmark times request after request: no Temporal,
    and per-user and per-tenant limits high enough never to answer 429 (the limiter still runs)."""
    return Settings(
        env="test",
        database_url=url,
        temporal_address="127.0.0.1:1",
        rate_limit_per_user="1000000/minute",
        rate_limit_per_tenant="1000000/minute",
    )


class SqlClock:
    """Milliseconds spent inside SQL statements (every SQLAlchemy engine of this process and every
    `core.reads.TenantReads`, from the driver's call to its answer), summed until `take()`: splits a
    request's time into the database's and the rest."""

    def __init__(self) -> None:
        self.ms = 0.0

    def __enter__(self) -> SqlClock:
        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)
        reads.STATEMENT_TIMERS.append(self._add)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(Engine, "before_cursor_execute", self._before)
        event.remove(Engine, "after_cursor_execute", self._after)
        reads.STATEMENT_TIMERS.remove(self._add)

    def _add(self, ms: float) -> None:
        self.ms += ms

    def _before(self, conn: Connection, *_: object) -> None:
        conn.info["sql_clock_started"] = time.perf_counter()

    def _after(self, conn: Connection, *_: object) -> None:
        self.ms += (time.perf_counter() - conn.info.pop("sql_clock_started")) * 1000

    def take(self) -> float:
        """The milliseconds summed since the last call."""
        ms, self.ms = self.ms, 0.0
        return ms

    async def time_gets(
        self,
        client: httpx.AsyncClient,
        name: str,
        requests: Iterable[tuple[str, dict[str, Any]]],
        headers: dict[str, str],
    ) -> tuple[Latency, Latency]:
        """GET each (path, params) one after the other; (whole-request, in-SQL) latencies named `name`,
        printed as they are measured. A request that fails stops the benchmark."""
        samples, sql_samples = [], []
        for path, params in requests:
            self.take()
            started = time.perf_counter()
            resp = await client.get(path, params=params, headers=headers)
            samples.append((time.perf_counter() - started) * 1000)
            sql_samples.append(self.take())
            resp.raise_for_status()
        whole, in_sql = Latency(name, samples), Latency(name, sql_samples)
        print(f"  {whole.row()}  SQL p50 {in_sql.p50:.1f} ms", flush=True)
        return whole, in_sql


def search_bench_arguments(
    description: str, *, of: str, requests: int, quick: tuple[float, int], quick_help: str
) -> argparse.Namespace:
    """The command line both search benchmarks take: `--scale` (of the data set's `of`), `--requests`,
    `--quick` (scale and requests from `quick`, one run), `--keep`/`--reuse URL`, `--runs`, `--no-write`."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help=f"of {of} (default 1)")
    parser.add_argument("--requests", type=int, default=requests, help="requests per kind of search")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", metavar="URL", help="measure a database seeded by an earlier --keep run")
    parser.add_argument("--runs", type=int, default=2, help="measurements, one after the other (default 2)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    if args.quick:
        args.scale, args.requests, args.runs = quick[0], quick[1], 1
    return args


def runs_table(runs: list[list[Latency]], sql: list[Latency] | None = None) -> list[str]:
    """A Markdown table of the same requests measured in several runs (p50 / p95 / max of each run), with
    the median time inside SQL statements of the last run when given."""
    head = "| request | n |" + "".join(
        f" run {i} p50 ms | run {i} p95 ms | run {i} max ms |" for i in range(1, len(runs) + 1)
    )
    rule = "| --- | --- |" + " --- | --- | --- |" * len(runs)
    if sql is not None:
        head, rule = head + " SQL p50 ms (last run) |", rule + " --- |"
    lines = [head, rule]
    for i, first in enumerate(runs[0]):
        cells = "".join(f" {r[i].p50:.1f} | {r[i].p95:.1f} | {r[i].max:.1f} |" for r in runs)
        lines.append(
            f"| {first.name} | {len(first.samples_ms)} |{cells}" + (f" {sql[i].p50:.1f} |" if sql else "")
        )
    return lines


def _rss(process: psutil.Process) -> int:
    """`process`'s resident memory in bytes (0 once it has ended)."""
    try:
        return int(process.memory_info().rss)
    except psutil.Error:
        return 0


class PeakRss:
    """The highest resident memory (MB) of process `pid` and its children, sampled in a thread every
    `interval` seconds while the `with` block runs: a process's footprint under load."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval, self.peak_mb, self.last_mb = pid, interval, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        process = psutil.Process(self.pid)
        children: list[psutil.Process] = []
        for n in itertools.count():
            try:
                # Listing the children reads every process of the machine: done every 40th sample only, so
                # the sampler does not compete with the benchmark's own process for the CPU.
                if n % 40 == 0:
                    children = process.children(recursive=True)
                rss = process.memory_info().rss + sum(map(_rss, children))
            except psutil.Error:  # it ended
                rss = 0
            self.last_mb = rss / 2**20
            self.peak_mb = max(self.peak_mb, self.last_mb)
            if self._stop.wait(self.interval):
                return
