"""Replay: recorded ticket-SLA histories still replay against the current workflow code.

A ticket's SLA workflow runs from opening to resolution, days on a slow desk, so a deploy always finds
some running. `histories/ticket_<scenario>_<version>.json` were recorded from real runs (the time-skipping
server, the real activities and PostgreSQL, the tickets API sending the signals). Each run of this file
records the scenarios afresh and replays them; `PRM_RECORD_HISTORIES=<version> pytest
tests/tickets/test_ticket_replay.py` also writes them (add `-k <scenario>` for one). Record a new version
when a change to the workflow is intended and guarded by `workflow.patched(...)`; keep the old files,
which must go on replaying.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from domain.tickets.plan import SIGNAL_CHANGED, WORKFLOW_NAME, ticket_workflow_id
from tests import histories
from tests.histories import Scenario
from tests.polling import eventually
from tests.tickets.conftest import TICKETS, Desk, SlaWired
from tests.tickets.sla_support import due_set, signal_seen
from workflows.tickets import TicketSlaWorkflow

HISTORIES = Path(__file__).parent / "histories"
RESULT_TIMEOUT = 15
BEGIN = "ticket_sla_begin"  # v1: the workflow set the due times; since v2 the ticket's opening does
SCENARIOS = {
    # waiting_on_patient, back to in_progress (the pause shifts the due times), resolved
    "ticket_paused": Scenario(
        ["ticket_sla_pause"], [SIGNAL_CHANGED] * 3, "resolved", earlier={"v1": [BEGIN, "ticket_sla_pause"]}
    ),
    # the response target missed, in_progress, the resolution target missed, resolved
    "ticket_breached": Scenario(
        ["ticket_sla_breach", "ticket_sla_breach"],
        [SIGNAL_CHANGED] * 2,
        "resolved",
        timers_fired=2,
        earlier={"v1": [BEGIN, "ticket_sla_breach", "ticket_sla_breach"]},
    ),
}
FIXTURE_PHI = ("Maria", "Garcia", "Prescription refill")


async def _resolve_and_replay(
    sla_env: SlaWired, client: httpx.AsyncClient, auth: dict, ticket_id: str, scenario: str
) -> None:
    resp = await client.patch(f"{TICKETS}/{ticket_id}", json={"status": "resolved"}, headers=auth)
    assert resp.status_code == 200, resp.text
    handle = sla_env.env.client.get_workflow_handle(ticket_workflow_id(ticket_id))
    assert await asyncio.wait_for(handle.result(), RESULT_TIMEOUT) == "resolved"
    history = await handle.fetch_history()
    histories.assert_whole(history, WORKFLOW_NAME, SCENARIOS[scenario])
    await histories.replay_fresh(history, TicketSlaWorkflow, HISTORIES, scenario)


async def test_a_fresh_paused_history_replays(
    sla_env: SlaWired, desk: Desk, new_ticket: Callable, client: httpx.AsyncClient, auth: dict
) -> None:
    await desk.set_calendar(weekdays=[])  # a 24/7 desk: business time is wall time
    ticket = await new_ticket(priority="urgent")
    before = (await due_set(desk, ticket["id"])).resolution_due_at
    url = f"{TICKETS}/{ticket['id']}"
    await client.patch(url, json={"status": "waiting_on_patient"}, headers=auth)
    await signal_seen(sla_env, ticket["id"], "waiting_on_patient")
    await sla_env.env.sleep(timedelta(hours=1))
    await client.patch(url, json={"status": "in_progress"}, headers=auth)

    async def shifted() -> Any:
        return (await desk.ticket(ticket["id"])).resolution_due_at != before

    await eventually(shifted, "the pause to move the due times")
    await _resolve_and_replay(sla_env, client, auth, ticket["id"], "ticket_paused")


async def test_a_fresh_breached_history_replays(
    sla_env: SlaWired, desk: Desk, new_ticket: Callable, client: httpx.AsyncClient, auth: dict
) -> None:
    await desk.set_calendar(weekdays=[])
    ticket = await new_ticket(priority="high")  # respond within 2 h, resolve within 8 h
    await due_set(desk, ticket["id"])
    await sla_env.env.sleep(timedelta(hours=2, minutes=1))

    def escalations(count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return len(await desk.events(ticket["id"], "escalated")) == count

        return check

    await eventually(escalations(1), "the missed response's escalation")
    resp = await client.patch(f"{TICKETS}/{ticket['id']}", json={"status": "in_progress"}, headers=auth)
    assert resp.status_code == 200, resp.text
    await signal_seen(sla_env, ticket["id"], "in_progress")
    due = (await desk.ticket(ticket["id"])).resolution_due_at
    await sla_env.env.sleep(due - await sla_env.env.get_current_time() + timedelta(minutes=1))
    await eventually(escalations(2), "the missed resolution's escalation")
    await _resolve_and_replay(sla_env, client, auth, ticket["id"], "ticket_breached")


(
    test_recorded_history_replays_against_current_code,
    test_every_scenario_has_a_recorded_history,
    test_recorded_history_is_the_whole_scenario,
    test_recorded_history_holds_no_phi,
) = histories.recorded_history_checks(
    TicketSlaWorkflow, WORKFLOW_NAME, HISTORIES, "ticket", SCENARIOS, FIXTURE_PHI
)
