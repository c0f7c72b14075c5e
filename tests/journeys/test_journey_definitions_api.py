"""Journey definitions API: create with typed stages, read, update, stages, and what is refused."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx

from tests.journeys.conftest import JOURNEYS


def journey_body(**overrides: object) -> dict:
    body: dict = {
        "name": "Post-Surgery Recovery",
        "description": "Patient journey for post-surgical care",
        "journey_type": "post_procedure",
        "is_default": False,
        "trigger_conditions": {},
        "stages": [
            {
                "name": "Day 0 welcome",
                "order_index": 1,
                "trigger_event": "immediate",
                "actions": [
                    {"type": "send_message", "channel": "whatsapp", "template_id": "post_op_welcome"}
                ],
            },
            {
                "name": "Day 1 check-in",
                "order_index": 2,
                "trigger_event": {"type": "delay", "delay": {"days": 1}},
                "actions": [{"type": "send_message", "template_id": "recovery_check_in"}],
            },
            {"name": "Coordinator call", "order_index": 3, "trigger_event": "manual", "actions": {}},
            {
                "name": "Reply to check-in",
                "order_index": 4,
                "trigger_event": {
                    "type": "reply_received",
                    "timeout": {"days": 2},
                    "on_timeout": "create_ticket",
                    "ticket": {"title": "No reply to recovery check-in", "priority": "high"},
                },
                "actions": [],
            },
        ],
    }
    body.update(overrides)
    return body


async def create(client: httpx.AsyncClient, auth: dict, **overrides: object) -> dict:
    resp = await client.post(JOURNEYS, json=journey_body(**overrides), headers=auth)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_create_journey_returns_201_with_typed_stages_in_order(
    client: httpx.AsyncClient, auth: dict
) -> None:
    data = await create(client, auth)
    assert [s["order_index"] for s in data["stages"]] == [1, 2, 3, 4]
    day0, day1, call, reply = data["stages"]
    assert day0["trigger_event"] == {"type": "immediate"}
    assert day1["trigger_event"]["delay"] == {"days": 1, "hours": 0, "minutes": 0, "seconds": 0}
    assert day1["actions"][0]["channel"] == "preferred"
    assert call["trigger_event"] == {"type": "manual"} and call["actions"] == []
    assert reply["trigger_event"]["on_timeout"] == "create_ticket"
    fetched = await client.get(f"{JOURNEYS}/{data['id']}", headers=auth)
    assert fetched.status_code == 200
    assert fetched.json()["stages"] == data["stages"]


async def test_the_references_own_example_is_accepted(client: httpx.AsyncClient, auth: dict) -> None:
    body = journey_body(
        tenant_id=None,
        stages=[{"name": "Day 1 Check-in", "order_index": 1, "trigger_event": "manual", "actions": {}}],
    )
    resp = await client.post(JOURNEYS, json=body, headers=auth)
    assert resp.status_code == 201, resp.text
    assert resp.json()["stages"][0]["actions"] == []


async def test_stages_are_returned_in_order_whatever_order_they_were_sent(
    client: httpx.AsyncClient, auth: dict
) -> None:
    stages = [{"name": f"S{i}", "order_index": i, "trigger_event": "manual"} for i in (5, 1, 3)]
    data = await create(client, auth, stages=stages)
    assert [s["name"] for s in data["stages"]] == ["S1", "S3", "S5"]


async def test_unknown_trigger_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    stages = [{"name": "x", "order_index": 1, "trigger_event": {"type": "full_moon"}}]
    resp = await client.post(JOURNEYS, json=journey_body(stages=stages), headers=auth)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"][:4] == ["body", "stages", 0, "trigger_event"]


async def test_unknown_plain_string_trigger_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    stages = [{"name": "x", "order_index": 1, "trigger_event": "whenever"}]
    resp = await client.post(JOURNEYS, json=journey_body(stages=stages), headers=auth)
    assert resp.status_code == 422


async def test_unknown_action_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    stages = [{"name": "x", "order_index": 1, "actions": [{"type": "send_carrier_pigeon"}]}]
    resp = await client.post(JOURNEYS, json=journey_body(stages=stages), headers=auth)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"][:5] == ["body", "stages", 0, "actions", 0]


async def test_message_missing_a_template_variable_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    action: dict[str, object] = {
        "type": "send_message",
        "template_id": "lab_results_ready",
    }  # needs test_name
    stages = [{"name": "x", "order_index": 1, "actions": [action]}]
    resp = await client.post(JOURNEYS, json=journey_body(stages=stages), headers=auth)
    assert resp.status_code == 422
    assert "test_name" in resp.json()["detail"][0]["msg"]
    action["variables"] = {"test_name": "lipid panel"}
    assert (await client.post(JOURNEYS, json=journey_body(stages=stages), headers=auth)).status_code == 201


async def test_literal_text_missing_a_variable_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    action = {"type": "send_message", "text": "Hi {{ patient_first_name }}, bring {{ document }}."}
    stages = [{"name": "x", "order_index": 1, "actions": [action]}]
    resp = await client.post(JOURNEYS, json=journey_body(stages=stages), headers=auth)
    assert resp.status_code == 422
    assert "document" in resp.json()["detail"][0]["msg"]


async def test_unknown_template_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    stages = [{"name": "x", "order_index": 1, "actions": [{"type": "send_message", "template_id": "nope"}]}]
    assert (await client.post(JOURNEYS, json=journey_body(stages=stages), headers=auth)).status_code == 422


async def test_duplicate_order_index_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    stages = [{"name": "a", "order_index": 1}, {"name": "b", "order_index": 1}]
    resp = await client.post(JOURNEYS, json=journey_body(stages=stages), headers=auth)
    assert resp.status_code == 422
    assert "order_index" in resp.json()["detail"][0]["msg"]


async def test_zero_delay_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    stages = [{"name": "a", "order_index": 1, "trigger_event": {"type": "delay", "delay": {"days": 0}}}]
    assert (await client.post(JOURNEYS, json=journey_body(stages=stages), headers=auth)).status_code == 422


async def test_patch_changes_only_the_fields_sent(client: httpx.AsyncClient, auth: dict) -> None:
    data = await create(client, auth)
    resp = await client.patch(f"{JOURNEYS}/{data['id']}", json={"is_default": True}, headers=auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["is_default"] is True
    assert resp.json()["name"] == data["name"] and len(resp.json()["stages"]) == 4
    assert (
        await client.patch(f"{JOURNEYS}/{data['id']}", json={"stages": []}, headers=auth)
    ).status_code == 422


async def test_add_and_update_a_stage(client: httpx.AsyncClient, auth: dict) -> None:
    data = await create(client, auth)
    new = {
        "name": "Feedback",
        "order_index": 9,
        "trigger_event": {"type": "after_appointment", "offset": {"hours": 2}},
        "actions": [{"type": "send_message", "channel": "email", "template_id": "feedback_request"}],
    }
    resp = await client.post(f"{JOURNEYS}/{data['id']}/stages", json=new, headers=auth)
    assert resp.status_code == 201, resp.text
    stage = resp.json()
    patched = await client.patch(
        f"{JOURNEYS}/{data['id']}/stages/{stage['id']}",
        json={"trigger_event": {"type": "delay", "delay": {"seconds": 90}}},
        headers=auth,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["trigger_event"]["delay"]["seconds"] == 90
    assert patched.json()["actions"] == stage["actions"]
    stages = (await client.get(f"{JOURNEYS}/{data['id']}", headers=auth)).json()["stages"]
    assert [s["order_index"] for s in stages] == [1, 2, 3, 4, 9]


async def test_adding_a_stage_with_a_taken_order_index_is_409(client: httpx.AsyncClient, auth: dict) -> None:
    data = await create(client, auth)
    resp = await client.post(
        f"{JOURNEYS}/{data['id']}/stages", json={"name": "x", "order_index": 2}, headers=auth
    )
    assert resp.status_code == 409
    first = data["stages"][0]["id"]
    moved = await client.patch(
        f"{JOURNEYS}/{data['id']}/stages/{first}", json={"order_index": 3}, headers=auth
    )
    assert moved.status_code == 409


async def test_stage_update_refuses_an_unknown_action(client: httpx.AsyncClient, auth: dict) -> None:
    data = await create(client, auth)
    first = data["stages"][0]["id"]
    resp = await client.patch(
        f"{JOURNEYS}/{data['id']}/stages/{first}", json={"actions": [{"type": "teleport"}]}, headers=auth
    )
    assert resp.status_code == 422


async def test_list_filters_by_type_and_default(client: httpx.AsyncClient, auth: dict) -> None:
    await create(client, auth, journey_type="onboarding", is_default=True, name="Onboarding")
    await create(client, auth, journey_type="post_procedure")
    resp = await client.get(JOURNEYS, params={"journey_type": "onboarding"}, headers=auth)
    body = resp.json()
    assert resp.status_code == 200 and body["total"] == 1 and body["items"][0]["name"] == "Onboarding"
    assert (await client.get(JOURNEYS, params={"is_default": False}, headers=auth)).json()["total"] == 1
    paged = (await client.get(JOURNEYS, params={"page_size": 1}, headers=auth)).json()
    assert (paged["total"], paged["has_next"], len(paged["items"][0]["stages"])) == (2, True, 4)


async def test_foreign_tenant_filter_is_403(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.get(JOURNEYS, params={"tenant_id": str(uuid.uuid4())}, headers=auth)
    assert resp.status_code == 403


async def test_other_tenant_gets_404_for_journey_and_stages(
    client: httpx.AsyncClient, auth: dict, make_tenant: Callable, headers_for: Callable
) -> None:
    data = await create(client, auth)
    other = headers_for(await make_tenant())
    stage_id = data["stages"][0]["id"]
    assert (await client.get(f"{JOURNEYS}/{data['id']}", headers=other)).status_code == 404
    assert (
        await client.patch(f"{JOURNEYS}/{data['id']}", json={"name": "x"}, headers=other)
    ).status_code == 404
    added = await client.post(
        f"{JOURNEYS}/{data['id']}/stages", json={"name": "x", "order_index": 7}, headers=other
    )
    assert added.status_code == 404
    patched = await client.patch(
        f"{JOURNEYS}/{data['id']}/stages/{stage_id}", json={"name": "x"}, headers=other
    )
    assert patched.status_code == 404
    assert (await client.get(JOURNEYS, headers=other)).json()["total"] == 0


async def test_openapi_documents_every_trigger_and_action(app: object) -> None:
    schemas = app.openapi()["components"]["schemas"]  # type: ignore[attr-defined]
    for name in (
        "ManualTrigger",
        "DelayTrigger",
        "ReplyReceivedTrigger",
        "SendMessageAction",
        "WaitForReplyAction",
    ):
        assert name in schemas
