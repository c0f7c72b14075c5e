"""The suite's one bounded poll: wait for something a worker does in the background."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    check: Callable[[], Awaitable[Any]],
    what: str = "the condition",
    *,
    within: float = 15.0,
    interval: float = 0.05,
) -> Any:
    """Poll `check` until it returns something truthy (returned); AssertionError after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: Any = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {within} s waiting for {what} (last value: {last!r})")
