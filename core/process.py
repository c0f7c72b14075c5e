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


def run_main(main: Coroutine[Any, Any, T]) -> T:
    """Run a server process's main coroutine (the worker's) on uvloop, the event loop the API is served on,
    else on asyncio's own. Every database statement waits for its answer on the loop (psycopg registers
    and unregisters the socket each time), and uvloop does that, and the rest of a loop turn, for less."""
    if uvloop is None:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
