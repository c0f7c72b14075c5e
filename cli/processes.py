"""Child processes for `prm run`: started in their own session, stopped gently, killed only if they must be.

Every child leads its own process group, so a Ctrl-C in the terminal reaches `prm run` alone and the stack
stops in order. The children are recorded under the data directory; a later `prm run` ends any that a
killed predecessor (SIGKILL, power loss) left behind, after checking each is still the same process.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

log = logging.getLogger("prm.run")

RECORD_FILE = "children.json"
LOCK_FILE = "run.lock"
STOP_TIMEOUT_SECONDS = 15.0  # longer than the worker's graceful shutdown and uvicorn's


class StackError(RuntimeError):
    """A start-up failure the user can act on (port taken, a component that would not start)."""


@dataclass
class Child:
    """A process `prm run` started and must stop."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        """The child's pid, which is also its process group id."""
        return self.proc.pid

    def exited(self) -> int | None:
        """The exit code if the process has ended, else None."""
        return self.proc.poll()

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the child's log file, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])


class ChildRegistry:
    """The children of this run, mirrored to a file so an orphaned run can be cleaned up later."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / RECORD_FILE
        self.children: list[Child] = []
        self.hurry = False  # set by a second Ctrl-C: stop waiting for graceful exits

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        output: IO[Any] | int | None,
        log_path: Path | None = None,
    ) -> Child:
        """Start `argv` as the leader of a new session and record it."""
        log.info("starting %s", name)
        proc = subprocess.Popen(  # noqa: S603 - argv is built by prm run, never from user text
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
        child = Child(name=name, proc=proc, log_path=log_path)
        self.children.append(child)
        self._save()
        return child

    def _save(self) -> None:
        records = []
        for child in self.children:
            if child.exited() is not None:
                continue
            with contextlib.suppress(psutil.Error):
                created = psutil.Process(child.pid).create_time()
                records.append({"name": child.name, "pid": child.pid, "created": created})
        self.path.write_text(json.dumps(records))

    async def stop(self, child: Child, *, grace_seconds: float) -> None:
        """SIGTERM the child's process group, wait up to `grace_seconds`, then SIGKILL it."""
        if child.exited() is None:
            _signal_group(child.pid, signal.SIGTERM)
            if not await self._wait_exit(child.proc, grace_seconds):
                log.warning("%s did not stop gracefully: killing it", child.name)
                _signal_group(child.pid, signal.SIGKILL)
                await self._wait_exit(child.proc, 5.0, hurried=False)
        # A grandchild that outlived its leader (none expected) goes with the group.
        if _group_alive(child.pid):
            _signal_group(child.pid, signal.SIGKILL)
        code = child.exited()
        if code in (0, -signal.SIGTERM, -signal.SIGKILL):  # uvicorn re-raises the SIGTERM it handled
            log.info("stopped %s", child.name)
        else:
            log.warning("stopped %s (exit code %s)", child.name, code)
        self._save()

    async def _wait_exit(
        self, proc: subprocess.Popen[bytes], within_seconds: float, *, hurried: bool = True
    ) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_seconds
        while proc.poll() is None:
            if loop.time() >= deadline or (hurried and self.hurry):
                return proc.poll() is not None
            await asyncio.sleep(0.05)
        return True

    def forget(self, child: Child) -> None:
        """Drop a child that has exited (ending anything left in its process group) before it is replaced."""
        if _group_alive(child.pid):
            _signal_group(child.pid, signal.SIGKILL)
        with contextlib.suppress(ValueError):
            self.children.remove(child)
        self._save()

    def forget_all(self) -> None:
        """Every child has been stopped: nothing is left to clean up."""
        self.children.clear()
        self.path.unlink(missing_ok=True)

    def reap_orphans(self) -> None:
        """End the children a killed earlier run left behind (only if each is still that very process)."""
        if not self.path.exists():
            return
        try:
            records = json.loads(self.path.read_text())
        except (OSError, ValueError):
            records = []
        leftovers: list[psutil.Process] = []
        for record in records:
            try:
                proc = psutil.Process(int(record["pid"]))
                if abs(proc.create_time() - float(record["created"])) > 0.01:
                    continue  # the pid now belongs to someone else
            except (psutil.Error, KeyError, TypeError, ValueError):
                continue
            log.warning("ending %s (pid %s) left running by an earlier prm run", record.get("name"), proc.pid)
            _signal_group(proc.pid, signal.SIGTERM)
            leftovers.append(proc)
        _, still_alive = psutil.wait_procs(leftovers, timeout=10)
        for proc in still_alive:
            _signal_group(proc.pid, signal.SIGKILL)
        self.path.unlink(missing_ok=True)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def process_alive(process: psutil.Process) -> bool:
    """Whether `process` still runs (a zombie nobody has reaped yet does not)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def ensure_port_free(host: str, port: int, what: str) -> None:
    """Refuse to start when something already listens on `host:port`, naming the setting that moves it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # The servers we start set SO_REUSEADDR too, so a socket in TIME_WAIT is no conflict.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StackError(f"port {port} on {host} is already in use: it is needed for {what}") from exc
            raise StackError(f"cannot bind {host}:{port} for {what}: {exc.strerror}") from exc


class DataDirLock:
    """One `prm run` per data directory: a second one would fight the first over its database files."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise StackError naming the run that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StackError(
                f"another `prm run` (pid {holder}) is already using the data directory {self.path.parent}"
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        """Release the lock (the file stays; it is only ever locked, never trusted for its content)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
