"""Replay: recorded appointment-workflow histories still replay against the current workflow code.

An appointment's workflow sleeps for days until its reminders, so a deploy always finds some running.
`histories/appointment_<scenario>_<version>.json` were recorded from real runs (the time-skipping server, the
real activities and PostgreSQL, the API driving the signals). Each run of this file records the scenarios
afresh and replays them; `PRM_RECORD_HISTORIES=<version> pytest tests/scheduling/test_appointment_replay.py`
also writes them (add `-k <scenario>` for one). Record a new version when a change to the workflow is
intended and guarded by `workflow.patched(...)`; keep the old files, which must go on replaying.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from tests import histories
from tests.histories import Scenario
from tests.polling import eventually
from tests.scheduling.conftest import API
from tests.scheduling.reminder_support import book_at, messages, server_now, skip_to
from workflows.appointments import AppointmentWorkflow

HISTORIES = Path(__file__).parent / "histories"
BASE = f"{API}/appointments"
SCENARIOS = {
    "appointment_reminders": Scenario(["send_appointment_reminder"] * 2, [], "ended", timers_fired=3),
    "appointment_rescheduled": Scenario(["send_appointment_reminder"] * 3, ["reschedule"], "ended", 4),
    "appointment_cancelled": Scenario(
        ["send_appointment_reminder", "send_appointment_cancellation"], ["cancel"], "cancelled", 1
    ),
    "appointment_finished": Scenario(["send_appointment_reminder"], ["finish"], "completed", 1),
}
FIXTURE_PHI = ("Lovelace", "+14155550", "(415) 555")


@dataclass
class Booked:
    """One appointment booked through the API, its workflow running on the time-skipping server."""

    id: str
    start: datetime
    handle: WorkflowHandle[Any, Any]
    sent: Callable[[int], Awaitable[list[str]]]  # waits until this many messages are recorded


@pytest.fixture
def book_in(
    client,
    auth,
    tenant_id,
    temporal_env,
    temporal_worker,
    system_sessionmaker,
    make_patient,
    make_practitioner,
) -> Callable[[timedelta], Awaitable[Booked]]:
    """Book an appointment starting `lead` after the server's now and wait for its workflow to start."""

    async def book(lead: timedelta) -> Booked:
        patient, practitioner = await make_patient(), await make_practitioner()
        start = await server_now(temporal_env) + lead
        appointment = await book_at(client, auth, patient, practitioner, start)
        handle = temporal_env.client.get_workflow_handle(f"appointment-{appointment['id']}")
        await eventually(lambda: _started(handle), "the appointment workflow to start")

        async def sent(count: int) -> list[str]:
            async def recorded() -> list[str] | None:
                keys = await messages(system_sessionmaker, tenant_id, appointment["id"])
                return keys if len(keys) == count else None

            return await eventually(recorded, f"{count} message(s) for the appointment")

        return Booked(appointment["id"], start, handle, sent)

    return book


async def _started(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        await handle.describe()
    except RPCError:
        return False
    return True


async def _replays(booked: Booked, scenario: str, settle: Callable[[], Awaitable[None]]) -> None:
    await settle()
    history = await booked.handle.fetch_history()
    await histories.replay_fresh(history, AppointmentWorkflow, HISTORIES, scenario)


async def test_a_fresh_reminders_history_replays(book_in, temporal_env, settle) -> None:
    booked = await book_in(timedelta(days=3))
    await skip_to(temporal_env, booked.start - timedelta(hours=24) + timedelta(minutes=1))
    await booked.sent(1)
    await skip_to(temporal_env, booked.start - timedelta(hours=2) + timedelta(minutes=1))
    await booked.sent(2)
    await skip_to(temporal_env, booked.start + timedelta(minutes=31))  # past the end
    assert await booked.handle.result() == "ended"
    await _replays(booked, "appointment_reminders", settle)


async def test_a_fresh_rescheduled_history_replays(book_in, client, auth, temporal_env, settle) -> None:
    booked = await book_in(timedelta(days=3))
    await skip_to(temporal_env, booked.start - timedelta(hours=24) + timedelta(minutes=1))
    await booked.sent(1)
    new_start = booked.start + timedelta(days=2)
    moved = {"start_time": new_start.isoformat(), "end_time": (new_start + timedelta(minutes=30)).isoformat()}
    assert (await client.patch(f"{BASE}/{booked.id}", json=moved, headers=auth)).status_code == 200

    async def taken_in() -> bool:
        return (await booked.handle.query(AppointmentWorkflow.state)).start_time == new_start.isoformat()

    await eventually(taken_in, "the reschedule to reach the workflow")
    await skip_to(temporal_env, new_start - timedelta(hours=2) + timedelta(minutes=1))
    await booked.sent(3)  # the first 24 h reminder, then the new time's 24 h and 2 h ones
    await skip_to(temporal_env, new_start + timedelta(minutes=31))  # past the end
    assert await booked.handle.result() == "ended"
    await _replays(booked, "appointment_rescheduled", settle)


async def test_a_fresh_cancelled_history_replays(book_in, client, auth, temporal_env, settle) -> None:
    booked = await book_in(timedelta(days=3))
    await skip_to(temporal_env, booked.start - timedelta(hours=24) + timedelta(minutes=1))
    await booked.sent(1)
    resp = await client.post(f"{BASE}/{booked.id}/cancel", params={"notify_patient": True}, headers=auth)
    assert resp.status_code == 200, resp.text
    assert await booked.handle.result() == "cancelled"
    assert (await booked.sent(2))[-1] == f"appointment:{booked.id}:cancellation"
    await _replays(booked, "appointment_cancelled", settle)


async def test_a_fresh_finished_history_replays(book_in, client, auth, temporal_env, settle) -> None:
    booked = await book_in(timedelta(hours=5))  # inside the 24 h window: only the 2 h reminder
    await skip_to(temporal_env, booked.start - timedelta(hours=2) + timedelta(minutes=1))
    await booked.sent(1)
    for status in ("checked_in", "completed"):
        resp = await client.patch(f"{BASE}/{booked.id}", json={"status": status}, headers=auth)
        assert resp.status_code == 200, resp.text
    assert await booked.handle.result() == "completed"
    await _replays(booked, "appointment_finished", settle)


(
    test_recorded_history_replays_against_current_code,
    test_every_scenario_has_a_recorded_history,
    test_recorded_history_is_the_whole_scenario,
    test_recorded_history_holds_no_phi,
) = histories.recorded_history_checks(
    AppointmentWorkflow, "AppointmentWorkflow", HISTORIES, "appointment", SCENARIOS, FIXTURE_PHI
)
