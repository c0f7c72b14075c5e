"""What the cyclic garbage collector finds of the objects a block of a test left behind."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def left_for_the_collector() -> Iterator[list[object]]:
    """Collect, run the block, collect again keeping what is found (`gc.DEBUG_SAVEALL`): the list yielded
    holds, once the block is done, the objects that only the cyclic collector could free (reference cycles),
    not those reference counting freed. The collector is back to normal afterwards."""
    found: list[object] = []
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
