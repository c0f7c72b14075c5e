"""One road for every outbound message: `send_message` (journeys, reminders, the booking chat, consent
confirmations) records the message and starts its delivery workflow after the commit, so automated messages
pass the same send policy as API-created ones; lost starts are picked up by the reconciler.

Real time-skipping Temporal server, real worker, the real Twilio SDK against the local fake API.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from core.database import bind_tenant
from core.temporal import TemporalAccess, bind_temporal
from domain.communications import service
from domain.communications.dispatch import reconcile_delivery_starts
from domain.communications.models import Communication
from domain.enums import Channel
from domain.tenants.models import Tenant
from tests.communications.conftest import delivery_result, next_local_time

NEW_YORK = ZoneInfo("America/New_York")


def access_to(env, settings) -> TemporalAccess:
    """The worker's task queue on the test server, as the API and activities reach it."""

    async def get_client() -> Client:
        return env.client

    return TemporalAccess(get_client=get_client, task_queue=settings.temporal_task_queue)


async def _send(system_sessionmaker, tenant_id, patient, *, access=None, key=None, commit=True):
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        if access is not None:
            bind_temporal(session, access)
        result = await service.send_message(
            session,
            patient_id=patient.id,
            channel=Channel.SMS,
            message="Your results are ready.",
            idempotency_key=key or f"test:{uuid.uuid4()}",
        )
        await (session.commit() if commit else session.rollback())
        return result.communication.id


async def _message(system_sessionmaker, tenant_id, communication_id) -> Communication:
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        return await session.scalar(select(Communication).where(Communication.id == communication_id))


async def _set_tenant(system_sessionmaker, tenant_id, **settings) -> None:
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        tenant = await session.get(Tenant, tenant_id)
        tenant.settings = {**tenant.settings, **settings}
        await session.commit()


async def test_a_committed_message_is_delivered_by_one_workflow_and_a_repeat_sends_nothing_more(
    comms_temporal_env,
    comms_worker,
    settings,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
) -> None:
    patient = await make_patient()
    access = access_to(comms_temporal_env, settings)
    await _set_tenant(system_sessionmaker, tenant_id, quiet_hours={"enabled": False})
    first = await _send(system_sessionmaker, tenant_id, patient, access=access, key="results:1")
    assert (await delivery_result(comms_temporal_env, first)).status == "sent"
    again = await _send(system_sessionmaker, tenant_id, patient, access=access, key="results:1")
    assert again == first
    message = await _message(system_sessionmaker, tenant_id, first)
    assert (message.status, message.provider, message.delivery_started_at is not None) == (
        "sent",
        "twilio",
        True,
    )
    assert [f["To"] for f in providers_configured.twilio_forms()] == [patient.phone_primary]


async def test_a_rolled_back_message_starts_no_workflow(
    comms_temporal_env,
    comms_worker,
    settings,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
) -> None:
    patient = await make_patient()
    access = access_to(comms_temporal_env, settings)
    rolled_back = await _send(system_sessionmaker, tenant_id, patient, access=access, commit=False)
    with pytest.raises(RPCError) as raised:
        await comms_temporal_env.client.get_workflow_handle(f"communication-{rolled_back}").describe()
    assert raised.value.status == RPCStatusCode.NOT_FOUND
    assert await _message(system_sessionmaker, tenant_id, rolled_back) is None
    assert providers_configured.requests == []


async def test_an_automated_message_at_2230_patient_time_waits_for_0800(
    comms_temporal_env,
    comms_worker,
    settings,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
) -> None:
    patient = await make_patient(timezone="America/New_York")
    now, at_2230 = await next_local_time(comms_temporal_env, NEW_YORK, 22, 30)
    await comms_temporal_env.sleep(at_2230 - now)  # the server's clock: what the policy sees
    sent = await _send(
        system_sessionmaker, tenant_id, patient, access=access_to(comms_temporal_env, settings)
    )
    assert (await delivery_result(comms_temporal_env, sent)).status == "sent"
    message = await _message(system_sessionmaker, tenant_id, sent)
    local = message.sent_at.astimezone(NEW_YORK)
    assert (local.date(), local.hour, local.minute) == ((at_2230 + timedelta(days=1)).date(), 8, 0)
    assert not message.is_urgent and message.meta_data["policy"] == "allowed"


async def test_automated_messages_count_against_the_frequency_cap_and_wait_never_drop(
    comms_temporal_env,
    comms_worker,
    settings,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
) -> None:
    patient = await make_patient()
    await _set_tenant(
        system_sessionmaker,
        tenant_id,
        quiet_hours={"enabled": False},
        frequency_cap={"max_messages": 2, "per_hours": 24},
    )
    access = access_to(comms_temporal_env, settings)
    # Released at once, so their policy checks race: the per-patient lock makes the cap hold anyway.
    ids = [await _send(system_sessionmaker, tenant_id, patient, access=access) for _ in range(3)]
    for communication_id in ids:
        assert (await delivery_result(comms_temporal_env, communication_id)).status == "sent"
    messages = sorted(
        [await _message(system_sessionmaker, tenant_id, i) for i in ids], key=lambda m: m.sent_at
    )
    first, second, third = messages
    assert second.sent_at - first.sent_at < timedelta(minutes=5)
    assert third.sent_at - first.sent_at >= timedelta(hours=24)
    assert third.meta_data["policy"] == "allowed"
    assert len(providers_configured.twilio_forms()) == 3


async def test_the_reconciler_starts_the_delivery_a_lost_start_left_behind(
    comms_temporal_env,
    comms_worker,
    settings,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
) -> None:
    patient = await make_patient()
    await _set_tenant(system_sessionmaker, tenant_id, quiet_hours={"enabled": False})
    lost = await _send(system_sessionmaker, tenant_id, patient)  # no Temporal here: nothing starts
    assert (await _message(system_sessionmaker, tenant_id, lost)).status == "queued"
    access = access_to(comms_temporal_env, settings)
    started = await reconcile_delivery_starts(
        system_sessionmaker, access, older_than_seconds=0, tenant_id=tenant_id
    )
    assert started == 1
    assert (await delivery_result(comms_temporal_env, lost)).status == "sent"
    message = await _message(system_sessionmaker, tenant_id, lost)
    assert message.status == "sent" and message.delivery_started_at is not None
    assert (
        await reconcile_delivery_starts(
            system_sessionmaker, access, older_than_seconds=0, tenant_id=tenant_id
        )
        == 0
    )
    assert len(providers_configured.twilio_forms()) == 1
