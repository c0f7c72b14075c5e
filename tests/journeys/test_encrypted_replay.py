"""Journeys that were running before per-tenant payload keys carry on: a history whose payloads were sealed
with the master key itself (`encrypted_histories/`, recorded by the codec of that time under
`LEGACY_KEYS`) replays through the current codec, also once a new master key is put first; the codec
server shows its payloads only to the tenant they prove to belong to."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from core.codec import EVERY_TENANT, KEY_ID, TENANT, EncryptionCodec, data_converter, new_key_setting
from workflows.journey import JourneyInstanceWorkflow

RECORDED = Path(__file__).parent / "encrypted_histories" / "post_surgery_recovery_legacy_codec.json"
LEGACY_KEYS = "legacy-k1:bGVnYWN5LWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGU="  # a test key, nothing else uses it


async def _history() -> WorkflowHistory:
    return WorkflowHistory.from_json("legacy-encrypted", await asyncio.to_thread(RECORDED.read_text))


def _input_and_activity_result(history: WorkflowHistory) -> tuple[Payload, Payload]:
    started = history.events[0].workflow_execution_started_event_attributes
    (wf_input,) = started.input.payloads
    (result,) = next(
        e.activity_task_completed_event_attributes.result.payloads
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
        and e.activity_task_completed_event_attributes.result.payloads
    )
    return wf_input, result


async def test_a_journey_sealed_with_the_master_key_replays_before_and_after_a_rotation() -> None:
    history = await _history()
    wf_input, _ = _input_and_activity_result(history)
    assert KEY_ID in wf_input.metadata and TENANT not in wf_input.metadata  # sealed the old way
    for keys in (LEGACY_KEYS, f"{new_key_setting('k2')},{LEGACY_KEYS}"):
        replayer = Replayer(workflows=[JourneyInstanceWorkflow], data_converter=data_converter(keys))
        await replayer.replay_workflow(history)


async def test_a_legacy_payload_is_shown_only_to_the_tenant_it_names() -> None:
    codec = EncryptionCodec.from_setting(f"{new_key_setting('k2')},{LEGACY_KEYS}")
    wf_input, result = _input_and_activity_result(await _history())
    (clear_input,) = await codec.decode([wf_input])
    owner = json.loads(clear_input.data)["tenant_id"]

    (answered,), [account] = await codec.read([wf_input], owner)
    assert answered == clear_input and account.disclosed and account.tenant_id == owner
    (answered,), [account] = await codec.read([wf_input], str(uuid.uuid4()))
    assert answered == wf_input and not account.disclosed
    # A result names no tenant: it may be anyone's, so no tenant reads it (the worker still does).
    (answered,), [account] = await codec.read([result], owner)
    assert answered == result and not account.disclosed and account.tenant_id is None
    assert await codec.decode([result]) == (await codec.read([result], EVERY_TENANT))[0]
