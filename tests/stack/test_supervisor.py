"""`prm run`'s restart policy and keeper, on their own: backoff, crash loops, and Ctrl-C during a wait."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import pytest

from cli.processes import Child, ChildRegistry
from cli.supervisor import Keeper, RestartPolicy, describe_exit
from tests.polling import eventually


def delays(policy: RestartPolicy, crash_times: list[float], ran_for: float | None = 0.0) -> list[float]:
    return [policy.crashed(at=t, ran_for=ran_for).delay for t in crash_times]


def test_backoff_doubles_from_one_second_up_to_thirty() -> None:
    hours_apart = [i * 3600.0 for i in range(7)]  # never a crash loop
    assert delays(RestartPolicy(), hours_apart) == [1, 2, 4, 8, 16, 30, 30]


def test_backoff_starts_over_after_the_child_ran_healthy_for_a_minute() -> None:
    policy = RestartPolicy()
    delays(policy, [0.0, 600.0, 1200.0])
    assert policy.crashed(at=1800.0, ran_for=59.0).delay == 8
    assert policy.crashed(at=2400.0, ran_for=60.0).delay == 1
    assert policy.crashed(at=3000.0, ran_for=1.0).delay == 2


def test_restarts_are_numbered_through_the_run() -> None:
    policy = RestartPolicy()
    numbers = [policy.crashed(at=i * 3600.0, ran_for=3600.0).number for i in range(3)]
    assert numbers == [1, 2, 3]


def test_five_crashes_within_two_minutes_are_a_crash_loop_retried_at_the_cap() -> None:
    policy = RestartPolicy()
    restarts = [policy.crashed(at=t, ran_for=None) for t in (0.0, 2.0, 5.0, 10.0, 19.0, 50.0)]
    assert [r.delay for r in restarts] == [1, 2, 4, 8, 30, 30]
    assert [r.crash_loop_began for r in restarts] == [False, False, False, False, True, False]


def test_crashes_spread_over_more_than_two_minutes_are_no_crash_loop() -> None:
    policy = RestartPolicy()
    restarts = [policy.crashed(at=t * 31.0, ran_for=None) for t in range(8)]
    assert not any(r.crash_loop_began for r in restarts)


def test_an_exit_is_described_by_its_signal_or_its_code() -> None:
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"
    assert describe_exit(1) == "code 1"


class Sleeper:
    """A child started through the registry as `prm run` starts them: a sleeping Python (or `argv`)."""

    def __init__(self, registry: ChildRegistry, argv: list[str] | None = None) -> None:
        self.registry = registry
        self.argv = argv or [sys.executable, "-c", "import time; time.sleep(60)"]
        self.child: Child | None = None
        self.starts = 0

    async def start(self) -> None:
        """Spawn it, as the stack's start callables do (which then also wait for it to be ready)."""
        self.starts += 1
        self.child = self.registry.spawn("sleeper", self.argv, env=os.environ, output=None)


async def test_a_killed_child_is_reported_and_started_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry, stop = ChildRegistry(tmp_path), asyncio.Event()
    sleeper = Sleeper(registry)
    await sleeper.start()
    first = sleeper.child
    assert first is not None
    keeper = Keeper(
        "sleeper", current=lambda: sleeper.child, start=sleeper.start, registry=registry, stop=stop,
        policy=RestartPolicy(first=0.1),
    )  # fmt: skip
    task = asyncio.create_task(keeper.run())
    try:
        with caplog.at_level(logging.INFO, logger="prm.run"):
            first.proc.send_signal(signal.SIGKILL)

            async def restarted() -> bool:
                return sleeper.starts == 2 and "running again" in caplog.text

            await eventually(restarted, "the restart", within=10)
        assert "sleeper exited (signal SIGKILL); restarting in 0.1 s (restart 1)" in caplog.text
        assert sleeper.child is not first and sleeper.child.exited() is None
        assert registry.children == [sleeper.child]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        for child in list(registry.children):
            await registry.stop(child, grace_seconds=5)


async def test_a_stop_during_the_backoff_ends_the_keeper_without_a_restart(tmp_path: Path) -> None:
    registry, stop = ChildRegistry(tmp_path), asyncio.Event()
    sleeper = Sleeper(registry)
    await sleeper.start()
    assert sleeper.child is not None
    keeper = Keeper(
        "sleeper", current=lambda: sleeper.child, start=sleeper.start, registry=registry, stop=stop,
        policy=RestartPolicy(first=30.0),
    )  # fmt: skip
    task = asyncio.create_task(keeper.run())
    sleeper.child.proc.send_signal(signal.SIGKILL)

    async def waiting_out_the_backoff() -> bool:
        return not registry.children  # the dead child is forgotten as the wait begins

    await eventually(waiting_out_the_backoff, "the backoff", within=10)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert sleeper.starts == 1


async def test_a_child_that_keeps_crashing_is_called_a_crash_loop_and_still_restarted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry, stop = ChildRegistry(tmp_path), asyncio.Event()
    crasher = Sleeper(registry, argv=[sys.executable, "-c", "raise SystemExit(3)"])
    await crasher.start()
    keeper = Keeper(
        "crasher", current=lambda: crasher.child, start=crasher.start, registry=registry, stop=stop,
        policy=RestartPolicy(first=0.01, cap=0.05, loop_crashes=3),
    )  # fmt: skip
    task = asyncio.create_task(keeper.run())
    try:
        with caplog.at_level(logging.INFO, logger="prm.run"):

            async def restarted_after_the_loop() -> bool:
                return crasher.starts >= 5

            await eventually(restarted_after_the_loop, "restarts after the crash loop", within=20)
        assert "crasher exited (code 3); restarting in 0.01 s (restart 1)" in caplog.text
        assert "crasher has crashed 3 times within 120 s" in caplog.text
        assert caplog.text.count("has crashed") == 1  # said once, as the loop begins
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        for child in list(registry.children):
            await registry.stop(child, grace_seconds=5)
