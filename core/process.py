"""Process-wide settings of a long-running server process (the API's uvicorn process, the worker)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

try:  # part of uvicorn[standard] where it builds (not on Windows)
    import uvloop
except ImportError:  # pragma: no cover - the machines we serve from have it
    uvloop = None  # type: ignore[assignment]

T = TypeVar("T")


def freeze_startup_objects() -> None:
    """Move every object alive after start-up (modules, classes, compiled statements, pools) out of the
    cyclic garbage collector's reach (`gc.freeze`), after one last collection.

    A full collection walks every tracked object: in the API under load that was 95-110 ms each, a few
    times a minute, and every request in flight waited (p99 about 170 ms against a p50 of 58 ms;
    bench/request_ladder.py). Objects that live for the whole process never become garbage, so the
    collector gains nothing from walking them; afterwards a full collection walks only what requests
    created. Call it once, in the serving process only, when start-up is done: frozen objects that do
    become cyclic garbage are never collected (test suites, which build many apps, must not call it)."""
    gc.collect()
    gc.freeze()


# The API's collector thresholds (CPython's defaults: 700, 10, 10).
API_COLLECTOR_THRESHOLDS = (20_000, 20, 10)


def tune_collector() -> None:
    """Fit the cyclic garbage collector to the API's serving process: `freeze_startup_objects`, then a
    young collection every 20,000 allocations, not every 700 (`API_COLLECTOR_THRESHOLDS`). Same rule:
    once, in the serving process, when start-up is done.

    A young collection walks every object the requests in flight hold at that moment (32 requests' worth
    under load) and moves the survivors towards the old generation, whose growth triggers the next full
    collection. At CPython's default the API under load spent about 6 % of its CPU in the collector, and a
    full collection every 1-3 s took 20-50 ms. A request leaves no cyclic garbage, answered or refused (the
    test suite checks both; `api.errors.release_answered_exceptions`), so collecting rarely costs the API
    little memory: a cycle holding a request's body would otherwise wait for up to 20,000 allocations.

    Not for the worker: an evicted workflow run is a cycle that waits for a full collection. When each run
    imported its workflow's module afresh (in the sandbox, before `worker.WORKFLOW_RUNNER` left it),
    the worker with these thresholds peaked at 441 MB while 2,000 journeys settled on their timers and 539
    MB while they were queried, against 235 and 238 MB at CPython's defaults (bench/worker_memory.py); with
    the module no longer part of each run's cycle, that was not measured again."""
    freeze_startup_objects()
    gc.set_threshold(*API_COLLECTOR_THRESHOLDS)


def run_main(main: Coroutine[Any, Any, T]) -> T:
    """Run a server process's main coroutine (the worker's) on uvloop, the event loop the API is served on,
    else on asyncio's own. Every database statement waits for its answer on the loop (psycopg registers
    and unregisters the socket each time), and uvloop does that, and the rest of a loop turn, for less."""
    if uvloop is None:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
