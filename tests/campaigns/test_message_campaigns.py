"""A one-off message campaign: each member sent the message once through the one send path, from the
campaign's batch activity (no delivery workflow per patient unless a message must wait), members who opted
out of the channel or have no address for it skipped and counted."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from core.database import bind_tenant
from core.workflow_commands import WorkflowCommand
from domain.communications.models import Communication
from tests.campaigns.support import API, campaign, cohort_of_everyone, launch, members, result_of
from tests.communications.support import set_tenant

TEXT = "Flu shots are in: reply BOOK and we will find you a time."


async def test_a_message_campaign_sends_each_member_once_from_its_batches_and_skips_by_reason(
    client, auth, clinic, temporal_env, temporal_worker, system_sessionmaker, tenant_id
) -> None:
    await set_tenant(system_sessionmaker, tenant_id, quiet_hours={"enabled": False})  # any time of day
    reached = await clinic.patient(last_name="Reached", phone_primary="+14155550101")
    stopped = await clinic.patient(last_name="Stopped", phone_primary="+14155550102")
    await clinic.consent(stopped, "sms", opted_out=True)
    await clinic.patient(last_name="NoPhone")
    await clinic.patient(last_name="Gone", phone_primary="+14155550104", status="inactive")
    launched = await launch(
        client,
        auth,
        cohort_id=await cohort_of_everyone(client, auth),
        message={"channel": "sms", "message": TEXT},
        journey_id=None,
    )
    assert launched["message"] == {"channel": "sms", "template_name": None, "message": TEXT}
    assert await result_of(temporal_env, launched["id"]) == "completed"

    counts = (await campaign(client, auth, launched["id"]))["counts"]
    assert counts == {
        "members": 4,
        "pending": 0,
        "enrolled": 0,
        "sent": 1,
        "skipped": {"opted_out": 1, "no_contact": 1, "inactive": 1},
    }
    (member,) = [
        m for m in await members(system_sessionmaker, tenant_id, launched["id"]) if m.patient_id == reached
    ]
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        sent = list(await session.scalars(select(Communication).where(Communication.direction == "outbound")))
        (start,) = await session.scalars(
            select(WorkflowCommand).where(
                WorkflowCommand.workflow_id == f"communication-{member.communication_id}"
            )
        )
    assert [(m.id, m.patient_id, m.status, m.message) for m in sent] == [
        (member.communication_id, reached, "sent", TEXT)
    ]
    assert start.outcome == "settled"  # sent by the batch itself: its delivery workflow never started
    results = (await client.get(f"{API}/campaigns/{launched['id']}/results", headers=auth)).json()
    assert (results["sent"], results["total"]["messaged"], results["total"]["sent"]) == (1, 1, 1)


async def test_a_message_campaign_needs_a_known_template_and_exactly_one_of_journey_or_message(
    client, auth, clinic
) -> None:
    cohort = await cohort_of_everyone(client, auth)
    journey = str(await clinic.journey())
    for body, loc in (
        ({"message": {"channel": "sms", "template_name": f"nope_{uuid.uuid4().hex[:6]}"}}, "template_name"),
        ({"message": {"channel": "sms", "message": TEXT}, "journey_id": journey}, "body"),
        ({}, "body"),
        ({"message": {"channel": "sms"}}, "message"),
        ({"message": {"channel": "fax", "message": TEXT}}, "channel"),
    ):
        answer = await client.post(
            f"{API}/campaigns", json={"name": "X", "cohort_id": cohort, **body}, headers=auth
        )
        assert answer.status_code == 422, (body, answer.text)
        assert loc in {str(part) for item in answer.json()["detail"] for part in item["loc"]}, answer.text
