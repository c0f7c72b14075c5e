"""Replay: recorded delivery-workflow histories still replay against the current workflow code.

A message's delivery workflow may sleep for hours (quiet hours, frequency caps, the WhatsApp fallback
delay), so a deploy always finds some running. `histories/*.json` were recorded from real runs (time-skipping
server, real activities, the real Twilio and SendGrid SDKs against the local fake APIs); record a new one
when a change is intended (`PRM_RECORD_HISTORIES=<name> pytest tests/communications/test_delivery_replay.py`
writes `histories/delivery_fallback_<name>.json`) and keep the old ones.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.communications import CommunicationDeliveryWorkflow

API = "/api/v1/prm"
HISTORIES = Path(__file__).parent / "histories"


async def test_a_fresh_fallback_history_replays(
    client, auth, temporal_env, temporal_worker, providers_configured, make_patient
) -> None:
    patient = await make_patient()
    body = {"patient_id": str(patient.id), "channel": "whatsapp", "message": "Bring your card"}
    resp = await client.post(f"{API}/communications", json=body, headers=auth)
    assert resp.status_code == 201, resp.text
    handle = temporal_env.client.get_workflow_handle(f"communication-{resp.json()['id']}")
    async with temporal_env.time_skipping_unlocked():
        result = await handle.result()
    assert (result["channel"], result["status"]) == ("email", "sent")
    history = await handle.fetch_history()
    if name := os.environ.get("PRM_RECORD_HISTORIES"):
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / f"delivery_fallback_{name}.json").write_text(history.to_json())
    await Replayer(workflows=[CommunicationDeliveryWorkflow]).replay_workflow(history)


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_recorded_history_replays_against_current_code(path: Path) -> None:
    history = WorkflowHistory.from_json(f"recorded-{path.stem}", await asyncio.to_thread(path.read_text))
    await Replayer(workflows=[CommunicationDeliveryWorkflow]).replay_workflow(history)
