"""Smoke test of `make run`: the real stack (`prm run`) boots, serves, stops cleanly and keeps its data.

It runs with no DATABASE_URL and no TEMPORAL_ADDRESS, as on a fresh machine: an embedded PostgreSQL under a
temporary PRM_DATA_DIR, its own Temporal dev server, the worker and the API, all on free ports.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
BOOT_TIMEOUT_SECONDS = 120
STOP_TIMEOUT_SECONDS = 60
TOKEN_LINE = re.compile(r"export TOKEN=(\S+)")
TENANT_LINE = re.compile(r"Tenant\s+(.+) \(id ([0-9a-f-]{36})\), (seeded just now|kept from an earlier run)")


def prm_command() -> list[str]:
    """The installed `prm` script, or the module when the project is not installed."""
    script = Path(sys.executable).parent / "prm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_machine_env(data_dir: Path) -> dict[str, str]:
    """This process's environment minus every PRM setting, DATABASE_URL and TEMPORAL_ADDRESS."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PRM_") and k not in {"DATABASE_URL", "TEMPORAL_ADDRESS"}
    }
    env.update(
        PRM_DATA_DIR=str(data_dir),
        PRM_API_HOST="127.0.0.1",
        PRM_API_PORT=str(free_port()),
        PRM_TEMPORAL_PORT=str(free_port()),
        PRM_TEMPORAL_UI_PORT=str(free_port()),
    )
    return env


@dataclass
class StackRun:
    """One `prm run` in the background, with what it printed."""

    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[str]
    stdout_lines: list[str] = field(default_factory=list)
    started: list[psutil.Process] = field(default_factory=list)

    @property
    def api(self) -> str:
        """The API's base URL."""
        return f"http://127.0.0.1:{self.env['PRM_API_PORT']}"

    @property
    def banner(self) -> str:
        """Everything printed on stdout so far."""
        return "".join(self.stdout_lines)

    def stderr_tail(self) -> str:
        """The end of the stack's log, for failure messages."""
        log = self.data_dir.parent / f"{self.data_dir.name}-prm-run.log"
        return log.read_text(errors="replace")[-4000:] if log.exists() else ""

    def wait_for_banner(self) -> None:
        """Wait until the stack says it is running (bounded), failing with its log if it dies."""
        deadline = time.monotonic() + BOOT_TIMEOUT_SECONDS
        while "Press Ctrl-C" not in self.banner:
            if self.proc.poll() is not None:
                pytest.fail(f"prm run exited with {self.proc.returncode}:\n{self.stderr_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"prm run not ready after {BOOT_TIMEOUT_SECONDS} s:\n{self.stderr_tail()}")
            time.sleep(0.1)

    def record_processes(self) -> None:
        """Everything this run started: its children and the embedded postmaster (pg_ctl daemonises it)."""
        self.started = psutil.Process(self.proc.pid).children(recursive=True)
        pid_file = self.data_dir / "postgres" / "postmaster.pid"
        self.started.append(psutil.Process(int(pid_file.read_text().splitlines()[0])))

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to `prm run`, then its exit code."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=STOP_TIMEOUT_SECONDS)

    def survivors(self) -> list[str]:
        """Processes this run started, or that use its data directory, still alive after it exited."""
        _, alive = psutil.wait_procs(self.started, timeout=10)
        names = [" ".join(p.cmdline()) for p in alive if p.status() != psutil.STATUS_ZOMBIE]
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if str(self.data_dir) in cmdline and proc.pid != os.getpid():
                names.append(cmdline)
        return names

    def tenant(self) -> tuple[uuid.UUID, str]:
        """The tenant id the banner shows, and whether it was seeded now or kept."""
        match = TENANT_LINE.search(self.banner)
        assert match, self.banner
        return uuid.UUID(match.group(2)), match.group(3)

    def token(self) -> str:
        """The admin token the banner shows."""
        match = TOKEN_LINE.search(self.banner)
        assert match, self.banner
        return match.group(1)


def start_stack(data_dir: Path) -> StackRun:
    """Start `prm run` on free ports and collect its stdout in the background."""
    env = fresh_machine_env(data_dir)
    log = (data_dir.parent / f"{data_dir.name}-prm-run.log").open("a")
    proc = subprocess.Popen(  # noqa: S603 - our own command line
        [*prm_command(), "run"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    log.close()
    run = StackRun(data_dir=data_dir, env=env, proc=proc)

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            run.stdout_lines.append(line)
        proc.stdout.close()

    threading.Thread(target=read_stdout, daemon=True).start()
    return run


@contextmanager
def running_stack(data_dir: Path) -> Iterator[StackRun]:
    """A booted stack; stopped (and if need be killed) however the block ends."""
    run = start_stack(data_dir)
    try:
        run.wait_for_banner()
        run.record_processes()
        yield run
    finally:
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGINT)
            try:
                run.proc.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                run.proc.kill()
                run.proc.wait()


def list_practitioners(run: StackRun, token: str) -> httpx.Response:
    """GET /practitioners as the bearer of `token`."""
    return httpx.get(
        f"{run.api}/api/v1/prm/practitioners", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


@dataclass
class FirstRun:
    """What the first `prm run` on a fresh data directory showed and did."""

    data_dir: Path
    tenant_id: uuid.UUID
    seeded: str
    ready_status: int
    docs_status: int
    practitioners: list[dict[str, object]]
    viewer_status: int
    started: list[str]
    exit_code: int
    survivors: list[str]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    """Boot on a fresh data directory, use it as a user would, then press Ctrl-C."""
    data_dir = tmp_path_factory.mktemp("stack") / "data"
    with running_stack(data_dir) as run:
        tenant_id, seeded = run.tenant()
        ready = httpx.get(f"{run.api}/ready", timeout=10)
        docs = httpx.get(f"{run.api}/docs", timeout=10)
        listed = list_practitioners(run, run.token())
        assert listed.status_code == 200, listed.text
        # A `prm` verb beside the running stack shares its embedded database (and must not stop it).
        minted = subprocess.run(  # noqa: S603 - our own command line
            [*prm_command(), "token", "--tenant-id", str(tenant_id), "--role", "viewer"],
            env=run.env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert minted.returncode == 0, minted.stderr
        viewer = list_practitioners(run, minted.stdout.strip())
        started = [" ".join(p.cmdline()) for p in run.started]
        exit_code = run.interrupt()
        survivors = run.survivors()
    return FirstRun(
        data_dir=data_dir,
        tenant_id=tenant_id,
        seeded=seeded,
        ready_status=ready.status_code,
        docs_status=docs.status_code,
        practitioners=listed.json()["items"],
        viewer_status=viewer.status_code,
        started=started,
        exit_code=exit_code,
        survivors=survivors,
    )


def test_first_run_seeds_the_demo_clinic_and_prints_a_working_admin_token(first_run: FirstRun) -> None:
    assert first_run.seeded == "seeded just now"
    assert first_run.ready_status == 200
    assert first_run.docs_status == 200
    assert len(first_run.practitioners) == 3
    assert {p["tenant_id"] for p in first_run.practitioners} == {str(first_run.tenant_id)}
    assert len({p["speciality"] for p in first_run.practitioners}) == 3


def test_prm_token_mints_a_working_token_beside_the_running_stack(first_run: FirstRun) -> None:
    assert first_run.viewer_status == 200


def test_ctrl_c_stops_every_process_the_stack_started(first_run: FirstRun) -> None:
    started = "\n".join(first_run.started)
    for component in ("postgres -D", "temporal server start-dev", "-m worker", "-m uvicorn"):
        assert component in started
    assert first_run.exit_code == 0
    assert first_run.survivors == []


def test_second_run_keeps_the_data_and_does_not_seed_again(first_run: FirstRun) -> None:
    with running_stack(first_run.data_dir) as run:
        tenant_id, seeded = run.tenant()
        listed = list_practitioners(run, run.token())
        exit_code = run.interrupt()
        survivors = run.survivors()

    assert (tenant_id, seeded) == (first_run.tenant_id, "kept from an earlier run")
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == 3
    assert exit_code == 0
    assert survivors == []
