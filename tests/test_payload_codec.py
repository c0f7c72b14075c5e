"""The payload codec (core.codec): AES-GCM per payload under its tenant's key, keys named in the payload,
rotation per tenant, and how the encoder learns whose a payload is."""

from __future__ import annotations

import base64
import uuid

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.converter import ActivitySerializationContext, WorkflowSerializationContext

from api.app import create_app
from core.codec import (
    ENCODING,
    EVERY_TENANT,
    KEY_ID,
    NO_TENANT,
    TENANT,
    WORKFLOW,
    CodecError,
    EncryptionCodec,
    new_key_setting,
    parse_keys,
    payloads_for_tenant,
)
from core.settings import Settings
from tests.problems import unprocessable

TENANT_A, TENANT_B = str(uuid.uuid4()), str(uuid.uuid4())
PLAIN = Payload(
    metadata={"encoding": b"json/plain"}, data=f'{{"tenant_id": "{TENANT_A}", "instance_id": "i-1"}}'.encode()
)
RESULT = Payload(metadata={"encoding": b"json/plain"}, data=b'"completed"')  # names no tenant
WORKFLOW_ID = f"journey-instance-{uuid.uuid4()}"


def in_workflow(codec: EncryptionCodec, workflow_id: str = WORKFLOW_ID) -> EncryptionCodec:
    """The codec as the SDK hands it a workflow's payloads."""
    return codec.with_context(WorkflowSerializationContext(namespace="default", workflow_id=workflow_id))


async def test_a_payload_round_trips_and_is_ciphertext_in_between() -> None:
    codec = EncryptionCodec.from_setting(new_key_setting("k1"))
    (sealed,) = await codec.encode([PLAIN])
    assert sealed.metadata["encoding"] == ENCODING and sealed.metadata[KEY_ID] == b"k1"
    assert b"tenant_id" not in sealed.data and b"i-1" not in sealed.data
    assert await codec.decode([sealed]) == [PLAIN]
    (again,) = await codec.encode([PLAIN])
    assert again.data != sealed.data  # a fresh nonce every time


async def test_after_a_rotation_old_payloads_still_decrypt_and_new_ones_use_the_new_key() -> None:
    old = new_key_setting("k1")
    (sealed_before,) = await EncryptionCodec.from_setting(old).encode([PLAIN])
    rotated = EncryptionCodec.from_setting(f"{new_key_setting('k2')},{old}")
    (sealed_after,) = await rotated.encode([PLAIN])
    assert sealed_after.metadata[KEY_ID] == b"k2"
    assert await rotated.decode([sealed_before, sealed_after]) == [PLAIN, PLAIN]


async def test_an_unknown_key_or_altered_ciphertext_is_refused_and_clear_payloads_pass_through() -> None:
    codec = EncryptionCodec.from_setting(new_key_setting("k1"))
    (sealed,) = await EncryptionCodec.from_setting(new_key_setting("k9")).encode([PLAIN])
    with pytest.raises(CodecError, match="unknown key 'k9'"):
        await codec.decode([sealed])
    (mine,) = await codec.encode([PLAIN])
    altered = Payload(metadata=mine.metadata, data=mine.data[:-1] + bytes([mine.data[-1] ^ 1]))
    with pytest.raises(CodecError, match="does not decrypt"):
        await codec.decode([altered])
    assert await codec.decode([PLAIN]) == [PLAIN]  # written before the keys were set


async def test_a_payload_is_sealed_for_the_tenant_it_names_and_only_that_tenant_reads_it() -> None:
    codec = EncryptionCodec.from_setting(new_key_setting("k1"))
    (sealed,) = await codec.encode([PLAIN])
    assert sealed.metadata[TENANT] == TENANT_A.encode()
    (mine,), [account] = await codec.read([sealed], TENANT_A)
    assert mine == PLAIN and account.disclosed and account.tenant_id == TENANT_A
    (theirs,), [account] = await codec.read([sealed], TENANT_B)
    assert theirs == sealed and not account.disclosed and account.tenant_id == TENANT_A
    relabelled = Payload(metadata={**sealed.metadata, TENANT: TENANT_B.encode()}, data=sealed.data)
    with pytest.raises(CodecError, match="does not decrypt"):  # B's key does not open A's payload
        await codec.read([relabelled], TENANT_B)
    elsewhere = Payload(metadata={**sealed.metadata, WORKFLOW: b"ticket-x"}, data=sealed.data)
    with pytest.raises(
        CodecError, match="does not decrypt"
    ):  # nor does an audit record name a false workflow
        await codec.read([elsewhere], TENANT_B)


async def test_keys_rotate_per_tenant_old_payloads_decode_after_a_new_key_is_put_first() -> None:
    old = new_key_setting("k1")
    (before,) = await EncryptionCodec.from_setting(old).encode([PLAIN])
    rotated = EncryptionCodec.from_setting(f"{new_key_setting('k2')},{old}")
    (after,) = await rotated.encode([PLAIN])
    assert (after.metadata[KEY_ID], after.metadata[TENANT]) == (b"k2", TENANT_A.encode())
    answered, accounts = await rotated.read([before, after], TENANT_A)
    assert answered == [PLAIN, PLAIN] and all(a.disclosed for a in accounts)
    answered, _ = await rotated.read([before, after], TENANT_B)
    assert answered == [before, after]


async def test_a_workflows_result_is_sealed_for_the_tenant_its_input_named() -> None:
    setting = new_key_setting("k1")
    client = in_workflow(EncryptionCodec.from_setting(setting))
    (sealed_input,) = await client.encode([PLAIN])
    assert sealed_input.metadata[WORKFLOW] == WORKFLOW_ID.encode()
    # The worker (another process) decodes the workflow's input before it encodes anything of it.
    worker = EncryptionCodec.from_setting(setting)
    await in_workflow(worker).decode([sealed_input])
    (result,) = await in_workflow(worker).encode([RESULT])
    assert (result.metadata[TENANT], result.metadata[WORKFLOW]) == (TENANT_A.encode(), WORKFLOW_ID.encode())
    activity = worker.with_context(
        ActivitySerializationContext(
            namespace="default",
            activity_id="1",
            activity_type="record_stage_status",
            activity_task_queue="q",
            workflow_id=WORKFLOW_ID,
            workflow_type="JourneyInstanceWorkflow",
            is_local=False,
        )
    )
    (activity_result,) = await activity.encode([RESULT])
    assert activity_result.metadata[TENANT] == TENANT_A.encode()
    assert (await worker.read([result], TENANT_B))[0] == [result]


async def test_a_signal_is_sealed_for_the_tenant_its_sender_names() -> None:
    codec = in_workflow(EncryptionCodec.from_setting(new_key_setting("k1")), f"appointment-{uuid.uuid4()}")
    with payloads_for_tenant(uuid.UUID(TENANT_B)):
        (signal,) = await codec.encode([RESULT])
    assert signal.metadata[TENANT] == TENANT_B.encode()


async def test_a_payload_of_no_known_tenant_is_readable_by_the_worker_and_by_no_tenant() -> None:
    codec = in_workflow(EncryptionCodec.from_setting(new_key_setting("k1")), f"ticket-{uuid.uuid4()}")
    (sealed,) = await codec.encode([RESULT])
    assert sealed.metadata[TENANT] == NO_TENANT.encode()
    assert await codec.decode([sealed]) == [RESULT]
    assert (await codec.read([sealed], TENANT_A))[0] == [sealed]
    assert (await codec.read([sealed], EVERY_TENANT))[0] == [RESULT]  # the local development UI


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("k1", "id:base64"),
        ("k1:not base64!", "not valid base64"),
        ("k1:c2hvcnQ=", "32 bytes"),
        (" , ", "no key"),
    ],
)
def test_a_malformed_key_setting_is_refused_without_echoing_the_key(setting: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_keys(setting)
    with pytest.raises(ValueError) as raised:
        Settings(payload_encryption_keys=setting)
    assert "c2hvcnQ" not in str(raised.value)


async def _codec_answer(
    database_url: str, settings: Settings, client_host: str, **headers: str
) -> httpx.Response:
    app = create_app(settings, database_url=database_url)
    codec = EncryptionCodec.from_setting(settings.payload_encryption_keys or "")
    (sealed,) = await codec.encode([PLAIN])
    body = {"payloads": [json_format.MessageToDict(sealed)]}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(client_host, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post("/codec/decode", json=body, headers=headers)


async def test_the_local_development_ui_decodes_without_a_token_and_nothing_else_does(
    database_url, settings
) -> None:
    keys = {"payload_encryption_keys": new_key_setting()}
    development = settings.model_copy(update={"env": "development", **keys})
    local = await _codec_answer(database_url, development, "127.0.0.1")
    assert local.status_code == 200
    (clear,) = local.json()["payloads"]
    assert b"tenant_id" in base64.b64decode(clear["data"])  # it reads every tenant's
    assert (await _codec_answer(database_url, development, "203.0.113.5")).status_code == 401
    tested = settings.model_copy(update=keys)  # any other environment: a token, always
    assert (await _codec_answer(database_url, tested, "127.0.0.1")).status_code == 401


async def test_cors_lets_the_temporal_ui_origin_call_the_codec_and_no_other(
    client: httpx.AsyncClient,
) -> None:
    def preflight(origin: str) -> dict:
        return {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
        }

    allowed = await client.options("/codec/decode", headers=preflight("http://localhost:8233"))
    assert allowed.headers.get("access-control-allow-origin") == "http://localhost:8233"
    refused = await client.options("/codec/decode", headers=preflight("https://evil.example"))
    assert "access-control-allow-origin" not in refused.headers


async def test_payloads_that_are_not_base64_are_422(
    client: httpx.AsyncClient, tenant_id, headers_for
) -> None:
    body = {"payloads": [{"metadata": {"encoding": "not base64!"}, "data": ""}]}
    resp = await client.post("/codec/decode", json=body, headers=headers_for(tenant_id, "admin"))
    assert resp.status_code == 422 and "base64" in unprocessable(resp)
