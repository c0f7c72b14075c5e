"""Advancing a manual stage happens once: concurrent and repeated requests never push a patient past the
next coordinator's gate (issue 12).

The journey is [manual, send_message, manual], run by the real workflow on the Temporal dev server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities import ActivityDeps
from activities.journeys import JourneyActivities
from domain.journeys.plan import ActionInput, journey_workflow_id
from tests.journeys.api_support import define, stage_statuses, started, statuses_become
from tests.journeys.app_support import Wired, app_on
from tests.journeys.conftest import INSTANCES, LEGACY_INSTANCES, Clinic
from tests.journeys.helpers import send
from tests.polling import eventually

GATED = {
    "name": "Gated instructions",
    "stages": [
        {"name": "Coordinator review", "order_index": 1, "trigger_event": "manual"},
        {"name": "Instructions", "order_index": 2, "actions": [send()]},
        {"name": "Coordinator sign-off", "order_index": 3, "trigger_event": "manual"},
    ],
}
REVIEW_WAITING = ["active", "pending", "pending"]
SIGN_OFF_WAITING = ["completed", "completed", "active"]


class HeldMessages(JourneyActivities):
    """The journey activities, with every message held until the test releases them."""

    def __init__(self, deps: ActivityDeps) -> None:
        super().__init__(deps)
        self.release = asyncio.Event()

    @activity.defn(name="journey_send_message")
    async def send_journey_message(self, data: ActionInput) -> str | None:
        """Send the message once the test lets it go."""
        await self.release.wait()
        return await super().send_journey_message(data)


async def waiting_instance(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic
) -> tuple[str, list[dict[str, Any]]]:
    """The clinic's patient on the gated journey, its first manual stage waiting: (instance id, stages)."""
    iid = (await started(client, auth, await define(client, auth, GATED), clinic.patient_id))["id"]
    await eventually(statuses_become(client, auth, iid, REVIEW_WAITING))
    return iid, (await client.get(f"{INSTANCES}/{iid}", headers=auth)).json()["stages"]


async def advance_at_once(
    client: httpx.AsyncClient, auth: dict, iid: str, body: dict[str, Any], times: int = 20
) -> list[httpx.Response]:
    """`times` advance requests sent together (half through the legacy `/instances` path)."""
    paths = [INSTANCES if i % 2 else LEGACY_INSTANCES for i in range(times)]
    return list(
        await asyncio.gather(*(client.post(f"{p}/{iid}/advance", json=body, headers=auth) for p in paths))
    )


async def position(env: WorkflowEnvironment, iid: str) -> int:
    """The index of the stage the instance's workflow is on."""
    handle = env.client.get_workflow_handle(journey_workflow_id(iid))
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    return int(await handle.query("position"))


async def test_twenty_concurrent_advances_naming_a_stage_advance_it_once(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic, on_dev_server: Wired
) -> None:
    iid, stages = await waiting_instance(client, auth, clinic)

    responses = await advance_at_once(client, auth, iid, {"stage_id": stages[0]["stage_id"]})

    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 19, [r.text for r in responses if r.status_code != 409]
    (won,) = [r.json() for r in responses if r.status_code == 200]
    assert won["advanced_stage"] == {
        "stage_id": stages[0]["stage_id"],
        "order_index": 1,
        "name": "Coordinator review",
    }
    for refused in (r.json() for r in responses if r.status_code == 409):
        assert refused["current_stage"]["order_index"] in (1, 2, 3), refused
        assert f'"{refused["current_stage"]["name"]}"' in refused["detail"]
    # The message goes out, and the sign-off stage waits for a coordinator: nobody advanced it.
    await eventually(statuses_become(client, auth, iid, SIGN_OFF_WAITING))
    assert await position(on_dev_server.env, iid) == 2
    assert len(await clinic.communications(iid)) == 1


async def test_twenty_concurrent_advances_without_a_stage_advance_one_stage(
    app: Any,
    client: httpx.AsyncClient,
    auth: dict,
    clinic: Clinic,
    dev_env: WorkflowEnvironment,
    activity_deps: ActivityDeps,
) -> None:
    # The message is held until every request has been answered, so none of them can find the sign-off
    # stage waiting (a request made once it waits would advance it, as a request naming no stage should).
    held = HeldMessages(activity_deps)
    async with app_on(app, dev_env, activity_deps, held):
        iid, _ = await waiting_instance(client, auth, clinic)

        try:
            responses = await advance_at_once(client, auth, iid, {})
        finally:
            held.release.set()

        codes = sorted(r.status_code for r in responses)
        assert codes == [200] + [409] * 19, [r.text for r in responses if r.status_code != 409]
        (won,) = [r.json() for r in responses if r.status_code == 200]
        assert won["advanced_stage"]["order_index"] == 1
        await eventually(statuses_become(client, auth, iid, SIGN_OFF_WAITING))
        assert await position(dev_env, iid) == 2


async def test_naming_a_stage_that_is_not_waiting_is_409_naming_the_current_one(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic, on_dev_server: Wired
) -> None:
    iid, _ = await waiting_instance(client, auth, clinic)

    resp = await client.post(f"{INSTANCES}/{iid}/advance", json={"order_index": 3}, headers=auth)

    assert resp.status_code == 409, resp.text
    assert resp.json()["current_stage"] == {"order_index": 1, "name": "Coordinator review"}
    assert 'order_index 1, "Coordinator review"' in resp.json()["detail"]
    assert await stage_statuses(client, auth, iid) == REVIEW_WAITING


async def test_naming_no_stage_of_the_instance_is_422(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic, on_dev_server: Wired
) -> None:
    iid, stages = await waiting_instance(client, auth, clinic)

    for body in (
        {"order_index": 7},
        {"stage_id": str(uuid.uuid4())},
        {"stage_id": stages[0]["stage_id"], "order_index": 3},
    ):
        resp = await client.post(f"{INSTANCES}/{iid}/advance", json=body, headers=auth)
        assert resp.status_code == 422, (body, resp.text)
    assert await stage_statuses(client, auth, iid) == REVIEW_WAITING


async def test_a_request_naming_no_stage_advances_the_one_waiting(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic, on_dev_server: Wired
) -> None:
    iid, _ = await waiting_instance(client, auth, clinic)

    resp = await client.post(f"{INSTANCES}/{iid}/advance", json={"notes": "Reviewed"}, headers=auth)

    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "active"
    assert resp.json()["advanced_stage"]["name"] == "Coordinator review"
    await eventually(statuses_become(client, auth, iid, SIGN_OFF_WAITING))
    assert (await clinic.stages(iid))[0].notes == "Reviewed"


async def test_a_repeated_request_with_the_same_idempotency_key_returns_the_first_result(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic, on_dev_server: Wired
) -> None:
    iid, _ = await waiting_instance(client, auth, clinic)
    keyed = {**auth, "Idempotency-Key": f"advance-{uuid.uuid4()}"}
    first = await client.post(f"{INSTANCES}/{iid}/advance", json={"notes": "Reviewed"}, headers=keyed)
    assert first.status_code == 200, first.text
    await eventually(statuses_become(client, auth, iid, SIGN_OFF_WAITING))

    # The client never saw the answer and sends the same request again, now that sign-off is waiting.
    again = await client.post(f"{INSTANCES}/{iid}/advance", json={"notes": "Reviewed"}, headers=keyed)

    assert again.status_code == 200, again.text
    assert again.json()["advanced_stage"] == first.json()["advanced_stage"]
    assert again.json()["id"] == first.json()["id"] and again.json()["status"] == "active"
    assert await stage_statuses(client, auth, iid) == SIGN_OFF_WAITING
    assert await position(on_dev_server.env, iid) == 2
    assert (await clinic.stages(iid))[0].notes == "Reviewed"


async def test_a_repeated_request_after_the_journey_completed_returns_the_first_result(
    client: httpx.AsyncClient, auth: dict, clinic: Clinic, on_dev_server: Wired
) -> None:
    iid, _ = await waiting_instance(client, auth, clinic)
    assert (await client.post(f"{INSTANCES}/{iid}/advance", json={}, headers=auth)).status_code == 200
    await eventually(statuses_become(client, auth, iid, SIGN_OFF_WAITING))
    keyed = {**auth, "Idempotency-Key": f"advance-{uuid.uuid4()}"}
    last = await client.post(f"{INSTANCES}/{iid}/advance", json={"order_index": 3}, headers=keyed)
    assert last.status_code == 200 and last.json()["status"] == "completed", last.text

    again = await client.post(f"{INSTANCES}/{iid}/advance", json={"order_index": 3}, headers=keyed)

    assert again.status_code == 200, again.text
    assert again.json() == last.json()
    unkeyed = await client.post(f"{INSTANCES}/{iid}/advance", json={"order_index": 3}, headers=auth)
    assert unkeyed.status_code == 409 and "completed" in unkeyed.json()["detail"]
