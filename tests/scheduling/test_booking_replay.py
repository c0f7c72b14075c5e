"""Replay: recorded booking-conversation histories still replay against the current workflow code.

A conversation's workflow holds the offered slots until the offer expires, so a deploy can find some
running. `histories/booking_<scenario>_<version>.json` were recorded from real runs (the time-skipping
server, the real activities and PostgreSQL, the reply routed as the webhook routes it). Each run of this
file records the scenarios afresh and replays them;
`PRM_RECORD_HISTORIES=<version> pytest tests/scheduling/test_booking_replay.py` also writes them (add
`-k <scenario>` for one). Record a new version when a change to the workflow is intended and guarded by
`workflow.patched(...)`; keep the old files, which must go on replaying.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from tests import histories
from tests.histories import Scenario
from tests.scheduling.booking_support import slots_for
from tests.scheduling.conftest import API
from tests.scheduling.waitlist_support import reply
from workflows.booking import BookingConversationWorkflow

HISTORIES = Path(__file__).parent / "histories"
RESULT_TIMEOUT = 15
SCENARIOS = {
    # The reply's activity books and, after its commit, signals the conversation's new state as well.
    "booking_reply_booked": Scenario(["handle_booking_reply"], ["inbound_reply", "updated"], "booked"),
    "booking_expired": Scenario(["expire_booking_conversation"], [], "expired", timers_fired=1),
}
FIXTURE_PHI = ("Lovelace", "+14155550", "(415) 555")


async def _offer(client, auth, temporal_env, patient, **fields) -> tuple[dict, object]:
    """Offer the patient slots (find-slots starts the conversation's workflow): the offer, its handle."""
    found = await client.post(
        f"{API}/appointments/find-slots", json={"patient_id": str(patient.id), **fields}, headers=auth
    )
    assert found.status_code == 200, found.text
    offer = found.json()
    assert offer["status"] == "active"
    return offer, temporal_env.client.get_workflow_handle(f"booking-conversation-{offer['conversation_id']}")


async def test_a_fresh_reply_booked_history_replays(
    client,
    auth,
    app,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
    make_slot,
    settle,
) -> None:
    patient = await make_patient()
    await slots_for(make_practitioner, make_slot, 2)
    offer, handle = await _offer(client, auth, temporal_env, patient)
    routed = await reply(app, system_sessionmaker, tenant_id, (patient.id, "2"))
    assert [str(r) for r in routed] == [offer["conversation_id"]]
    assert await asyncio.wait_for(handle.result(), RESULT_TIMEOUT) == "booked"
    await settle()
    history = await handle.fetch_history()
    await histories.replay_fresh(history, BookingConversationWorkflow, HISTORIES, "booking_reply_booked")


async def test_a_fresh_expired_history_replays(
    client, auth, temporal_env, temporal_worker, make_patient, make_practitioner, make_slot, settle
) -> None:
    patient = await make_patient()
    await slots_for(make_practitioner, make_slot, 2)
    _, handle = await _offer(client, auth, temporal_env, patient, hold_minutes=5)
    await temporal_env.sleep(timedelta(minutes=6))  # past the 5-minute hold
    assert await asyncio.wait_for(handle.result(), RESULT_TIMEOUT) == "expired"
    await settle()
    history = await handle.fetch_history()
    await histories.replay_fresh(history, BookingConversationWorkflow, HISTORIES, "booking_expired")


(
    test_recorded_history_replays_against_current_code,
    test_every_scenario_has_a_recorded_history,
    test_recorded_history_is_the_whole_scenario,
    test_recorded_history_holds_no_phi,
) = histories.recorded_history_checks(
    BookingConversationWorkflow, "BookingConversationWorkflow", HISTORIES, "booking", SCENARIOS, FIXTURE_PHI
)
