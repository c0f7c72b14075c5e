"""The request path under load: the real API served as `make run` serves it, next to a bare reference.

    .venv/bin/python -m bench.http_load [--patients 20000] [--duration 20] [--runs 2] [--compare main]

What runs, in one process tree and one database server (DATABASE_URL's, else the embedded PostgreSQL):
- a scratch database, migrated and seeded with PostgreSQL COPY: three tenants (one holding 80% of the
  rows), practitioners, patients, two appointments and three messages per patient, and two locations
  (New York, Tokyo) per tenant where each practitioner sees a patient every hour from 09:00 to 16:00 on
  the run's day, the location's local day; each server of each run is served a fresh copy of it
  (`database_copy`), so none is measured on what another left behind;
- the API in one uvicorn process with the flags of `prm run` (`cli.stack.uvicorn_argv`), the real settings
  (auth, rate limits on with limits too high to trigger, the audit trail), tokens of a coordinator;
- the reference: `bench.bare_api`, a bare FastAPI app doing one psycopg point read of the same rows,
  served with the same flags from the same venv, and measured right before each server's request kinds
  (this machine's speed moves by a third or more over minutes: a server's ratios are to the reference
  measured next to it);
- with `--compare REF`, the API of git revision REF too (its tree exported to a temporary directory and
  served from the same venv as it was served then), so before/after figures come from the same run;
- wrk (Debian's package) with `--connections` connections for each request kind: GET /patients/{id}, a
  list, a name search, a create, an update, today's appointments (GET /appointments/today: the whole
  clinic's, one practitioner's or one location's, a third each), and a mixed workload (70% reads of
  patients, appointments and messages; 20% searches; 10% writes); every answer outside 2xx is an error;
- `pgbench -S` (select-only, same connection count) on the same PostgreSQL, when pgbench is installed.

The API's resident memory is sampled while wrk runs, and its CPU time per request is taken. With
`--profile DIR`, py-spy records the API during each request kind (collapsed stacks in DIR; only the
samples that hold the GIL, so a stack's share is its share of the API's CPU, not of its waits).
The figures replace the `http` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as datetime_time
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psutil
import psycopg
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from bench.common import ROOT, scratch_database, server_url, write_section
from cli.stack import uvicorn_argv
from core.auth import Role, issue_dev_token
from core.embedded_db import to_libpq_url
from core.settings import Settings

WRK_SCRIPT = ROOT / "bench" / "wrk" / "prm.lua"
API_PREFIX = "/api/v1/prm"
START_TIMEOUT_SECONDS = 180  # a server starting on a machine other jobs share can take over a minute
SCENARIOS = ("get_patient", "list", "search", "create", "update", "today", "mixed")
LABELS = {
    "bare_get_patient": "bare FastAPI + psycopg point read",
    "get_patient": "GET /patients/{id}",
    "list": "GET /patients (page of 20)",
    "search": "GET /patients/search?type=name",
    "create": "POST /patients",
    "update": "PATCH /patients/{id}",
    "today": "GET /appointments/today",
    "mixed": "mixed 70/20/10",
}
# How the API was served before `uvicorn[standard]` and the structured access log: the pure-Python h11
# parser, asyncio's loop and uvicorn's access log (used for `--compare` with a revision that predates them;
# a later revision is served with the flags of `prm run`).
BEFORE_FLAGS = ["--http", "h11", "--loop", "asyncio"]
# The seeded locations' zones: a clinic's "today" is its location's local day (hours apart from UTC's).
LOCATION_ZONES = ("America/New_York", "Asia/Tokyo")
TODAY_HOURS = range(9, 17)  # each practitioner's appointments on the run's local day, one an hour
FIRST_NAMES = "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth Maria Ahmed Wei".split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez "
    "Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark "
    "Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams"
).split()
WORDS = (
    "appointment reminder clinic results pharmacy metformin lisinopril follow blood pressure reply "
    "confirm reschedule thanks please call tomorrow morning fasting labs refill"
).split()


# ---- the data ------------------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What the load generator needs of the seeded data: the busy tenant and ids of its rows."""

    tenant_id: uuid.UUID
    patients: list[uuid.UUID] = field(default_factory=list)
    appointments: list[uuid.UUID] = field(default_factory=list)
    messages: list[uuid.UUID] = field(default_factory=list)
    practitioners: list[uuid.UUID] = field(default_factory=list)
    locations: list[uuid.UUID] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def seed(url: str, patients: int, rng: random.Random) -> Seeded:
    """Three tenants (80/10/10) with practitioners, patients, 2 appointments and 3 messages per patient,
    and each practitioner's appointments of the run's day at one of the tenant's locations, loaded with
    COPY (triggers off: the analytics rollups are not what is measured here)."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    tenants = [uuid.uuid4() for _ in range(3)]
    shares = [patients - 2 * (patients // 10), patients // 10, patients // 10]
    seeded = Seeded(tenant_id=tenants[0])
    counts = {
        "tenants": 3, "practitioners": 0, "patients": 0, "appointments": 0, "messages": 0, "locations": 0,
    }  # fmt: skip
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        for number, tenant in enumerate(tenants):
            conn.execute(
                "INSERT INTO tenants (id, name, timezone, settings, is_active) "
                "VALUES (%s, %s, 'UTC', '{}', true)",
                (tenant, f"Bench clinic {number + 1}"),
            )
        for tenant, share in zip(tenants, shares, strict=True):
            practitioners = [uuid.uuid4() for _ in range(20)]
            with conn.cursor().copy(
                "COPY practitioners (id, tenant_id, first_name, last_name, is_active, meta_data) FROM STDIN"
            ) as copy:
                for p in practitioners:
                    copy.write_row((p, tenant, rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), True, "{}"))
            people = [uuid.uuid4() for _ in range(share)]
            with conn.cursor().copy(
                "COPY patients (id, tenant_id, mrn, first_name, last_name, date_of_birth, gender, "
                "phone_primary, email_primary, city, status, meta_data, preferred_channel) FROM STDIN"
            ) as copy:
                for i, p in enumerate(people):
                    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                    copy.write_row((
                        p, tenant, f"MRN-{i:09d}", first, last,
                        datetime(1940, 1, 1).date() + timedelta(days=rng.randrange(29000)),
                        rng.choice(("male", "female", "other")), f"+1415{rng.randrange(10**7):07d}",
                        f"{first.lower()}.{last.lower()}{i}@example.com", "Springfield", "active", "{}",
                        rng.choice(("sms", "email", "whatsapp")),
                    ))  # fmt: skip
            locations = {uuid.uuid4(): zone for zone in LOCATION_ZONES}
            with conn.cursor().copy(
                "COPY locations (id, tenant_id, name, timezone, is_active) FROM STDIN"
            ) as copy:
                for location, zone in locations.items():
                    copy.write_row((location, tenant, zone.split("/")[-1].replace("_", " "), zone, True))
            appointments, messages = [], []
            with conn.cursor().copy(
                "COPY appointments (id, tenant_id, patient_id, practitioner_id, shared_slot, start_time, "
                "end_time, status, appointment_type, meta_data) FROM STDIN"
            ) as copy:
                base = now - timedelta(days=365)
                for k in range(2 * share):
                    # Practitioner k % 20 sees a patient every half hour: no overlapping bookings.
                    start = base + timedelta(minutes=30 * (k // len(practitioners)))
                    status = "completed" if start < now else "booked"
                    a = uuid.uuid4()
                    appointments.append(a)
                    copy.write_row((
                        a, tenant, people[k % share], practitioners[k % len(practitioners)], False, start,
                        start + timedelta(minutes=30), status, "consultation", "{}",
                    ))  # fmt: skip
            with conn.cursor().copy(
                "COPY appointments (id, tenant_id, patient_id, practitioner_id, location_id, shared_slot, "
                "start_time, end_time, status, appointment_type, meta_data) FROM STDIN"
            ) as copy:
                for k, practitioner in enumerate(practitioners):
                    location, zone = list(locations.items())[k % len(locations)]
                    day = datetime.now(ZoneInfo(zone)).date()
                    for hour in TODAY_HOURS:
                        start = datetime.combine(day, datetime_time(hour), ZoneInfo(zone))
                        a = uuid.uuid4()
                        appointments.append(a)
                        copy.write_row((
                            a, tenant, rng.choice(people), practitioner, location, False, start,
                            start + timedelta(minutes=30), "completed" if start < now else "booked",
                            "consultation", "{}",
                        ))  # fmt: skip
            with conn.cursor().copy(
                "COPY communications (id, tenant_id, patient_id, direction, channel, recipient, message, "
                "template_vars, status, is_urgent, meta_data, created_at, sent_at) FROM STDIN"
            ) as copy:
                for k in range(3 * share):
                    m = uuid.uuid4()
                    messages.append(m)
                    at = now - timedelta(minutes=rng.randrange(525_600))
                    text = " ".join(rng.choice(WORDS) for _ in range(12))
                    copy.write_row((
                        m, tenant, people[k % share], rng.choice(("outbound", "inbound")), "sms",
                        "+14155550100", text, "{}", "delivered", False, "{}", at, at,
                    ))  # fmt: skip
            counts["practitioners"] += len(practitioners)
            counts["patients"] += share
            counts["appointments"] += len(appointments)
            counts["messages"] += len(messages)
            counts["locations"] += len(locations)
            if tenant == seeded.tenant_id:
                seeded.patients = rng.sample(people, min(5000, len(people)))
                seeded.appointments = rng.sample(appointments, min(5000, len(appointments)))
                seeded.messages = rng.sample(messages, min(5000, len(messages)))
                seeded.practitioners, seeded.locations = practitioners, list(locations)
        conn.execute("ANALYZE")
    seeded.counts, seeded.seconds = counts, time.perf_counter() - started
    return seeded


def write_wrk_data(path: Path, token: str, seeded: Seeded) -> None:
    """The Lua table `bench/wrk/prm.lua` reads: the token, ids, and words to search for."""

    def lua_list(values: list[str]) -> str:
        return "{" + ",".join(f'"{v}"' for v in values) + "}"

    path.write_text(
        "return {\n"
        f'  token = "{token}",\n'
        f"  patients = {lua_list([str(i) for i in seeded.patients])},\n"
        f"  appointments = {lua_list([str(i) for i in seeded.appointments])},\n"
        f"  messages = {lua_list([str(i) for i in seeded.messages])},\n"
        f"  practitioners = {lua_list([str(i) for i in seeded.practitioners])},\n"
        f"  locations = {lua_list([str(i) for i in seeded.locations])},\n"
        f"  names = {lua_list(LAST_NAMES)},\n"
        f"  words = {lua_list(WORDS)},\n"
        "}\n"
    )


# ---- the servers ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """One uvicorn process serving a variant of the API."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    prefix: str

    @property
    def base(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        """Its resident memory now (with any children), in MB."""
        proc = psutil.Process(self.process.pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            total += child.memory_info().rss
        return total / 2**20

    def cpu_seconds(self) -> float:
        """The CPU time (user and system) it has used so far, with any children's."""
        proc = psutil.Process(self.process.pid)
        times = [proc.cpu_times(), *(child.cpu_times() for child in proc.children(recursive=True))]
        return sum(t.user + t.system for t in times)


@contextmanager
def serve(
    name: str, argv: list[str], env: dict[str, str], *, prefix: str, probe: str, cwd: Path = ROOT
) -> Iterator[Server]:
    """Start `argv` (a uvicorn command line), wait until `probe` answers 2xx, stop it afterwards."""
    port = int(argv[argv.index("--port") + 1])
    log = open(tempfile.gettempdir() + f"/prm-bench-{name}.log", "wb")
    process = subprocess.Popen(argv, env={**os.environ, **env}, cwd=cwd, stdout=log, stderr=log)  # noqa: S603
    server = Server(name, process, port, prefix)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {log.name}")
            try:
                if httpx.get(server.base + probe, timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer {probe} in time; see {log.name}")
            time.sleep(0.2)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextmanager
def database_copy(url: str, name: str) -> Iterator[str]:
    """A copy of the seeded database `url` (`CREATE DATABASE ... TEMPLATE`) for one server's scenarios of
    one run, dropped afterwards; its URL (the same driver as `url`).

    Every server starts from the same rows, and none inherits what another left (the rows its writes
    added, its audit records, its dead tuples): the before and the service are measured alike."""
    source = make_url(url)
    copy = f"{source.database}_{name}"
    copy_url = source.set(database=copy).render_as_string(hide_password=False)
    admin = to_libpq_url(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{source.database}" STRATEGY FILE_COPY')
    prewarm(copy_url)
    try:
        yield copy_url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')


def prewarm(url: str) -> None:
    """Read every table and index of `url`'s database into PostgreSQL's buffers (`pg_prewarm`, shipped with
    PostgreSQL), as a server that has been answering for a while has them: a fresh copy is read from disk
    by the first requests: the mixed workload measured first in a server's life ran at 540-615 req/s, at
    726 with the data prewarmed, and at 860-890 measured last. Skipped, saying so, where the extension
    is not installed."""
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        except psycopg.Error as exc:
            print(f"pg_prewarm unavailable ({type(exc).__name__}): the data starts cold", flush=True)
            return
        conn.execute(
            "SELECT pg_prewarm(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i', 'm', 't')"
        )


def api_env(database_url: str, redis_url: str | None) -> dict[str, str]:
    """The API's settings: the defaults of `make run` but the database, no Temporal needed for these
    requests (an address where nothing listens) and rate limits too high to trigger (still counted)."""
    env = {
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "PRM_RATE_LIMIT_PER_USER": "100000000/minute",
        "PRM_RATE_LIMIT_PER_TENANT": "100000000/minute",
        "PRM_LOG_LEVEL": "INFO",
    }
    env["REDIS_URL"] = redis_url or ""  # empty: counters in the process, as `make run` keeps them
    return env


def exported_tree(ref: str, into: Path) -> Path:
    """The files of git revision `ref`, exported into `into` (to serve an earlier version of the API)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(  # noqa: S603
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref],  # noqa: S607
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)  # noqa: S603, S607
    return into


# ---- the load --------------------------------------------------------------------------------------------


@dataclass
class Result:
    """One wrk run against one server."""

    server: str
    scenario: str
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    requests: int
    rss_mb: float
    cpu_ms: float  # the server's CPU time per request answered


def run_wrk(
    server: Server,
    scenario: str,
    data: Path,
    *,
    duration: int,
    connections: int,
    threads: int,
    profile_dir: Path | None = None,
) -> Result:
    """wrk against `server` for `duration` seconds; the API's peak RSS sampled meanwhile, and its CPU time
    per request (the figure least moved by what else the machine is doing)."""
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
        "-s", str(WRK_SCRIPT), server.base,
    ]  # fmt: skip
    env = {**os.environ, "WRK_DATA": str(data), "WRK_SCENARIO": scenario, "WRK_PREFIX": server.prefix}
    peak = [server.rss_mb()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            peak.append(server.rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    spy = None
    if profile_dir is not None:
        out = profile_dir / f"{server.name}-{scenario}.txt"
        spy = subprocess.Popen(  # noqa: S603
            [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw", "-r", "200",
             "-d", str(duration), "-o", str(out), "-p", str(server.process.pid), "--nonblocking", "--gil"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    cpu_before = server.cpu_seconds()
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)  # noqa: S603
        cpu = server.cpu_seconds() - cpu_before
    finally:
        stop.set()
        sampler.join()
        if spy is not None:
            spy.wait()
    match = re.search(r"^WRK_JSON (\{.*\})$", done.stdout, re.M)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{done.stdout}\n{done.stderr}")
    figures = json.loads(match.group(1))
    seconds = figures["duration_us"] / 1e6
    return Result(
        server=server.name,
        scenario=scenario,
        rps=figures["requests"] / seconds,
        p50_ms=figures["p50"] / 1000,
        p95_ms=figures["p95"] / 1000,
        p99_ms=figures["p99"] / 1000,
        errors=figures["non2xx"] + figures["socket_errors"],
        requests=figures["requests"],
        rss_mb=max(peak),
        cpu_ms=cpu * 1000 / max(figures["requests"], 1),
    )


@dataclass
class PgbenchResult:
    """`pgbench -S` on the same server."""

    tps: float
    latency_ms: float


def pgbench(url: str, *, duration: int, connections: int, threads: int) -> PgbenchResult | None:
    """`pgbench -S` (select-only, scale 10) in a scratch database of its own; None without pgbench."""
    if shutil.which("pgbench") is None:
        return None
    with scratch_database_plain(url) as conninfo:
        subprocess.run(["pgbench", "-i", "-q", "-s", "10", conninfo], check=True, capture_output=True)  # noqa: S603, S607
        done = subprocess.run(  # noqa: S603
            ["pgbench", "-S", "-n", f"-c{connections}", f"-j{threads}", f"-T{duration}", conninfo],  # noqa: S607
            check=True,
            capture_output=True,
            text=True,
        )
    tps = re.search(r"tps = ([\d.]+)", done.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", done.stdout)
    if tps is None or latency is None:
        raise RuntimeError(f"pgbench printed no figures:\n{done.stdout}")
    return PgbenchResult(float(tps.group(1)), float(latency.group(1)))


@contextmanager
def scratch_database_plain(url: str) -> Iterator[str]:
    """An empty scratch database (not migrated) beside `url`'s; its libpq URL."""
    from core.migrate import scratch_database as scratch

    with scratch(url, "prm_pgbench", migrate=False) as plain:
        yield to_libpq_url(plain)


# ---- the report ----------------------------------------------------------------------------------------


def ratio(value: float, reference: float) -> str:
    """`value / reference`, as `0.72x`."""
    return f"{value / reference:.2f}x" if reference else "n/a"


Histograms = dict[tuple[str, str], dict[float, float]]  # (method, route) -> upper bound -> cumulative count


def route_histograms(api: Server) -> Histograms:
    """The API's request-duration histograms by method and route (its `/metrics`)."""
    text = httpx.get(api.base + "/metrics", timeout=30).text
    found: Histograms = {}
    for family in text_string_to_metric_families(text):
        if family.name != "prm_http_request_duration_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                key = (sample.labels["method"], sample.labels["route"])
                found.setdefault(key, {})[float(sample.labels["le"])] = sample.value
    return found


def _quantile(buckets: dict[float, float], q: float) -> float:
    """The q-quantile in ms, interpolated within its bucket (as Prometheus' histogram_quantile)."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower * 1000
            inside = buckets[bound] - below
            return (lower + (bound - lower) * ((rank - below) / inside if inside else 0)) * 1000
        lower, below = bound, buckets[bound]
    return lower * 1000


def kinds_table(before: Histograms, after: Histograms) -> str:
    """The mixed workload taken apart by request kind: what the API's histograms gained while it ran."""
    lines = [
        "| request kind | requests | share | p50 ms | p95 ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    rows = []
    for key, buckets in after.items():
        gained = {b: n - before.get(key, {}).get(b, 0.0) for b, n in buckets.items()}
        count = gained[float("inf")]
        if count > 0 and key[1] != "/metrics":  # the snapshots themselves
            rows.append((key, count, _quantile(gained, 0.5), _quantile(gained, 0.95)))
    total = sum(count for _, count, _, _ in rows) or 1
    for (method, route), count, p50, p95 in sorted(rows, key=lambda r: -r[3]):
        lines.append(f"| {method} {route} | {count:.0f} | {count / total:.0%} | {p50:.1f} | {p95:.1f} |")
    return "\n".join(lines)


def run_table(results: list[Result], references: dict[str, Result], servers: list[str]) -> str:
    """One run's Markdown table: each request kind per server, next to the bare point read measured just
    before that server's requests."""
    lines = [
        "| server | request | req/s | p50 ms | p95 ms | p99 ms | errors | RSS MB | CPU ms/req "
        "| req/s vs bare | p99 vs bare |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in servers:
        bare = references[name]
        lines.append(
            f"| reference, next to {name} | {LABELS['bare_get_patient']} | {bare.rps:.0f} "
            f"| {bare.p50_ms:.1f} | {bare.p95_ms:.1f} | {bare.p99_ms:.1f} | {bare.errors} "
            f"| {bare.rss_mb:.0f} | {bare.cpu_ms:.2f} | 1.00x | 1.00x |"
        )
    for scenario in SCENARIOS:
        for name in servers:
            r = next((x for x in results if x.server == name and x.scenario == scenario), None)
            if r is None:
                continue
            bare = references[name]
            lines.append(
                f"| {name} | {LABELS[scenario]} | {r.rps:.0f} | {r.p50_ms:.1f} | {r.p95_ms:.1f} "
                f"| {r.p99_ms:.1f} | {r.errors} | {r.rss_mb:.0f} | {r.cpu_ms:.2f} | {ratio(r.rps, bare.rps)} "
                f"| {ratio(r.p99_ms, bare.p99_ms)} |"
            )
    return "\n".join(lines)


def main() -> None:
    """Seed, serve, load, report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=20_000, help="patients over the three tenants")
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per request kind")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--runs", type=int, default=2, help="measure everything this many times")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset")
    parser.add_argument("--compare", metavar="REF", help="also serve git revision REF (before/after)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"), help="rate-limit counters")
    parser.add_argument("--profile", metavar="DIR", type=Path, help="py-spy the API into DIR")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    if shutil.which("wrk") is None:
        sys.exit(
            "bench.http_load needs wrk: `apt-get install wrk` as root (`make bench` does it when it can)."
        )
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    rng = random.Random(42)
    server = server_url()
    with scratch_database(keep=args.keep) as url, tempfile.TemporaryDirectory() as tmp:
        seeded = seed(url, args.patients, rng)
        print(f"seeded {seeded.counts} in {seeded.seconds:.1f} s", flush=True)
        token = issue_dev_token(
            Settings(), tenant_id=seeded.tenant_id, roles=[Role.COORDINATOR], sub="bench-coordinator",
            ttl=timedelta(hours=6),
        )  # fmt: skip
        data = Path(tmp) / "data.lua"
        write_wrk_data(data, token, seeded)
        probe_patient = f"/patients/{seeded.patients[0]}"
        variants = [
            ("service", ROOT, uvicorn_argv("api.app:create_app_from_env", "127.0.0.1", free_port(), "info"))
        ]
        if args.compare:
            tree = exported_tree(args.compare, Path(tmp) / "before")
            if '"httptools"' in (tree / "cli" / "stack.py").read_text():  # served as it is served now
                argv = uvicorn_argv("api.app:create_app_from_env", "127.0.0.1", free_port(), "info")
            else:
                argv = [
                    sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app_from_env",
                    "--host", "127.0.0.1", "--port", str(free_port()), "--log-level", "info",
                    "--timeout-graceful-shutdown", "10", *BEFORE_FLAGS,
                ]  # fmt: skip
            variants.insert(0, (f"before ({args.compare})", tree, argv))
        bare_argv = uvicorn_argv("bench.bare_api:create_app", "127.0.0.1", free_port(), "info")
        auth = {"Authorization": f"Bearer {token}"}
        runs: list[tuple[dict[str, Result], list[Result]]] = []
        kinds: list[str] = []  # the service's mixed workload by request kind, one table per run
        for run in range(args.runs):
            results: list[Result] = []
            references: dict[str, Result] = {}  # per server: the bare read measured just before it
            with (
                database_copy(url, f"r{run}_bare") as bare_copy,
                serve("bare", bare_argv, {"BENCH_DATABASE_URL": to_libpq_url(bare_copy)}, prefix="",
                      probe=probe_patient) as bare_server,
            ):  # fmt: skip
                run_wrk(bare_server, "bare_get_patient", data, duration=3, connections=args.connections,
                        threads=args.threads)  # fmt: skip
                for number, (name, cwd, argv) in enumerate(variants):
                    with (
                        database_copy(url, f"r{run}_v{number}") as copy,
                        serve(name, argv, api_env(copy, args.redis_url), prefix=API_PREFIX, probe="/health",
                              cwd=cwd) as api,
                    ):  # fmt: skip
                        httpx.get(
                            api.base + API_PREFIX + probe_patient, headers=auth, timeout=10
                        ).raise_for_status()
                        run_wrk(api, "get_patient", data, duration=3, connections=args.connections,
                                threads=args.threads)  # fmt: skip
                        # The reference right before this server's requests: this machine's speed moves
                        # by a third or more over minutes, so a reference measured once per run, minutes
                        # before a server, gave ratios that moved with the time between them.
                        bare = references[name] = run_wrk(
                            bare_server, "bare_get_patient", data, duration=args.duration,
                            connections=args.connections, threads=args.threads,
                        )  # fmt: skip
                        print(
                            f"run {run + 1}: bare, next to {name}: {bare.rps:.0f} req/s, p99 "
                            f"{bare.p99_ms:.1f} ms, CPU {bare.cpu_ms:.2f} ms/req",
                            flush=True,
                        )
                        for scenario in scenarios:
                            histograms = route_histograms(api) if scenario == "mixed" else {}
                            result = run_wrk(
                                api, scenario, data, duration=args.duration, connections=args.connections,
                                threads=args.threads, profile_dir=args.profile if run == 0 else None,
                            )  # fmt: skip
                            results.append(result)
                            if scenario == "mixed" and name == "service":
                                kinds.append(kinds_table(histograms, route_histograms(api)))
                            print(
                                f"run {run + 1}: {name} {scenario}: {result.rps:.0f} req/s, p50 "
                                f"{result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, errors "
                                f"{result.errors}, RSS {result.rss_mb:.0f} MB, "
                                f"CPU {result.cpu_ms:.2f} ms/req",
                                flush=True,
                            )
            runs.append((references, results))
        reference = pgbench(
            server, duration=args.duration, connections=args.connections, threads=args.threads
        )

    names = [name for name, _, _ in variants]
    body = [
        "## HTTP request path",
        "",
        f"`python -m bench.http_load --patients {args.patients} --duration {args.duration} --runs {args.runs}"
        + (f" --compare {args.compare}" if args.compare else "")
        + f"` on {platform.machine()}, CPython {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d}: wrk with {args.connections} connections ({args.threads} threads), "
        f"{args.duration} s per request kind, against one uvicorn process serving the API as `make run` does "
        "(auth, rate limits counted, audit trail on), and against the reference in the same run: a bare "
        "FastAPI app doing one psycopg point read of the same patient rows (same venv, same uvicorn flags), "
        "measured right before each server's request kinds, whose ratios are to that measurement. "
        f"Data: {seeded.counts['patients']:,} patients, {seeded.counts['appointments']:,} appointments, "
        f"{seeded.counts['messages']:,} messages in 3 tenants (80% in the one measured, "
        f"{len(seeded.practitioners) * len(TODAY_HOURS)} of its appointments on the run's local day at its "
        "locations), loaded with COPY in "
        f"{seeded.seconds:.0f} s. Errors count every answer outside 2xx. "
        "Goals (issue 25): GET /patients/{id} at >= 0.5x the bare read's req/s and p99 <= 1.5x the bare "
        "p99; the list and the name search >= 1.5x the before's req/s; writes' p99 halved; the mixed "
        "workload's p95 <= 3x its p50 with 0 errors; API RSS <= 200 MB.",
    ]
    if args.redis_url:
        body.append("\nRate-limit counters in Redis (`REDIS_URL`).")
    for number, (references, results) in enumerate(runs, 1):
        body += ["", f"Run {number}:", "", run_table(results, references, names)]
    for number, table in enumerate(kinds, 1):
        body += [
            "",
            f"The service's mixed workload by request kind, run {number} (the API's own request-duration "
            "histograms, `/metrics`, over the mixed run; quantiles interpolated within buckets of "
            "5, 10, 25, 50, 100, 250, 500 ms, ...), slowest p95 first:",
            "",
            table,
        ]
    if reference is None:
        body += [
            "",
            "`pgbench -S`: not measured (pgbench is not installed; Debian's postgresql-client has it).",
        ]
    else:
        body += [
            "",
            f"`pgbench -S -c {args.connections} -j {args.threads}` (scale 10) on the same PostgreSQL after "
            "the "
            f"runs: {reference.tps:,.0f} tps, average latency {reference.latency_ms:.2f} ms.",
        ]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        write_section("http", text)


if __name__ == "__main__":
    main()
