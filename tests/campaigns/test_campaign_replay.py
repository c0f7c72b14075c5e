"""Replay: recorded campaign histories still replay against the current workflow code.

A campaign's workflow runs for as long as its pace and window make it (days for a large cohort at a
sender's real rate), so a deploy always finds some running. `histories/campaign_<scenario>_<version>.json`
were recorded from real runs (the time-skipping server, the real activities and PostgreSQL, pause, resume
and cancel through the API). Each run of this file records the scenarios afresh and replays them;
`PRM_RECORD_HISTORIES=<version> pytest tests/campaigns/test_campaign_replay.py` also writes them. Record a
new version when a change to the workflow is intended and guarded by `workflow.patched(...)`; keep the old
files, which must go on replaying.
"""

from __future__ import annotations

from pathlib import Path

from domain.campaigns.plan import campaign_workflow_id
from tests import histories
from tests.campaigns.support import API, first_of_one_a_minute, result_of
from tests.histories import Scenario
from workflows.campaigns import CampaignWorkflow

HISTORIES = Path(__file__).parent / "histories"
PLAN, BATCH, FINISH = "campaign_plan", "campaign_enroll_batch", "campaign_finish"
CHANGED = "campaign_changed"
SCENARIOS = {
    # One a minute: the first batch, a pause while waiting, a resume, two more batches a minute apart.
    "campaign_paused_resumed": Scenario(
        [PLAN, BATCH, BATCH, BATCH, FINISH], [CHANGED, CHANGED], "completed", 1
    ),
    # The first batch, then a cancel while waiting: the other member is never enrolled.
    "campaign_cancelled": Scenario([PLAN, BATCH, FINISH], [CHANGED], "cancelled"),
}
FIXTURE_PHI = ("Replay", "Doe")


async def test_a_fresh_paused_and_resumed_history_replays(
    client, auth, clinic, temporal_env, temporal_worker
) -> None:
    launched, _ = await first_of_one_a_minute(client, auth, clinic, 3, first_name="Replay")
    for action in ("pause", "resume"):
        assert (
            await client.post(f"{API}/campaigns/{launched['id']}/{action}", headers=auth)
        ).status_code == 200
    assert await result_of(temporal_env, launched["id"]) == "completed"
    history = await temporal_env.client.get_workflow_handle(
        campaign_workflow_id(launched["id"])
    ).fetch_history()
    histories.assert_whole(history, "CampaignWorkflow", SCENARIOS["campaign_paused_resumed"])
    await histories.replay_fresh(history, CampaignWorkflow, HISTORIES, "campaign_paused_resumed")


async def test_a_fresh_cancelled_history_replays(client, auth, clinic, temporal_env, temporal_worker) -> None:
    launched, _ = await first_of_one_a_minute(client, auth, clinic, 2, first_name="Replay")
    assert (await client.post(f"{API}/campaigns/{launched['id']}/cancel", headers=auth)).status_code == 200
    assert await result_of(temporal_env, launched["id"]) == "cancelled"
    history = await temporal_env.client.get_workflow_handle(
        campaign_workflow_id(launched["id"])
    ).fetch_history()
    histories.assert_whole(history, "CampaignWorkflow", SCENARIOS["campaign_cancelled"])
    await histories.replay_fresh(history, CampaignWorkflow, HISTORIES, "campaign_cancelled")


(
    test_recorded_history_replays_against_current_code,
    test_every_scenario_has_a_recorded_history,
    test_recorded_history_is_the_whole_scenario,
    test_recorded_history_holds_no_phi,
) = histories.recorded_history_checks(
    CampaignWorkflow, "CampaignWorkflow", HISTORIES, "campaign", SCENARIOS, FIXTURE_PHI
)
