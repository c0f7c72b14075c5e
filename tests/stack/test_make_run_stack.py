"""Smoke test of `make run`: the real stack (`prm run`) boots, serves, survives a killed worker, stops
cleanly and keeps its data.

It runs with no DATABASE_URL and no TEMPORAL_ADDRESS, as on a fresh machine: an embedded PostgreSQL under a
temporary PRM_DATA_DIR, its own Temporal dev server, the worker and the API, all on free ports. Each boot is
used for several checks (boots are the slow part).
"""

from __future__ import annotations

import asyncio
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
from sqlalchemy.engine import make_url
from temporalio.client import Client

from tests.polling import eventually

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
    commands: list[str] = field(default_factory=list)  # their command lines, kept after they exit

    @property
    def api(self) -> str:
        """The API's base URL."""
        return f"http://127.0.0.1:{self.env['PRM_API_PORT']}"

    @property
    def banner(self) -> str:
        """Everything printed on stdout so far."""
        return "".join(self.stdout_lines)

    def log_text(self) -> str:
        """Everything the stack (and the worker and API beside it) wrote to stderr so far."""
        log = self.data_dir.parent / f"{self.data_dir.name}-prm-run.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def stderr_tail(self) -> str:
        """The end of the stack's log, for failure messages."""
        return self.log_text()[-4000:]

    def child_pid(self, marker: str) -> int | None:
        """The pid of the running child of `prm run` whose command line holds `marker` (e.g. `-m worker`)."""
        for proc in psutil.Process(self.proc.pid).children():
            with_marker = False
            try:
                with_marker = marker in " ".join(proc.cmdline()) and proc.status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                pass
            if with_marker:
                return proc.pid
        return None

    def wait_for_log(self, text: str, *, within: float = 30.0) -> None:
        """Wait (bounded) until the stack's log shows `text`."""

        async def logged() -> bool:
            return text in self.log_text()

        asyncio.run(eventually(logged, f"{text!r} in the log of prm run", within=within))

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
        """Everything this run started so far: its children and the embedded postmaster (pg_ctl daemonises
        it). Called again after a restart, it adds the new children."""
        now = psutil.Process(self.proc.pid).children(recursive=True)
        pid_file = self.data_dir / "postgres" / "postmaster.pid"
        now.append(psutil.Process(int(pid_file.read_text().splitlines()[0])))
        for proc in now:
            if proc not in self.started:
                self.started.append(proc)
                self.commands.append(" ".join(proc.cmdline()))

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT to `prm run`, then its exit code."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=STOP_TIMEOUT_SECONDS)

    def survivors(self) -> list[str]:
        """Processes this run started, or that use its data directory (on their command line or in their
        environment, as the worker and the API do), still alive after it exited."""
        _, alive = psutil.wait_procs(self.started, timeout=10)
        names = [" ".join(p.cmdline()) for p in alive if p.status() != psutil.STATUS_ZOMBIE]
        for proc in psutil.process_iter(["cmdline"]):
            if proc.pid == os.getpid() or proc in alive:
                continue
            cmdline = " ".join(proc.info["cmdline"] or [])
            try:
                ours = proc.environ().get("PRM_DATA_DIR") == str(self.data_dir)
                ours = ours and proc.status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                ours = False
            if str(self.data_dir) in cmdline or ours:
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


def _environ(proc: psutil.Process) -> dict[str, str]:
    """A process's environment (empty when it is gone or not ours to read)."""
    try:
        return proc.environ()
    except psutil.Error:
        return {}


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


ONE_MESSAGE_NOW = {
    "name": "Welcome after a restart",
    "stages": [
        {
            "name": "Welcome",
            "order_index": 1,
            "trigger_event": "immediate",
            "actions": [{"type": "send_message", "channel": "sms", "template_id": "post_op_welcome"}],
        }
    ],
}
NEW_PATIENT = {"first_name": "Ada", "last_name": "Restart", "phone_primary": "+1 (415) 555-2671"}


@dataclass
class WorkerCrash:
    """A worker killed with SIGKILL under `prm run`, and a journey started once it was back."""

    old_pid: int
    new_pid: int
    log: str
    api_answers: list[int]  # GET /practitioners status codes, while the worker was down and restarting
    instance: dict[str, object]
    messages: list[dict[str, object]]


async def kill_the_worker_then_run_a_journey(run: StackRun, token: str) -> WorkerCrash:
    """SIGKILL the worker; once `prm run` has restarted it, place a new patient on a one-message journey."""
    old_pid = run.child_pid("-m worker")
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=run.api + "/api/v1/prm", headers=headers, timeout=10) as api:
        answers: list[int] = []

        async def worker_back() -> int | None:
            answers.append((await api.get("/practitioners")).status_code)
            if "worker is running again" not in run.log_text():
                return None
            return run.child_pid("-m worker")

        new_pid = await eventually(worker_back, "the worker's restart", within=60, interval=0.2)
        patient = await api.post("/patients", json=NEW_PATIENT)
        assert patient.status_code == 201, patient.text
        journey = await api.post("/journeys", json=ONE_MESSAGE_NOW)
        assert journey.status_code == 201, journey.text
        body = {"journey_id": journey.json()["id"], "patient_id": patient.json()["id"]}
        placed = await api.post("/journeys/instances", json=body)
        assert placed.status_code == 201, placed.text

        async def completed() -> dict[str, object] | None:
            instance = (await api.get(f"/journeys/instances/{placed.json()['id']}")).json()
            return instance if instance["status"] == "completed" else None

        instance = await eventually(completed, "the journey instance to complete", within=60, interval=0.2)
        sent = await api.get("/communications", params={"patient_id": patient.json()["id"]})
    return WorkerCrash(
        old_pid=old_pid,
        new_pid=new_pid,
        log=run.log_text(),
        api_answers=answers,
        instance=instance,
        messages=sent.json()["items"],
    )


async def demo_workflow_types(run: StackRun, tenant_id: uuid.UUID) -> set[str]:
    """The types of the workflows Temporal lists for the tenant, once the seed's starts are visible."""
    client = await Client.connect(f"127.0.0.1:{run.env['PRM_TEMPORAL_PORT']}")

    async def listed() -> set[str] | None:
        types = {wf.workflow_type async for wf in client.list_workflows(f'PrmTenantId = "{tenant_id}"')}
        return types if len(types) >= 4 else None

    return await eventually(listed, "the demo's workflows in Temporal", within=30, interval=0.5)


@dataclass
class FirstRun:
    """What the first `prm run` on a fresh data directory showed and did."""

    data_dir: Path
    tenant_id: uuid.UUID
    seeded: str
    banner: str
    demo_workflow_types: set[str]
    ready_status: int
    docs_status: int
    practitioners: list[dict[str, object]]
    viewer_status: int
    worker_crash: WorkerCrash
    audit_verify: subprocess.CompletedProcess[str]
    database_users: set[str | None]  # the users the API's and the worker's DATABASE_URL name
    started: list[str]
    exit_code: int
    survivors: list[str]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    """Boot on a fresh data directory, use it as a user would, then press Ctrl-C."""
    data_dir = tmp_path_factory.mktemp("stack") / "data"
    with running_stack(data_dir) as run:
        tenant_id, seeded = run.tenant()
        workflow_types = asyncio.run(demo_workflow_types(run, tenant_id))
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
        verified = subprocess.run(  # noqa: S603 - our own command line
            [*prm_command(), "audit", "verify"],
            env=run.env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        database_users = {
            make_url(url).username for proc in run.started if (url := _environ(proc).get("DATABASE_URL"))
        }
        worker_crash = asyncio.run(kill_the_worker_then_run_a_journey(run, run.token()))
        run.record_processes()  # the new worker too: Ctrl-C must stop it
        started = run.commands
        exit_code = run.interrupt()
        survivors = run.survivors()
    return FirstRun(
        data_dir=data_dir,
        tenant_id=tenant_id,
        seeded=seeded,
        banner=run.banner,
        demo_workflow_types=workflow_types,
        ready_status=ready.status_code,
        docs_status=docs.status_code,
        practitioners=listed.json()["items"],
        viewer_status=viewer.status_code,
        worker_crash=worker_crash,
        audit_verify=verified,
        database_users=database_users,
        started=started,
        exit_code=exit_code,
        survivors=survivors,
    )


def test_the_api_and_the_worker_connect_as_the_app_role_that_owns_nothing(first_run: FirstRun) -> None:
    assert first_run.database_users == {"prm_app"}  # the API and the worker served the calls above as it
    assert first_run.practitioners and first_run.worker_crash.messages  # both worked, as that role


def test_prm_audit_verify_beside_the_stack_checks_the_keyed_trail(first_run: FirstRun) -> None:
    assert first_run.audit_verify.returncode == 0, first_run.audit_verify.stderr


def test_first_run_seeds_the_demo_clinic_and_prints_a_working_admin_token(first_run: FirstRun) -> None:
    assert first_run.seeded == "seeded just now"
    assert first_run.ready_status == 200
    assert first_run.docs_status == 200
    assert len(first_run.practitioners) == 4
    assert {p["tenant_id"] for p in first_run.practitioners} == {str(first_run.tenant_id)}
    assert len({p["speciality"] for p in first_run.practitioners}) == 4


def test_the_demo_clinics_workflows_are_in_temporal_from_the_start(first_run: FirstRun) -> None:
    expected = {
        "JourneyInstanceWorkflow",
        "AppointmentWorkflow",
        "TicketSlaWorkflow",
        "CommunicationDeliveryWorkflow",
    }
    assert expected <= first_run.demo_workflow_types, first_run.demo_workflow_types


def test_the_banner_says_what_to_try_first_with_real_ids(first_run: FirstRun) -> None:
    curls = [line.strip() for line in first_run.banner.splitlines() if line.strip().startswith("curl ")]
    assert len(curls) == 3, first_run.banner
    assert curls[0].endswith("/api/v1/prm/appointments/today")
    patient = re.search(r"/patients/([0-9a-f-]{36})/360", curls[1])
    assert patient, curls[1]
    assert "/advance" in first_run.banner
    assert f'PrmPatientId = "{patient.group(1)}"' in first_run.banner


def test_prm_token_mints_a_working_token_beside_the_running_stack(first_run: FirstRun) -> None:
    assert first_run.viewer_status == 200


def test_a_killed_worker_is_restarted_and_says_so(first_run: FirstRun) -> None:
    crash = first_run.worker_crash
    assert "worker exited (signal SIGKILL); restarting in 1 s (restart 1)" in crash.log
    assert f"worker is running again (pid {crash.new_pid}, restart 1)" in crash.log
    assert crash.new_pid != crash.old_pid


def test_the_api_keeps_answering_while_the_worker_restarts(first_run: FirstRun) -> None:
    assert first_run.worker_crash.api_answers
    assert set(first_run.worker_crash.api_answers) == {200}


def test_a_journey_started_after_the_restart_runs_on_the_new_worker(first_run: FirstRun) -> None:
    crash = first_run.worker_crash
    assert crash.instance["status"] == "completed"
    assert [m["template_name"] for m in crash.messages] == ["post_op_welcome"]


def test_ctrl_c_stops_every_process_the_stack_started(first_run: FirstRun) -> None:
    started = "\n".join(first_run.started)
    for component in ("postgres -D", "temporal server start-dev", "-m worker", "-m uvicorn"):
        assert component in started
    assert first_run.exit_code == 0
    assert first_run.survivors == []


@dataclass
class SecondRun:
    """What a second `prm run` on the same data directory showed, and how it stopped mid-restart."""

    tenant_id: uuid.UUID
    seeded: str
    listed: httpx.Response
    exit_code: int
    survivors: list[str]


@pytest.fixture(scope="module")
def second_run(first_run: FirstRun) -> SecondRun:
    """Boot again on the first run's data; kill the API and press Ctrl-C while it waits for its restart."""
    with running_stack(first_run.data_dir) as run:
        tenant_id, seeded = run.tenant()
        listed = list_practitioners(run, run.token())
        api_pid = run.child_pid("-m uvicorn")
        assert api_pid is not None
        os.kill(api_pid, signal.SIGKILL)
        # The first backoff is 1 s: Ctrl-C lands in it, or (on a slow machine) in the restart that follows.
        run.wait_for_log("api exited (signal SIGKILL); restarting in 1 s (restart 1)")
        exit_code = run.interrupt()
        survivors = run.survivors()
    return SecondRun(tenant_id, seeded, listed, exit_code, survivors)


def test_second_run_keeps_the_data_and_does_not_seed_again(
    first_run: FirstRun, second_run: SecondRun
) -> None:
    assert (second_run.tenant_id, second_run.seeded) == (first_run.tenant_id, "kept from an earlier run")
    assert second_run.listed.status_code == 200
    assert len(second_run.listed.json()["items"]) == 4


def test_ctrl_c_while_a_crashed_api_awaits_its_restart_stops_everything(second_run: SecondRun) -> None:
    assert second_run.exit_code == 0
    assert second_run.survivors == []
