"""Shared benchmark plumbing: a scratch database, an in-process API, latency statistics, BENCHMARKS.md."""

from __future__ import annotations

import os
import re
import statistics
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from core.embedded_db import start_embedded_postgres, to_libpq_url, to_sqlalchemy_url
from core.migrate import scratch_database as migrated_scratch
from core.settings import get_settings

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


def insert_tenant(url: str, name: str = "Bench") -> uuid.UUID:
    """A tenant row for the benchmark's data; returns its id."""
    tenant_id = uuid.uuid4()
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tenants (id, name, timezone, settings, is_active) "
            "VALUES (%s, %s, 'UTC', '{}', true)",
            (tenant_id, name),
        )
    return tenant_id
