"""Temporal stores a journey's payloads encrypted: its history, read straight from the server, holds no
payload in clear, and an operator reads them through the codec endpoint; a viewer cannot."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import httpx
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from activities import ActivityDeps
from core.auth import Role
from core.codec import ENCODING, EncryptionCodec, data_converter, new_key_setting
from tests.journeys.api_support import define, started, statuses_become
from tests.journeys.app_support import journey_worker
from tests.journeys.conftest import Clinic
from tests.polling import eventually

# Stored in clear by design: search attributes (Temporal indexes them; ids and statuses only) and the SDK's
# own marker bookkeeping (patch ids, local-activity sequence numbers), which carry no workflow data.
SDK_MARKER_DETAILS = {"data", "patch-data"}


def payloads_in(message: Message, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Payload]]:
    """Every Payload anywhere inside a protobuf message, with the field path that leads to it."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = [(f"{field.name}[{key}]", item) for key, item in value.items()]
        elif isinstance(value, Message):
            items = [(field.name, value)]
        else:
            items = [(field.name, item) for item in value]
        for name, item in items:
            if isinstance(item, Payload):
                yield (*path, name), item
            elif isinstance(item, Message):
                yield from payloads_in(item, (*path, name))


def holds_workflow_data(path: tuple[str, ...]) -> bool:
    """False for what Temporal keeps in clear on purpose (search attributes, SDK marker bookkeeping)."""
    if any(part.startswith("search_attributes") for part in path):
        return False
    return not any(part in {f"details[{k}]" for k in SDK_MARKER_DETAILS} for part in path)


async def test_a_journeys_history_holds_no_payload_in_clear_and_an_operator_reads_it(
    app,
    client: httpx.AsyncClient,
    auth: dict,
    headers_for,
    tenant_id,
    clinic: Clinic,
    temporal_env,
    activity_deps: ActivityDeps,
) -> None:
    keys = new_key_setting("k1")
    plain: Client = temporal_env.client
    encrypted = Client(plain.service_client, namespace=plain.namespace, data_converter=data_converter(keys))
    queue = f"encrypted-{uuid.uuid4().hex[:8]}"
    saved = (app.state.settings, app.state.temporal_client, app.state.payload_codec)
    app.state.settings = app.state.settings.model_copy(update={"temporal_task_queue": queue})
    app.state.temporal_client, app.state.payload_codec = encrypted, EncryptionCodec.from_setting(keys)
    try:
        async with journey_worker(encrypted, activity_deps, queue):
            journey_id = await define(client, auth)
            instance = await started(client, auth, journey_id, clinic.patient_id)
            await eventually(
                statuses_become(client, auth, instance["id"], ["completed", "active", "pending", "pending"])
            )
            history = await plain.get_workflow_handle(instance["workflow_id"]).fetch_history()

            stored = [
                p for event in history.events for path, p in payloads_in(event) if holds_workflow_data(path)
            ]
            assert len(stored) >= 3  # the input, activity inputs and results at least
            clear_ones = [
                (p.metadata.get("encoding"), p.data[:80])
                for p in stored
                if p.metadata.get("encoding") != ENCODING
            ]
            assert clear_ones == []
            assert not any(b'"stages"' in p.data or b"post_op_welcome" in p.data for p in stored)

            started_event = history.events[0].workflow_execution_started_event_attributes
            (wf_input,) = started_event.input.payloads
            body = {
                "payloads": [
                    {
                        "metadata": {k: base64.b64encode(v).decode() for k, v in wf_input.metadata.items()},
                        "data": base64.b64encode(wf_input.data).decode(),
                    }
                ]
            }
            decoded = await client.post(
                "/codec/decode", json=body, headers=headers_for(tenant_id, Role.OPERATOR)
            )
            assert decoded.status_code == 200, decoded.text
            (clear,) = decoded.json()["payloads"]
            assert base64.b64decode(clear["metadata"]["encoding"]) == b"json/plain"
            assert b'"stages"' in base64.b64decode(clear["data"])
            refused = await client.post(
                "/codec/decode", json=body, headers=headers_for(tenant_id, Role.VIEWER)
            )
            assert refused.status_code == 403
            assert (await client.post("/codec/decode", json=body)).status_code == 401
    finally:
        app.state.settings, app.state.temporal_client, app.state.payload_codec = saved
