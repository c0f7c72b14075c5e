"""Replay: recorded histories of a recurring campaign's fire (`CampaignOccurrenceWorkflow`) still replay
against the current workflow code.

`histories/occurrence_<scenario>_<version>.json` were recorded from a real fire of a real schedule
(the dev server, the real activity and PostgreSQL). Each run of this file records the scenario afresh and
replays it; `PRM_RECORD_HISTORIES=<version> pytest tests/campaigns/test_occurrence_replay.py` also writes
it. Record a new version when a change to the workflow is intended and guarded by `workflow.patched(...)`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from activities import ActivityDeps
from domain.campaigns.plan import campaign_schedule_id
from tests import histories
from tests.campaigns.support import API, cohort_of_everyone
from tests.histories import Scenario
from tests.polling import eventually
from tests.temporal_envs import app_workers
from workflows.campaign_schedules import CampaignOccurrenceWorkflow

HISTORIES = Path(__file__).parent / "histories"
SCENARIOS = {
    # One fire of the schedule: the occurrence launched.
    "occurrence_launched": Scenario(["campaign_launch_occurrence"], [], "launched"),
}
FIXTURE_PHI = ("Replay", "Doe")


async def test_a_fresh_fire_history_replays(
    app, client, auth, clinic, settings, dev_env, system_sessionmaker, monkeypatch
) -> None:
    queue = f"occurrence-replay-{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(settings, "temporal_task_queue", queue)
    # setitem on the state's dict: monkeypatch.setattr would delete the attribute on undo (Starlette's State)
    monkeypatch.setitem(app.state._state, "temporal_client", dev_env.client)
    await clinic.patient(first_name="Replay")
    body = {
        "name": "Recall",
        "cohort_id": await cohort_of_everyone(client, auth),
        "journey_id": str(await clinic.journey()),
        "starts_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),  # fired by hand below
        "recurrence": {"every_days": 30, "cooldown_days": 30},
    }
    created = await client.post(f"{API}/campaigns", json=body, headers=auth)
    assert created.status_code == 201, created.text
    schedule = dev_env.client.get_schedule_handle(campaign_schedule_id(created.json()["id"]))
    deps = ActivityDeps(settings=settings, sessionmaker=system_sessionmaker)
    async with app_workers(dev_env.client, queue, deps):
        await schedule.trigger()

        async def fired() -> str | None:
            actions = (await schedule.describe()).info.recent_actions
            return actions[0].action.workflow_id if actions else None

        workflow_id = await eventually(fired, "the schedule's fire", within=30)
        handle = dev_env.client.get_workflow_handle(workflow_id)
        assert await handle.result() == "launched"
    history = await handle.fetch_history()
    histories.assert_whole(history, "CampaignOccurrenceWorkflow", SCENARIOS["occurrence_launched"])
    await histories.replay_fresh(history, CampaignOccurrenceWorkflow, HISTORIES, "occurrence_launched")


(
    test_recorded_history_replays_against_current_code,
    test_every_scenario_has_a_recorded_history,
    test_recorded_history_is_the_whole_scenario,
    test_recorded_history_holds_no_phi,
) = histories.recorded_history_checks(
    CampaignOccurrenceWorkflow,
    "CampaignOccurrenceWorkflow",
    HISTORIES,
    "occurrence",
    SCENARIOS,
    FIXTURE_PHI,
)
