"""The baseline for the journey and campaign benchmarks: a bare Temporal workflow running no-op activities in
a row, regular ones and local ones, as many of each as the workflow it stands beside."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow


@dataclass
class BareInput:
    """How many activities to run: `activities` regular ones, then `local_activities` local ones."""

    activities: int
    local_activities: int = 0


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
        for index in range(data.activities):
            await workflow.execute_activity(noop, index, start_to_close_timeout=timedelta(seconds=30))
        for index in range(data.local_activities):
            await workflow.execute_local_activity(noop, index, start_to_close_timeout=timedelta(seconds=30))
        return data.activities + data.local_activities
