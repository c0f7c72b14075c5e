"""Replay: recorded journey histories still replay against the current workflow code (determinism).

`histories/*.json` were recorded from real runs (time-skipping server, real activities). A change to the
workflow that would break running journeys fails here; record a new history when the change is intended
and safe (`PRM_RECORD_HISTORIES=<name> pytest tests/journeys/test_journey_replay.py` writes
`histories/post_surgery_recovery_<name>.json`), keeping the old ones: running journeys started under every
recorded version must still replay.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities import ActivityDeps
from domain.journeys.plan import AdvanceInput, AdvanceResult
from tests.journeys.app_support import journey_worker
from tests.journeys.conftest import Clinic
from tests.journeys.helpers import create_instance, start
from tests.polling import eventually
from workflows.journey import JourneyInstanceWorkflow

HISTORIES = Path(__file__).parent / "histories"
SCENARIO = [
    {
        "name": "Welcome",
        "order_index": 1,
        "trigger_event": "immediate",
        "actions": [{"type": "send_message", "template_id": "post_op_welcome"}],
    },
    {
        "name": "Day 1",
        "order_index": 2,
        "trigger_event": {"type": "delay", "delay": {"days": 1}},
        "actions": [{"type": "send_message", "template_id": "recovery_check_in"}],
    },
    {"name": "Call", "order_index": 3, "trigger_event": "manual", "actions": {}},
    {
        "name": "Reply",
        "order_index": 4,
        "trigger_event": {"type": "reply_received", "timeout": {"days": 2}, "on_timeout": "create_ticket"},
        "actions": [],
    },
]


async def _record(env: WorkflowEnvironment, deps: ActivityDeps, clinic: Clinic) -> WorkflowHistory:
    instance = await create_instance(clinic, SCENARIO)
    async with journey_worker(env.client, deps, "replay-record"):
        handle = await start(env.client, "replay-record", instance)
        await env.sleep(timedelta(days=1, minutes=1))

        async def call_stage_active() -> bool:
            return (await clinic.stage_statuses(instance.id))[2] == "active"

        await eventually(call_stage_active)
        result = await handle.execute_update(
            "advance", AdvanceInput("tester", order_index=3), result_type=AdvanceResult
        )
        assert result.order_index == 3
        assert await handle.result() == "completed"
        return await handle.fetch_history()


async def test_a_fresh_history_replays(
    temporal_env: WorkflowEnvironment, activity_deps: ActivityDeps, clinic: Clinic
) -> None:
    history = await _record(temporal_env, activity_deps, clinic)
    if name := os.environ.get("PRM_RECORD_HISTORIES"):
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / f"post_surgery_recovery_{name}.json").write_text(history.to_json())
    await Replayer(workflows=[JourneyInstanceWorkflow]).replay_workflow(history)


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_recorded_history_replays_against_current_code(path: Path) -> None:
    history = WorkflowHistory.from_json(f"recorded-{path.stem}", await asyncio.to_thread(path.read_text))
    await Replayer(workflows=[JourneyInstanceWorkflow]).replay_workflow(history)
