"""The baseline for the journey and campaign benchmarks: a bare Temporal workflow running no-op activities in
a row, regular ones and local ones, as many of each as the workflow it stands beside.

Given a `sequence` (one letter per activity, `R` regular, `L` local, in the order the journey ran them, read
from its history), it runs them in that order with the journey's own options: the same start-to-close
timeout and retry policy for both, and the journey's action heartbeat timeout on the regular ones (the
journey's regular activities are its stage actions, its local ones the bookkeeping)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from workflows.journey import ACTION_HEARTBEAT, ACTIVITY_TIMEOUT, RETRY


@dataclass
class BareInput:
    """What to run: `sequence` when given (`R` regular, `L` local, in order, with the journey's options);
    otherwise `activities` regular ones, then `local_activities` local ones."""

    activities: int = 0
    local_activities: int = 0
    sequence: str = ""


@activity.defn(name="bench_noop")
async def noop(index: int) -> int:
    """Do nothing (the cost measured is Temporal's own)."""
    return index


@workflow.defn(name="BenchBareWorkflow")
class BareWorkflow:
    """Runs no-op activities one after another, as a journey runs its stage activities."""

    @workflow.run
    async def run(self, data: BareInput) -> int:
        """Run them all and return how many ran."""
        if data.sequence:
            for index, kind in enumerate(data.sequence):
                if kind == "R":
                    await workflow.execute_activity(
                        noop,
                        index,
                        start_to_close_timeout=ACTIVITY_TIMEOUT,
                        heartbeat_timeout=ACTION_HEARTBEAT,
                        retry_policy=RETRY,
                    )
                else:
                    await workflow.execute_local_activity(
                        noop, index, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY
                    )
            return len(data.sequence)
        for index in range(data.activities):
            await workflow.execute_activity(noop, index, start_to_close_timeout=timedelta(seconds=30))
        for index in range(data.local_activities):
            await workflow.execute_local_activity(noop, index, start_to_close_timeout=timedelta(seconds=30))
        return data.activities + data.local_activities
