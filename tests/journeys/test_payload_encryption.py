"""Temporal stores a journey's payloads encrypted, each for its tenant: its history, read straight from the
server, holds no payload in clear; the tenant's operator reads them through the codec endpoint, another
tenant's operator gets them back still encoded, a viewer not at all, and every decode is audited."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory

from activities import ActivityDeps
from core.audit import AuditOutcome, AuditRecord, canonical_content
from core.auth import Role
from core.codec import ENCODING, TENANT, EncryptionCodec, data_converter, new_key_setting
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


@dataclass
class EncryptedJourney:
    """A journey run through the API with payload encryption on: its instance and its history as stored."""

    instance: dict[str, Any]
    history: WorkflowHistory

    @property
    def input(self) -> Payload:
        """The workflow's input, as Temporal stores it."""
        started = self.history.events[0].workflow_execution_started_event_attributes
        (wf_input,) = started.input.payloads
        return wf_input

    def stored(self) -> list[Payload]:
        """Every payload of workflow data in the history."""
        return [p for e in self.history.events for path, p in payloads_in(e) if holds_workflow_data(path)]


def as_json(payload: Payload) -> dict[str, Any]:
    """A payload as the Temporal UI posts it to the codec (proto3 JSON)."""
    return {
        "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
        "data": base64.b64encode(payload.data).decode(),
    }


def data_of(answer: httpx.Response) -> bytes:
    """The data of the one payload a codec call answered."""
    assert answer.status_code == 200, answer.text
    (payload,) = answer.json()["payloads"]
    return base64.b64decode(payload["data"])


@pytest.fixture
async def encrypted_journey(
    app, client: httpx.AsyncClient, auth: dict, clinic: Clinic, temporal_env, activity_deps: ActivityDeps
) -> AsyncIterator[EncryptedJourney]:
    """A journey of the test's tenant started through the API, with the app and the worker encrypting."""
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
            yield EncryptedJourney(instance, history)
    finally:
        app.state.settings, app.state.temporal_client, app.state.payload_codec = saved


async def test_a_journeys_history_holds_no_payload_in_clear_and_its_tenants_operator_reads_it(
    client: httpx.AsyncClient, headers_for, tenant_id, encrypted_journey: EncryptedJourney
) -> None:
    stored = encrypted_journey.stored()
    assert len(stored) >= 3  # the input, activity inputs and results at least
    clear_ones = [
        (p.metadata.get("encoding"), p.data[:80]) for p in stored if p.metadata.get("encoding") != ENCODING
    ]
    assert clear_ones == []
    assert not any(b'"stages"' in p.data or b"post_op_welcome" in p.data for p in stored)
    # Inputs, results, activity results: the worker sealed every one of them for the journey's tenant.
    assert {p.metadata[TENANT] for p in stored} == {str(tenant_id).encode()}

    body = {"payloads": [as_json(encrypted_journey.input)]}
    decoded = await client.post("/codec/decode", json=body, headers=headers_for(tenant_id, Role.OPERATOR))
    assert decoded.status_code == 200, decoded.text
    (clear,) = decoded.json()["payloads"]
    assert base64.b64decode(clear["metadata"]["encoding"]) == b"json/plain"
    assert b'"stages"' in base64.b64decode(clear["data"])
    refused = await client.post("/codec/decode", json=body, headers=headers_for(tenant_id, Role.VIEWER))
    assert refused.status_code == 403
    assert (await client.post("/codec/decode", json=body)).status_code == 401


async def test_another_tenants_operator_gets_the_journey_input_back_still_encoded(
    client: httpx.AsyncClient, headers_for, tenant_id, make_tenant, encrypted_journey: EncryptedJourney
) -> None:
    other = await make_tenant("Other Clinic")
    body = {"payloads": [as_json(encrypted_journey.input)]}
    for role in (Role.OPERATOR, Role.ADMIN):
        foreign = await client.post("/codec/decode", json=body, headers=headers_for(other, role))
        assert foreign.json() == body  # the payload as the UI sent it: ciphertext, its encoding
        assert (
            b"stages" not in data_of(foreign)
            and str(encrypted_journey.instance["patient_id"]) not in foreign.text
        )
    assert b'"stages"' in data_of(
        await client.post("/codec/decode", json=body, headers=headers_for(tenant_id, Role.OPERATOR))
    )

    # The other tenant's own payloads (here a signal its operator typed in the UI) it reads.
    typed = {
        "payloads": [
            {
                "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                "data": base64.b64encode(b'{"note": "call back"}').decode(),
            }
        ]
    }
    sealed = await client.post("/codec/encode", json=typed, headers=headers_for(other, Role.OPERATOR))
    assert sealed.status_code == 200 and b"call back" not in data_of(sealed)
    assert (
        data_of(
            await client.post("/codec/decode", json=sealed.json(), headers=headers_for(other, Role.OPERATOR))
        )
        == b'{"note": "call back"}'
    )
    withheld = await client.post(
        "/codec/decode", json=sealed.json(), headers=headers_for(tenant_id, Role.OPERATOR)
    )
    assert withheld.json() == sealed.json()


async def test_a_payload_relabelled_for_another_tenant_does_not_decode(
    client: httpx.AsyncClient, headers_for, make_tenant, encrypted_journey: EncryptedJourney
) -> None:
    other = await make_tenant("Other Clinic")
    relabelled = as_json(encrypted_journey.input)
    relabelled["metadata"][TENANT] = base64.b64encode(str(other).encode()).decode()
    answer = await client.post(
        "/codec/decode", json={"payloads": [relabelled]}, headers=headers_for(other, Role.OPERATOR)
    )
    assert answer.status_code == 422 and "does not decrypt" in answer.text


async def test_every_decode_is_audited_naming_the_caller_and_the_workflow_and_no_payload_content(
    app,
    client: httpx.AsyncClient,
    token_for: Callable[..., str],
    tenant_id,
    make_tenant,
    system_sessionmaker: async_sessionmaker[AsyncSession],
    encrypted_journey: EncryptedJourney,
) -> None:
    other = await make_tenant("Other Clinic")
    body = {"payloads": [as_json(encrypted_journey.input)]}

    async def decode_as(tenant: uuid.UUID, sub: str, role: Role = Role.OPERATOR) -> int:
        headers = {"Authorization": f"Bearer {token_for(tenant, role, sub)}"}
        return (await client.post("/codec/decode", json=body, headers=headers)).status_code

    assert await decode_as(tenant_id, "op-own") == 200
    assert await decode_as(other, "op-other") == 200
    assert await decode_as(tenant_id, "a-viewer", Role.VIEWER) == 403
    await app.state.audit_buffer.flush()

    async def trail(tenant: uuid.UUID) -> list[AuditRecord]:
        async with system_sessionmaker() as session:
            query = select(AuditRecord).where(
                AuditRecord.tenant_id == tenant, AuditRecord.action == "codec.decode_payloads"
            )
            return list(await session.scalars(query.order_by(AuditRecord.seq)))

    instance_id = uuid.UUID(encrypted_journey.instance["id"])
    own, others = await trail(tenant_id), await trail(other)
    assert [(r.user_sub, r.outcome, r.resource_type, r.resource_id) for r in own] == [
        ("op-own", AuditOutcome.ALLOWED, "workflow:journey-instance", instance_id),
        ("op-other", AuditOutcome.DENIED, "workflow:journey-instance", instance_id),  # the owner sees it too
        ("a-viewer", AuditOutcome.DENIED, "codec", None),  # refused before reading anything
    ]
    assert [(r.user_sub, r.outcome, r.resource_id) for r in others] == [
        ("op-other", AuditOutcome.DENIED, instance_id)
    ]
    for record in own + others:
        assert record.patient_id is None and record.user_roles in (["operator"], ["viewer"])
        content = canonical_content(record)
        assert (
            b"stages" not in content and str(encrypted_journey.instance["patient_id"]).encode() not in content
        )
