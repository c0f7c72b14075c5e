"""Journey messages that name the tenant's own templates: checked when saved, kept by each instance."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import update
from temporalio.testing import WorkflowEnvironment

from activities import ActivityDeps
from activities.journeys import JourneyActivities
from domain.journeys.models import JourneyInstance
from domain.journeys.plan import ActionInput
from tests.journeys.app_support import journey_worker
from tests.journeys.conftest import INSTANCES, JOURNEYS, Clinic
from tests.journeys.helpers import activity_env, add_tenant_template, create_instance, send, start
from tests.problems import unprocessable

TEMPLATES = "/api/v1/prm/communications/templates"
WOUND_CHECK = "Hi {{ patient_first_name }}, please send a photo of your {{ wound_site }} today."


async def define_template(
    client: httpx.AsyncClient, auth: dict, key: str = "wound_check", **fields: Any
) -> dict[str, Any]:
    body = {
        "id": key,
        "name": "Wound check",
        "channel": "sms",
        "category": "follow_up",
        "subject": "Wound check",
        "body": WOUND_CHECK,
        **fields,
    }
    resp = await client.post(TEMPLATES, json=body, headers=auth)
    assert resp.status_code == 201, resp.text
    return resp.json()


def journey(*actions: dict[str, Any], order_index: int = 1) -> dict[str, Any]:
    """A journey body whose one stage (`order_index`) runs `actions`."""
    stage = {"name": "Check-in", "order_index": order_index, "actions": list(actions)}
    return {"name": f"Recovery {uuid.uuid4().hex[:6]}", "stages": [stage]}


def wound_check(**extra: Any) -> dict[str, Any]:
    """A message naming the `wound_check` template with the variable it needs."""
    return send("wound_check", variables={"wound_site": "knee"}, **extra)


def run(instance: JourneyInstance, order_index: int = 1, action_index: int = 0) -> ActionInput:
    return ActionInput(str(instance.tenant_id), str(instance.id), order_index, action_index)


# ---- saving a definition ------------------------------------------------------------------------------


async def test_journey_naming_an_active_tenant_template_is_201(client: httpx.AsyncClient, auth: dict) -> None:
    await define_template(client, auth)
    resp = await client.post(JOURNEYS, json=journey(send(), wound_check()), headers=auth)
    assert resp.status_code == 201, resp.text
    actions = resp.json()["stages"][0]["actions"]
    assert [a["template_id"] for a in actions] == ["post_op_welcome", "wound_check"]


async def test_unknown_template_is_422_naming_the_stage_and_action(
    client: httpx.AsyncClient, auth: dict
) -> None:
    body = journey(send(), send("wound_chek"), order_index=3)
    resp = await client.post(JOURNEYS, json=body, headers=auth)
    assert resp.status_code == 422
    detail = unprocessable(resp)
    assert "Stage 3, action 1" in detail and "'wound_chek'" in detail
    assert (await client.get(JOURNEYS, headers=auth)).json()["total"] == 0


async def test_another_tenants_template_is_422(
    client: httpx.AsyncClient, auth: dict, make_tenant: Callable, headers_for: Callable
) -> None:
    await define_template(client, headers_for(await make_tenant()))
    resp = await client.post(JOURNEYS, json=journey(wound_check()), headers=auth)
    assert resp.status_code == 422
    assert "Stage 1, action 0" in unprocessable(resp) and "'wound_check'" in unprocessable(resp)


async def test_inactive_template_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    await define_template(client, auth, is_active=False)
    resp = await client.post(JOURNEYS, json=journey(wound_check()), headers=auth)
    assert resp.status_code == 422
    assert "active template" in unprocessable(resp)


async def test_missing_template_variable_is_422_but_system_variables_are_filled(
    client: httpx.AsyncClient, auth: dict
) -> None:
    await define_template(client, auth)
    resp = await client.post(JOURNEYS, json=journey(send("wound_check")), headers=auth)
    assert resp.status_code == 422
    detail = unprocessable(resp)
    assert "Stage 1, action 0" in detail and "wound_site" in detail
    assert "patient_first_name" not in detail


async def test_built_in_templates_keep_their_own_checks(client: httpx.AsyncClient, auth: dict) -> None:
    resp = await client.post(JOURNEYS, json=journey(send("lab_results_ready")), headers=auth)
    assert resp.status_code == 422 and "test_name" in resp.json()["detail"][0]["msg"]
    ok = journey(send("lab_results_ready", variables={"test_name": "lipid panel"}))
    assert (await client.post(JOURNEYS, json=ok, headers=auth)).status_code == 201


async def test_adding_a_stage_checks_its_templates(client: httpx.AsyncClient, auth: dict) -> None:
    await define_template(client, auth)
    created = (await client.post(JOURNEYS, json=journey(send()), headers=auth)).json()
    stages = f"{JOURNEYS}/{created['id']}/stages"
    bad = {"name": "Day 2", "order_index": 2, "actions": [send(), send("nope")]}
    resp = await client.post(stages, json=bad, headers=auth)
    assert resp.status_code == 422 and "Stage 2, action 1" in unprocessable(resp)
    missing = {"name": "Day 2", "order_index": 2, "actions": [send("wound_check")]}
    assert (await client.post(stages, json=missing, headers=auth)).status_code == 422
    good = {"name": "Day 2", "order_index": 2, "actions": [wound_check()]}
    assert (await client.post(stages, json=good, headers=auth)).status_code == 201


async def test_updating_a_stage_checks_its_templates(
    client: httpx.AsyncClient, auth: dict, make_tenant: Callable, headers_for: Callable
) -> None:
    await define_template(client, headers_for(await make_tenant()), key="theirs")
    await define_template(client, auth)
    created = (await client.post(JOURNEYS, json=journey(send(), order_index=4), headers=auth)).json()
    stage = f"{JOURNEYS}/{created['id']}/stages/{created['stages'][0]['id']}"
    resp = await client.patch(stage, json={"actions": [send(), send("theirs")]}, headers=auth)
    assert resp.status_code == 422 and "Stage 4, action 1" in unprocessable(resp)
    resp = await client.patch(stage, json={"order_index": 7, "actions": [send("wound_check")]}, headers=auth)
    assert resp.status_code == 422 and "Stage 7, action 0" in unprocessable(resp)
    resp = await client.patch(stage, json={"actions": [wound_check()]}, headers=auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["actions"][0]["template_id"] == "wound_check"
    assert (await client.patch(stage, json={"name": "Renamed"}, headers=auth)).status_code == 200


async def test_placing_a_patient_on_a_journey_whose_template_was_deactivated_is_409(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> None:
    await define_template(client, auth)
    created = (await client.post(JOURNEYS, json=journey(wound_check()), headers=auth)).json()
    off = await client.patch(f"{TEMPLATES}/wound_check", json={"is_active": False}, headers=auth)
    assert off.status_code == 200, off.text
    body = {"journey_id": created["id"], "patient_id": str(clinic.patient_id)}
    resp = await client.post(INSTANCES, json=body, headers=auth)
    assert resp.status_code == 409
    assert "Stage 1, action 0" in resp.json()["detail"] and "'wound_check'" in resp.json()["detail"]
    assert await clinic.count_instances() == 0


# ---- what an instance keeps and sends -----------------------------------------------------------------


async def test_the_snapshot_keeps_the_tenant_templates_its_actions_name(clinic: Clinic) -> None:
    await add_tenant_template(clinic, "wound_check", WOUND_CHECK, subject="Wound check")
    await add_tenant_template(clinic, "unused", "Not named by the journey.")
    instance = await create_instance(
        clinic, [{"name": "x", "order_index": 1, "actions": [send(), wound_check()]}]
    )
    kept = instance.definition_snapshot["templates"]
    assert set(kept) == {"wound_check"}
    (variant,) = kept["wound_check"]["variants"]
    assert (variant["body"], variant["language"]) == (WOUND_CHECK, "en")
    assert (variant["subject"], variant["channel"]) == ("Wound check", "sms")
    assert variant["name"] == "Wound Check"


async def test_a_running_instance_keeps_the_text_it_started_with_and_a_new_one_uses_the_new_text(
    client: httpx.AsyncClient,
    auth: dict,
    clinic: Clinic,
    activity_deps: ActivityDeps,
    temporal_env: WorkflowEnvironment,
) -> None:
    await define_template(client, auth)
    stages = [{"name": "Check-in", "order_index": 1, "actions": [wound_check(channel="sms")]}]
    before = await create_instance(clinic, stages)
    edited = await client.patch(
        f"{TEMPLATES}/wound_check", json={"body": "Hello {{ patient_first_name }}, new text."}, headers=auth
    )
    assert edited.status_code == 200, edited.text
    after = await create_instance(clinic, stages)
    async with journey_worker(temporal_env.client, activity_deps, "ts-tenant-templates"):
        for instance in (before, after):
            handle = await start(temporal_env.client, "ts-tenant-templates", instance)
            assert await handle.result() == "completed"
    (old,) = await clinic.communications(before.id)
    (new,) = await clinic.communications(after.id)
    assert old.message == "Hi Maria, please send a photo of your knee today."
    assert new.message == "Hello Maria, new text."
    assert (old.template_name, new.template_name) == ("wound_check", "wound_check")
    assert (old.channel, old.status, old.subject) == ("sms", "sent", "Wound check")


async def test_a_deleted_template_still_sends_from_the_instances_copy(
    client: httpx.AsyncClient,
    auth: dict,
    clinic: Clinic,
    activity_deps: ActivityDeps,
    temporal_env: WorkflowEnvironment,
) -> None:
    await define_template(client, auth, channel="email", subject="Your {{ wound_site }}")
    instance = await create_instance(
        clinic, [{"name": "x", "order_index": 1, "actions": [wound_check(channel="email")]}]
    )
    assert (await client.delete(f"{TEMPLATES}/wound_check", headers=auth)).status_code == 204
    env = activity_env(temporal_env.client)
    assert await env.run(JourneyActivities(activity_deps).send_journey_message, run(instance))
    (message,) = await clinic.communications(instance.id)
    assert (message.template_name, message.subject) == ("wound_check", "Your knee")
    assert message.message == "Hi Maria, please send a photo of your knee today."
    assert message.template_vars == {"wound_site": "knee"}


async def test_an_old_snapshot_naming_an_unknown_template_fails_the_stage_with_a_readable_reason(
    clinic: Clinic, activity_deps: ActivityDeps, temporal_env: WorkflowEnvironment
) -> None:
    await add_tenant_template(clinic, "wound_check", WOUND_CHECK)
    instance = await create_instance(clinic, [{"name": "x", "order_index": 1, "actions": [wound_check()]}])
    snapshot = {k: v for k, v in instance.definition_snapshot.items() if k != "templates"}
    async with await clinic.session() as session:  # as instances created before snapshots kept templates
        await session.execute(
            update(JourneyInstance)
            .where(JourneyInstance.id == instance.id)
            .values(definition_snapshot=snapshot)
        )
        await session.commit()
    async with journey_worker(temporal_env.client, activity_deps, "ts-old-snapshot"):
        handle = await start(temporal_env.client, "ts-old-snapshot", instance)
        assert await handle.result() == "failed"
    (stage,) = await clinic.stages(instance.id)
    assert stage.status == "failed"
    assert stage.notes is not None and "names template 'wound_check'" in stage.notes
    assert "Maria" not in stage.notes
    assert await clinic.communications(instance.id) == []
    assert (await clinic.instance(instance.id)).status == "failed"
