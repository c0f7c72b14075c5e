"""The baseline for the journeys benchmark: a bare Temporal workflow running N no-op activities in a row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow


@dataclass
class BareInput:
    """How many activities to run."""

    activities: int


@activity.defn(name="bench_noop")
async def noop(index: int) -> int:
    """Do nothing (the cost measured is Temporal's own)."""
    return index


@workflow.defn(name="BenchBareWorkflow")
class BareWorkflow:
    """Runs `activities` no-op activities one after another, as a journey runs its stage activities."""

    @workflow.run
    async def run(self, data: BareInput) -> int:
        """Run them all and return how many ran."""
        for index in range(data.activities):
            await workflow.execute_activity(noop, index, start_to_close_timeout=timedelta(seconds=30))
        return data.activities
