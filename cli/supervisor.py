"""How `prm run` keeps the worker and the API up: a crashed one is started again after a backoff, out loud.

The worker and the API hold no state of their own (Temporal and PostgreSQL do), so starting a fresh one is
always safe. Each gets a `Keeper`: when its process exits, it says which and how, waits 1 s, 2 s, 4 s ...
(at most 30 s; back to 1 s once the child has run healthy for a minute), starts it again and waits until it
is ready exactly as at start-up. A child that crashes 5 times within 2 minutes is in a crash loop: that is
said plainly, and it is still restarted every 30 s, so a fix to the code (which a restart picks up) brings
it back without restarting the stack. Ctrl-C interrupts a backoff wait or a restart at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cli.processes import STOP_TIMEOUT_SECONDS, Child, ChildRegistry, StackError

log = logging.getLogger("prm.run")

BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0
HEALTHY_AFTER_SECONDS = 60.0  # a child that ran this long since it was ready starts a fresh backoff
CRASH_LOOP_CRASHES = 5
CRASH_LOOP_WINDOW_SECONDS = 120.0
EXIT_POLL_SECONDS = 0.5


def describe_exit(code: int) -> str:
    """`signal SIGKILL` for a child killed by a signal, `code 1` for one that exited."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


@dataclass(frozen=True)
class Restart:
    """What to do about one crash: wait `delay` seconds, then start restart number `number`."""

    delay: float
    number: int
    crash_loop_began: bool  # this crash made it `CRASH_LOOP_CRASHES` within the window


@dataclass
class RestartPolicy:
    """Exponential backoff between restarts, reset by a healthy run; notices a crash loop."""

    first: float = BACKOFF_FIRST_SECONDS
    cap: float = BACKOFF_CAP_SECONDS
    healthy_after: float = HEALTHY_AFTER_SECONDS
    loop_crashes: int = CRASH_LOOP_CRASHES
    loop_window: float = CRASH_LOOP_WINDOW_SECONDS
    restarts: int = 0  # in this run, for the messages
    streak: int = 0  # crashes since the child last ran healthy
    recent: deque[float] = field(default_factory=deque)  # times of the crashes within the window

    def crashed(self, *, at: float, ran_for: float | None) -> Restart:
        """Record a crash at monotonic time `at`, `ran_for` s after the child got ready (None: never)."""
        if ran_for is not None and ran_for >= self.healthy_after:
            self.streak = 0
        was_looping = len(self.recent) >= self.loop_crashes
        self.recent.append(at)
        while self.recent and self.recent[0] <= at - self.loop_window:
            self.recent.popleft()
        looping = len(self.recent) >= self.loop_crashes
        delay = self.cap if looping else min(self.cap, self.first * 2**self.streak)
        self.streak += 1
        self.restarts += 1
        return Restart(delay=delay, number=self.restarts, crash_loop_began=looping and not was_looping)


class Keeper:
    """Keeps one child (the worker or the API) running until `stop` is set or the task is cancelled."""

    def __init__(
        self,
        name: str,
        *,
        current: Callable[[], Child | None],
        start: Callable[[], Awaitable[None]],
        registry: ChildRegistry,
        stop: asyncio.Event,
        policy: RestartPolicy | None = None,
    ) -> None:
        self.name = name
        self.current = current  # the child running now (start() replaces it)
        self.start = start  # spawns the child and returns once it is ready; StackError if it is not
        self.registry = registry
        self.stop = stop
        self.policy = policy or RestartPolicy()

    async def run(self) -> None:
        """Wait for the child to exit, restart it after the backoff, and again, until a stop is requested."""
        loop = asyncio.get_running_loop()
        ready_at: float | None = loop.time()  # the first start already waited for it
        while not self.stop.is_set():
            child = self.current()
            if child is None:
                return
            code = await self._exit_of(child)
            if code is None:
                return  # stop requested
            now = loop.time()
            restart = self.policy.crashed(at=now, ran_for=None if ready_at is None else now - ready_at)
            self.registry.forget(child)
            log.warning(
                "%s exited (%s); restarting in %s (restart %d)",
                self.name, describe_exit(code), _seconds(restart.delay), restart.number,
            )  # fmt: skip
            if restart.crash_loop_began:
                log.error(
                    "%s has crashed %d times within %s: it is probably failing as it starts (its output is "
                    "above). prm run keeps restarting it every %s, so a fix is picked up on the next try; "
                    "press Ctrl-C to stop everything",
                    self.name, self.policy.loop_crashes, _seconds(self.policy.loop_window),
                    _seconds(self.policy.cap),
                )  # fmt: skip
            if await self._stopped_within(restart.delay):
                return
            ready_at = await self._start_again(restart.number)

    async def _exit_of(self, child: Child) -> int | None:
        """The child's exit code once it exits; None if a stop is requested first."""
        while (code := child.exited()) is None:
            if await self._stopped_within(EXIT_POLL_SECONDS):
                return None
        return code

    async def _stopped_within(self, seconds: float) -> bool:
        """Wait `seconds`, or less if a stop is requested; whether it was."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        return self.stop.is_set()

    async def _start_again(self, number: int) -> float | None:
        """Start the child and wait until it is ready; when it was ready (None if it did not get there)."""
        log.info("restarting %s (restart %d)", self.name, number)
        try:
            await self.start()
        except StackError as exc:
            child = self.current()
            if child is not None and child.exited() is None:  # alive but never ready: count it as a crash
                log.error("%s did not get ready (%s): stopping it", self.name, exc)
                await self.registry.stop(child, grace_seconds=STOP_TIMEOUT_SECONDS)
            return None  # an exit during start-up is reported by the loop like any other
        pid = child.pid if (child := self.current()) else "?"
        log.warning("%s is running again (pid %s, restart %d)", self.name, pid, number)
        return asyncio.get_running_loop().time()


async def supervise(
    keepers: list[Keeper], *, stop: asyncio.Event, infrastructure_down: Callable[[], str | None]
) -> int:
    """Run the keepers until `stop` is set (0) or `infrastructure_down` names something that died (1)."""
    tasks = [asyncio.create_task(k.run(), name=f"keep {k.name} up") for k in keepers]
    try:
        while not stop.is_set():
            if (down := infrastructure_down()) is not None:
                log.error("%s: stopping everything (the data is kept; run it again to restart)", down)
                return 1
            for task in tasks:
                if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
                    log.error("keeping the children up failed: stopping everything", exc_info=exc)
                    return 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), EXIT_POLL_SECONDS)
        return 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _seconds(value: float) -> str:
    return f"{value:g} s"
