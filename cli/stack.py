"""`prm run`: the whole service on one machine, in the foreground, stopped cleanly by Ctrl-C.

Order of start (each waits for the previous to be ready): PostgreSQL (embedded unless DATABASE_URL is set),
migrations, the Temporal dev server with its UI (unless TEMPORAL_ADDRESS is set), the demo clinic's seed
(only into an empty database; Temporal comes first so the seed's workflow commands are delivered right after
its commit rather than by the worker's relay), the worker, the API. Stopping runs the other way
round. Children get the resolved DATABASE_URL and TEMPORAL_ADDRESS, so only this process holds the embedded
server open. Their DATABASE_URL names the app's role `prm_app` (migration 0024: it owns nothing and may only
read and append the audit trail), with PRM_APP_DB_PASSWORD when set; the migrations and the seed run here,
as the owner. They also get the audit chain's key (PRM_AUDIT_HMAC_KEY, or the data dir's generated one).

While it runs, a worker or API that dies is started again (`cli.supervisor`); the infrastructure they
depend on, the embedded PostgreSQL and the Temporal dev server, is not: if either dies, everything stops
with a message naming it (their state may be half-written, and `prm run` again restarts all of it).

What "ready" means for each component (the probes this module waits on) is in `cli.readiness`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from functools import partial
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy.engine import make_url

from cli import readiness
from cli.banner import Ready, api_base_url, render_banner
from cli.demo import demo_highlights
from cli.processes import (
    STOP_TIMEOUT_SECONDS,
    Child,
    ChildRegistry,
    DataDirLock,
    StackError,
    ensure_port_free,
    process_alive,
)
from cli.seed import DEMO_TENANT_NAME, default_tenant, seed_and_commit
from cli.supervisor import Keeper, describe_exit, supervise
from core.audit_key import audit_key
from core.auth import Role, issue_dev_token
from core.codec import key_file_setting
from core.database import make_engine, make_sessionmaker, mark_system
from core.embedded_db import (
    postmaster_process,
    start_embedded_postgres,
    stop_embedded_postgres,
    to_sqlalchemy_url,
)
from core.gateway import SEARCH_ATTRIBUTE_NAMES, WorkflowGateway
from core.migrate import APP_ROLE, enable_app_role, upgrade_to_head
from core.settings import Settings
from core.temporal import dev_server_binary, temporal_target

log = logging.getLogger("prm.run")

STARTUP_TIMEOUT_SECONDS = 90.0
POLL_SECONDS = 0.2


def uvicorn_argv(factory: str, host: str, port: int, log_level: str) -> list[str]:
    """How the API is served (`prm run`, and the HTTP benchmark with the same flags): one uvicorn process
    on the C parser (httptools) and loop (uvloop) of `uvicorn[standard]`; no uvicorn access log, since
    `api.observability` writes one structured line per request beside the request metrics; no `server`
    header."""
    return [
        sys.executable, "-m", "uvicorn", "--factory", factory, "--host", host, "--port", str(port),
        "--http", "httptools", "--loop", "uvloop", "--no-access-log", "--no-server-header",
        "--log-level", log_level.lower(), "--timeout-graceful-shutdown", "10",
    ]  # fmt: skip


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM) arrived while the stack was starting."""


def run_stack(settings: Settings) -> int:
    """Start everything, print the URLs and a token, wait for Ctrl-C, stop everything; the exit code."""
    data_dir = settings.data_dir.expanduser().resolve()
    settings = settings.model_copy(update={"data_dir": data_dir})
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    if not settings.payload_encryption_keys:  # Temporal stores ciphertext here too: a key of the data dir's
        keys = key_file_setting(data_dir / "payload-keys")
        settings = settings.model_copy(update={"payload_encryption_keys": keys})
    if not settings.audit_hmac_key:  # the audit chain's key: the data dir's, handed to the children
        settings = settings.model_copy(update={"audit_hmac_key": audit_key(settings).secret.decode()})
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except StackError as exc:
        log.error("%s", exc)
        return 1
    try:
        return asyncio.run(Stack(settings).run())
    finally:
        lock.release()


class Stack:
    """The processes of one `prm run` and the order they start and stop in."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir
        self.registry = ChildRegistry(self.data_dir)
        self.stop_requested = asyncio.Event()
        self.embedded_pgdata: Path | None = None
        self.postmaster: psutil.Process | None = None  # the embedded server's, watched while running
        self.database_url = ""  # the owner's: migrations and the seed
        self.app_database_url = ""  # prm_app's: the worker and the API, which own nothing
        self.temporal_address = temporal_target(settings)
        self.api: Child | None = None
        self.worker: Child | None = None
        self.temporal: Child | None = None
        self.temporal_gateway: WorkflowGateway | None = None

    async def run(self) -> int:
        """The whole life of the stack."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            try:
                ready = await self.start()
            except Interrupted:
                log.info("interrupted during start-up")
                return 0
            except StackError as exc:
                log.error("%s", exc)
                return 1
            temporal_log = self.temporal.log_path if self.temporal else None
            print(render_banner(ready, self.settings, temporal_log), flush=True)  # the one thing on stdout
            return await self.supervise()
        finally:
            await self.shutdown()

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stop_requested.is_set():
            log.warning("second %s: not waiting for a graceful stop any more", sig.name)
            self.registry.hurry = True
            return
        log.info("%s received: stopping everything (press Ctrl-C again to hurry)", sig.name)
        self.stop_requested.set()

    # ---------------------------------------------------------------- start

    async def start(self) -> Ready:
        """Start every component in order, each once the previous answers."""
        self.registry.reap_orphans()
        self._check_ports()
        database = await self._start_database()
        self._check_interrupt()
        log.info("applying migrations")
        try:
            await asyncio.to_thread(upgrade_to_head, self.database_url)
        except Exception as exc:
            raise StackError(f"applying the migrations failed: {exc}") from exc
        try:
            self.app_database_url = await asyncio.to_thread(
                enable_app_role, self.database_url, self.settings.app_db_password
            )
        except Exception as exc:
            raise StackError(f"letting the app's role {APP_ROLE} log in failed: {exc}") from exc
        self._check_interrupt()
        self.temporal_gateway = await self._start_temporal()
        ready = await self._seed(database, self.temporal_gateway)
        self._check_interrupt()
        await self._start_worker()
        await self._start_api()
        return ready

    def _check_interrupt(self) -> None:
        if self.stop_requested.is_set():
            raise Interrupted

    async def _sleep(self) -> None:
        """Wait one poll interval, or raise Interrupted as soon as a stop is requested."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_requested.wait(), POLL_SECONDS)
        self._check_interrupt()

    def _check_ports(self) -> None:
        s = self.settings
        if not s.temporal_address:
            ports = {"PRM_API_PORT": s.api_port, "PRM_TEMPORAL_PORT": s.temporal_port}
            ports["PRM_TEMPORAL_UI_PORT"] = s.temporal_ui_port
            if len(set(ports.values())) < len(ports):
                given = ", ".join(f"{name}={port}" for name, port in ports.items())
                raise StackError(
                    f"the API, Temporal and the Temporal UI need three different ports ({given})"
                )
        ensure_port_free(s.api_host, s.api_port, "the API (set PRM_API_PORT or --api-port)")
        if not s.temporal_address:
            ensure_port_free(
                "127.0.0.1", s.temporal_port, "Temporal (set PRM_TEMPORAL_PORT or --temporal-port)"
            )
            ensure_port_free(
                "127.0.0.1",
                s.temporal_ui_port,
                "the Temporal UI (set PRM_TEMPORAL_UI_PORT or --temporal-ui-port)",
            )

    async def _start_database(self) -> str:
        if self.settings.database_url:
            self.database_url = to_sqlalchemy_url(self.settings.database_url)
            where = make_url(self.database_url)
            description = f"database {where.database!r} on {where.host or 'a local socket'} (DATABASE_URL)"
        else:
            pgdata = self.settings.embedded_pgdata
            log.info("starting the embedded PostgreSQL (data in %s)", pgdata)
            try:
                self.database_url = await asyncio.to_thread(start_embedded_postgres, pgdata)
            except Exception as exc:
                raise StackError(
                    f"the embedded PostgreSQL did not start ({exc}); see {pgdata / 'log'}"
                ) from exc
            self.embedded_pgdata = pgdata  # from here on, shutdown stops it
            self.postmaster = postmaster_process(pgdata)
            description = f"embedded PostgreSQL, data in {pgdata}"
        await readiness.wait_for_database(self.database_url, self.settings, pause=self._sleep)
        log.info("PostgreSQL is ready: %s", description)
        return description

    async def _seed(self, database: str, gateway: WorkflowGateway) -> Ready:
        engine = make_engine(self.database_url, self.settings)
        try:
            async with make_sessionmaker(engine)() as session:
                mark_system(session)
                outcome = await seed_and_commit(session, demo=True, gateway=gateway)
                tenant = await default_tenant(session)
                highlights = await demo_highlights(session, tenant.id) if tenant is not None else None
        finally:
            await engine.dispose()
        if outcome.created:
            log.info("seeded the demo tenant %r (%s)", DEMO_TENANT_NAME, outcome.tenant_id)
        else:
            log.info("the database already has tenants: not seeding")
        token = None
        if tenant is not None and self.settings.jwt_algorithm.startswith("HS"):
            token = issue_dev_token(
                self.settings, tenant_id=tenant.id, roles=[Role.ADMIN], sub="prm-run-admin"
            )
        return Ready(
            database=database,
            tenant_id=tenant.id if tenant else None,
            tenant_name=tenant.name if tenant else None,
            seeded_now=outcome.created,
            token=token,
            highlights=highlights,
        )

    async def _start_temporal(self) -> WorkflowGateway:
        s = self.settings
        if s.temporal_address:
            log.info("using the Temporal service at %s (TEMPORAL_ADDRESS)", s.temporal_address)
        else:
            log_path = self.data_dir / "logs" / "temporal.log"
            argv = [
                str(dev_server_binary()),
                "server",
                "start-dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(s.temporal_port),
                "--ui-port",
                str(s.temporal_ui_port),
                "--db-filename",
                str(self.data_dir / "temporal.db"),
                "--log-level",
                "warn",
                "--ui-disable-news-fetch",  # nothing here reaches the internet
                # The UI asks the API to decrypt the payloads it shows (the codec server).
                "--ui-codec-endpoint",
                f"http://{s.api_host}:{s.api_port}/codec",
            ]
            if s.temporal_namespace != "default":
                argv += ["--namespace", s.temporal_namespace]
            for name in SEARCH_ATTRIBUTE_NAMES:
                argv += ["--search-attribute", f"{name}=Keyword"]
            with log_path.open("ab") as out:
                self.temporal = self.registry.spawn(
                    "temporal", argv, env=self._child_env(), output=out, log_path=log_path
                )
        healthy = partial(readiness.temporal_gateway, s)
        gateway = await self._wait_until("Temporal", self.temporal, healthy, limit=STARTUP_TIMEOUT_SECONDS)
        await readiness.warn_missing_search_attributes(gateway, s)
        if not s.temporal_address:
            ui = partial(readiness.temporal_ui_answers, s)
            await self._wait_until("the Temporal UI", self.temporal, ui, limit=30.0)
        log.info("Temporal is ready at %s", self.temporal_address)
        return gateway

    async def _start_worker(self) -> None:
        gateway = self.temporal_gateway
        assert gateway is not None, "Temporal is started first"
        self.worker = self.registry.spawn(
            "worker", [sys.executable, "-m", "worker"], env=self._child_env(), output=sys.stderr
        )
        identity = f"{self.worker.pid}@{socket.gethostname()}"

        polling = partial(readiness.worker_polls, gateway, self.settings, identity)
        await self._wait_until("the worker", self.worker, polling, limit=STARTUP_TIMEOUT_SECONDS)
        log.info("the worker is polling the task queue %r", self.settings.temporal_task_queue)

    async def _start_api(self) -> None:
        s = self.settings
        argv = uvicorn_argv("api.app:create_app_from_env", s.api_host, s.api_port, s.log_level)
        self.api = self.registry.spawn("api", argv, env=self._child_env(), output=sys.stderr)
        base = api_base_url(self.settings, for_connecting=True)

        health = partial(readiness.api_answers, base + "/health", "status")
        ready = partial(readiness.api_answers, base + "/ready", "checks")
        await self._wait_until("the API", self.api, health, limit=STARTUP_TIMEOUT_SECONDS)
        await self._wait_until("the API's /ready", self.api, ready, limit=30.0)
        log.info("the API is ready at %s", base)

    async def _wait_until(self, what: str, child: Child | None, probe: Any, *, limit: float) -> Any:
        """`readiness.wait_until`, abandoned as soon as a stop is requested."""
        return await readiness.wait_until(what, child, probe, limit=limit, pause=self._sleep)

    def _child_env(self) -> dict[str, str]:
        s = self.settings
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.app_database_url,
            TEMPORAL_ADDRESS=self.temporal_address,
            PRM_DATA_DIR=str(self.data_dir),
            PRM_API_HOST=s.api_host,
            PRM_API_PORT=str(s.api_port),
            PRM_TEMPORAL_PORT=str(s.temporal_port),
            PRM_TEMPORAL_UI_PORT=str(s.temporal_ui_port),
            PRM_PAYLOAD_ENCRYPTION_KEYS=s.payload_encryption_keys or "",
            PRM_AUDIT_HMAC_KEY=s.audit_hmac_key or "",
            PYTHONUNBUFFERED="1",
        )
        if "PRM_CORS_ORIGINS" not in os.environ:  # the UI this stack starts, on its port
            env["PRM_CORS_ORIGINS"] = (
                f"http://127.0.0.1:{s.temporal_ui_port},http://localhost:{s.temporal_ui_port}"
            )
        return env

    # ---------------------------------------------------------------- run and stop

    async def supervise(self) -> int:
        """Wait for Ctrl-C, restarting a worker or API that dies; stop all if Temporal or PostgreSQL dies."""
        keepers = [
            Keeper(name, current=current, start=start, registry=self.registry, stop=self.stop_requested)
            for name, current, start in (
                ("worker", lambda: self.worker, self._start_worker),
                ("api", lambda: self.api, self._start_api),
            )
        ]
        down = self._infrastructure_down
        return await supervise(keepers, stop=self.stop_requested, infrastructure_down=down)

    def _infrastructure_down(self) -> str | None:
        """What died of what the worker and the API depend on (Temporal, the embedded PostgreSQL), if any."""
        if self.temporal is not None and (code := self.temporal.exited()) is not None:
            where = self.temporal.log_path
            return f"the Temporal dev server exited ({describe_exit(code)}; its log: {where})"
        if self.postmaster is not None and not process_alive(self.postmaster):
            pgdata = self.settings.embedded_pgdata
            return f"the embedded PostgreSQL (pid {self.postmaster.pid}) is gone (its log: {pgdata / 'log'})"
        return None

    async def shutdown(self) -> None:
        """Stop in reverse order: API and worker together, then Temporal, then the embedded PostgreSQL."""
        # A child that crashed and awaits its restart has been forgotten: nothing of it is left to stop.
        first = [c for c in (self.api, self.worker) if c is not None and c in self.registry.children]
        await asyncio.gather(*(self.registry.stop(c, grace_seconds=STOP_TIMEOUT_SECONDS) for c in first))
        if self.temporal is not None:
            await self.registry.stop(self.temporal, grace_seconds=STOP_TIMEOUT_SECONDS)
        started_any = bool(self.registry.children) or self.embedded_pgdata is not None
        self.registry.forget_all()
        if self.embedded_pgdata is not None:
            stopped = await asyncio.to_thread(stop_embedded_postgres, self.embedded_pgdata)
            log.info(
                "stopped PostgreSQL" if stopped else "PostgreSQL keeps running for other `prm` processes"
            )
            self.embedded_pgdata = None
        if started_any:
            kept = f"; the data stays in {self.data_dir}" if not self.settings.database_url else ""
            log.info("everything is stopped%s", kept)
