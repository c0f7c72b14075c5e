"""Replay: recorded waitlist-backfill histories still replay against the current workflow code.

A backfill holds each wave's offers for the tenant's hold (30 minutes by default) and may run through
several waves, so a deploy can find some running. `histories/waitlist_<scenario>_<version>.json` were
recorded from real runs (the time-skipping server, the real activities and PostgreSQL, replies routed as
the webhook routes them). Each run of this file records the scenarios afresh and replays them;
`PRM_RECORD_HISTORIES=<version> pytest tests/scheduling/test_waitlist_replay.py` also writes them (add
`-k <scenario>` for one). Record a new version when a change to the workflow is intended and guarded by
`workflow.patched(...)`; keep the old files, which must go on replaying.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from tests import histories
from tests.histories import Scenario
from tests.scheduling.conftest import API
from tests.scheduling.waitlist_support import (
    add_entry,
    backfill,
    booked_then_cancelled,
    open_offers,
    reply,
    set_policy,
)
from workflows.waitlist import WaitlistBackfillWorkflow

HISTORIES = Path(__file__).parent / "histories"
RESULT_TIMEOUT = 15
OFFER, REPLY, EXPIRE = "offer_waitlist_wave", "handle_waitlist_reply", "expire_waitlist_wave"
SCENARIOS = {
    # The reply's activity books the offer and, after its commit, signals the offer settled as well.
    "waitlist_accepted": Scenario([OFFER, REPLY], ["inbound_reply", "offer_settled"], "booked"),
    "waitlist_next_wave": Scenario(
        [OFFER, EXPIRE, OFFER, EXPIRE, OFFER], ["offer_settled"], "exhausted", timers_fired=1
    ),
}
FIXTURE_PHI = ("Lovelace", "+14155550", "Yes please")


async def _replays(temporal_env, cancelled: dict, scenario: str, settle) -> None:
    await settle()
    history = await backfill(temporal_env, cancelled).fetch_history()
    await histories.replay_fresh(history, WaitlistBackfillWorkflow, HISTORIES, scenario)


async def test_a_fresh_accepted_history_replays(
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
    book,
    settle,
) -> None:
    practitioner = await make_practitioner()
    waiting = await make_patient(phone_primary="+14155550301")
    await add_entry(client, auth, waiting.id, practitioner_id=practitioner["id"])
    cancelled = await booked_then_cancelled(client, auth, book, make_patient, make_slot, practitioner["id"])
    [offer] = await open_offers(system_sessionmaker, tenant_id, cancelled, 1)
    assert await reply(app, system_sessionmaker, tenant_id, (waiting.id, "Yes please!")) == [offer.id]
    assert await asyncio.wait_for(backfill(temporal_env, cancelled).result(), RESULT_TIMEOUT) == "booked"
    await _replays(temporal_env, cancelled, "waitlist_accepted", settle)


async def test_a_fresh_next_wave_history_replays(
    client,
    auth,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
    make_slot,
    book,
    settle,
) -> None:
    await set_policy(system_sessionmaker, tenant_id, wave_size=1, hold_minutes=20)
    practitioner = await make_practitioner()
    for phone in ("+14155550321", "+14155550322"):
        patient = await make_patient(phone_primary=phone)
        await add_entry(client, auth, patient.id, practitioner_id=practitioner["id"])
    cancelled = await booked_then_cancelled(client, auth, book, make_patient, make_slot, practitioner["id"])
    await open_offers(system_sessionmaker, tenant_id, cancelled, 1)
    await temporal_env.sleep(timedelta(minutes=21))  # the first wave's hold runs out: the next is offered
    [second] = await open_offers(system_sessionmaker, tenant_id, cancelled, 1)
    assert second.wave == 2
    resp = await client.post(f"{API}/waitlist/offers/{second.id}/decline", headers=auth)
    assert resp.status_code == 200, resp.text
    assert await asyncio.wait_for(backfill(temporal_env, cancelled).result(), RESULT_TIMEOUT) == "exhausted"
    await _replays(temporal_env, cancelled, "waitlist_next_wave", settle)


(
    test_recorded_history_replays_against_current_code,
    test_every_scenario_has_a_recorded_history,
    test_recorded_history_is_the_whole_scenario,
    test_recorded_history_holds_no_phi,
) = histories.recorded_history_checks(
    WaitlistBackfillWorkflow, "WaitlistBackfillWorkflow", HISTORIES, "waitlist", SCENARIOS, FIXTURE_PHI
)
