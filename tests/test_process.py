"""The serving processes: start-up objects out of the garbage collector's full collections, its thresholds,
and the loop."""

from __future__ import annotations

import asyncio
import gc
from concurrent.futures import ThreadPoolExecutor

from api.app import create_app
from core.process import API_COLLECTOR_THRESHOLDS, run_main
from core.settings import Settings


async def test_the_serving_app_freezes_what_start_up_made_and_collects_young_objects_rarely(
    settings: Settings, database_url: str
) -> None:
    gc.unfreeze()  # whatever an earlier test froze
    thresholds = gc.get_threshold()
    app = create_app(settings, database_url=database_url, tune_collector_after_startup=True)
    try:
        async with app.router.lifespan_context(app):
            # The app's own start-up objects (its engine, its pools) are among the frozen ones.
            assert gc.get_freeze_count() > 0
            engine = app.state.engine
            assert gc.is_tracked(engine) and all(o is not engine for o in gc.get_objects())
            assert gc.get_threshold() == API_COLLECTOR_THRESHOLDS != (700, 10, 10)
    finally:
        gc.unfreeze()  # back in the collector's care: this process goes on building apps
        gc.set_threshold(*thresholds)


async def test_an_app_built_for_tests_freezes_nothing(settings: Settings, database_url: str) -> None:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    app = create_app(settings, database_url=database_url)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == thresholds


def test_the_worker_process_runs_on_uvloop_like_the_api() -> None:
    """`worker.py` runs its main coroutine through `run_main`: on uvloop, the loop uvicorn serves the API
    on (run here in a thread, since the test's own loop is already running in this one)."""

    async def loop_kind() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(run_main, loop_kind()).result(timeout=10).startswith("uvloop")
