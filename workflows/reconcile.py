"""The periodic reconciler: every few minutes, start the workflows whose start was lost after a commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.reconcile import ReconcileActivities, ReconcileInput

RECONCILER_WORKFLOW_ID = "prm-reconciler"
RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=5)


@dataclass
class ReconcilerInput:
    """How often to reconcile, how old a never-started row must be, and (optionally) one tenant only."""

    interval_seconds: int = 300
    older_than_seconds: float = 120.0
    rounds: int = 200  # then continue-as-new, to keep the history short
    tenant_id: str | None = None


@workflow.defn(name="ReconcilerWorkflow")
class ReconcilerWorkflow:
    """One per namespace (`prm-reconciler`): reconcile, sleep, repeat."""

    def __init__(self) -> None:
        self._rounds = 0

    @workflow.run
    async def run(self, wf_input: ReconcilerInput) -> None:
        """Run a reconciliation round every `interval_seconds`; a failed round waits for the next."""
        for _ in range(wf_input.rounds):
            try:
                await workflow.execute_activity_method(
                    ReconcileActivities.reconcile_lost_starts,
                    ReconcileInput(
                        older_than_seconds=wf_input.older_than_seconds, tenant_id=wf_input.tenant_id
                    ),
                    start_to_close_timeout=timedelta(minutes=5),
                    retry_policy=RETRY,
                )
            except ActivityError:
                workflow.logger.warning("reconciliation round failed; the next round tries again")
            self._rounds += 1
            await workflow.sleep(timedelta(seconds=wf_input.interval_seconds))
        workflow.continue_as_new(wf_input)

    @workflow.query(name="rounds")
    def rounds(self) -> int:
        """Rounds completed by this run (for operators and tests)."""
        return self._rounds
