"""Real worker processes for crash tests: `python worker.py` (the real entry point), killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from core.database import mark_system
from tests.stack.cli_support import AUDIT_ANCHOR_FILE, AUDIT_HMAC_KEY

ROOT = Path(__file__).resolve().parent.parent


async def start_worker(env: WorkflowEnvironment, database_url: str, task_queue: str, **environ: str) -> Any:
    """Start `python worker.py` against the dev server and the test database (with `environ` on top)."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "worker.py"),
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "PRM_TEMPORAL_NAMESPACE": env.client.namespace,
            "PRM_TEMPORAL_TASK_QUEUE": task_queue,
            "PRM_LOG_LEVEL": "WARNING",
            "PRM_AUDIT_HMAC_KEY": AUDIT_HMAC_KEY,
            "PRM_AUDIT_ANCHOR_FILE": str(AUDIT_ANCHOR_FILE),
            **environ,
        },
        stdout=asyncio.subprocess.DEVNULL,
    )


@asynccontextmanager
async def worker_process(
    env: WorkflowEnvironment, database_url: str, task_queue: str, **environ: str
) -> AsyncIterator[Any]:
    """A worker (`start_worker`) for the block, killed on exit if it is still running."""
    process = await start_worker(env, database_url, task_queue, **environ)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def kill(process: Any) -> None:
    """SIGKILL: no graceful shutdown, as if the machine died."""
    process.kill()
    await process.wait()


async def waits_on_a_lock(sessionmaker: Any, pattern: str) -> bool:
    """Whether a backend of this database waits on a lock, running a statement like `pattern` (ILIKE): a
    worker's activity stopped by a lock the test holds."""
    from sqlalchemy import text

    async with sessionmaker() as session:
        mark_system(session)
        waiting = await session.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query ILIKE :statement"
            ),
            {"statement": pattern},
        )
    return bool(waiting)
