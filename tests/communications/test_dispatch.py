"""One road for every outbound message: `send_message` (journeys, reminders, the booking chat, consent
confirmations) records the message with the start of its delivery workflow, as one workflow command in the
same transaction, delivered after the commit, so automated messages pass the same send policy as
API-created ones; a start Temporal could not take waits for the relay, never lost. A journey's send step
holds the start while it sends itself, then settles or releases it.

Real time-skipping Temporal server, real worker, the real Twilio SDK against the local fake API.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.service import RPCError, RPCStatusCode

from core.database import bind_tenant, run_after_commit_jobs
from core.gateway import bind_gateway
from domain.communications import delivery, dispatch, service
from domain.communications.models import Communication
from domain.communications.plan import WORKFLOW_NAME, delivery_workflow_id
from domain.communications.provider_contract import ProviderError
from domain.enums import Channel
from tests.communications.conftest import delivery_result, next_local_time
from tests.communications.support import gateway_to, record_sms, set_tenant
from tests.outbox import commands_for, tenant_relay, unreachable_gateway

NEW_YORK = ZoneInfo("America/New_York")


async def _message(system_sessionmaker, tenant_id, communication_id) -> Communication:
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        return await session.scalar(select(Communication).where(Communication.id == communication_id))


async def test_a_committed_message_is_delivered_by_one_workflow_and_a_repeat_sends_nothing_more(
    temporal_env,
    temporal_worker,
    settings,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
) -> None:
    patient = await make_patient()
    gateway = gateway_to(temporal_env, settings)
    await set_tenant(system_sessionmaker, tenant_id, quiet_hours={"enabled": False})
    first = await record_sms(system_sessionmaker, tenant_id, patient, gateway=gateway, key="results:1")
    assert (await delivery_result(temporal_env, first)).status == "sent"
    again = await record_sms(system_sessionmaker, tenant_id, patient, gateway=gateway, key="results:1")
    assert again == first
    message = await _message(system_sessionmaker, tenant_id, first)
    assert (message.status, message.provider) == ("sent", "twilio")
    commands = await commands_for(system_sessionmaker, delivery_workflow_id(first))
    assert [(c.kind, c.outcome) for c in commands] == [("start", "delivered")]  # the repeat recorded none
    assert [f["To"] for f in providers_configured.twilio_forms()] == [patient.phone_primary]


async def test_a_message_commits_with_exactly_one_start_which_is_delivered_after_the_commit(
    temporal_env,
    temporal_worker,
    settings,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
) -> None:
    patient = await make_patient()
    await set_tenant(system_sessionmaker, tenant_id, quiet_hours={"enabled": False})
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        bind_gateway(session, gateway_to(temporal_env, settings))
        result = await service.send_message(
            session,
            patient_id=patient.id,
            channel=Channel.SMS,
            message="Your results are ready.",
            idempotency_key=f"test:{uuid.uuid4()}",
        )
        workflow_id = delivery_workflow_id(result.communication.id)
        await session.flush()
        assert await commands_for(system_sessionmaker, workflow_id) == []  # not committed yet
        assert not await _started(temporal_env, workflow_id)

        await session.commit()
        committed = await commands_for(system_sessionmaker, workflow_id)
        assert [(c.kind, c.start_workflow, c.delivered_at) for c in committed] == [
            ("start", WORKFLOW_NAME, None)
        ]
        assert not await _started(temporal_env, workflow_id)  # nothing goes before the commit's jobs

        await run_after_commit_jobs(session)
    assert [c.outcome for c in await commands_for(system_sessionmaker, workflow_id)] == ["delivered"]
    assert (await delivery_result(temporal_env, result.communication.id)).status == "sent"
    assert len(providers_configured.twilio_forms()) == 1


async def test_a_rolled_back_message_starts_no_workflow(
    temporal_env,
    temporal_worker,
    settings,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
) -> None:
    patient = await make_patient()
    gateway = gateway_to(temporal_env, settings)
    rolled_back = await record_sms(system_sessionmaker, tenant_id, patient, gateway=gateway, commit=False)
    with pytest.raises(RPCError) as raised:
        await temporal_env.client.get_workflow_handle(f"communication-{rolled_back}").describe()
    assert raised.value.status == RPCStatusCode.NOT_FOUND
    assert await _message(system_sessionmaker, tenant_id, rolled_back) is None
    assert await commands_for(system_sessionmaker, delivery_workflow_id(rolled_back)) == []
    assert providers_configured.requests == []


async def test_an_automated_message_at_2230_patient_time_waits_for_0800(
    temporal_env,
    temporal_worker,
    settings,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
) -> None:
    patient = await make_patient(timezone="America/New_York")
    now, at_2230 = await next_local_time(temporal_env, NEW_YORK, 22, 30)
    await temporal_env.sleep(at_2230 - now)  # the server's clock: what the policy sees
    sent = await record_sms(
        system_sessionmaker, tenant_id, patient, gateway=gateway_to(temporal_env, settings)
    )
    assert (await delivery_result(temporal_env, sent)).status == "sent"
    message = await _message(system_sessionmaker, tenant_id, sent)
    local = message.sent_at.astimezone(NEW_YORK)
    assert (local.date(), local.hour, local.minute) == ((at_2230 + timedelta(days=1)).date(), 8, 0)
    assert not message.is_urgent and message.meta_data["policy"] == "allowed"


async def test_automated_messages_count_against_the_frequency_cap_and_wait_never_drop(
    temporal_env,
    temporal_worker,
    settings,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
) -> None:
    patient = await _patient_capped_at_two_a_day(system_sessionmaker, tenant_id, make_patient)
    gateway = gateway_to(temporal_env, settings)
    # Released at once, so their policy checks race: the per-patient lock makes the cap hold anyway.
    ids = [await record_sms(system_sessionmaker, tenant_id, patient, gateway=gateway) for _ in range(3)]
    for communication_id in ids:
        assert (await delivery_result(temporal_env, communication_id)).status == "sent"
    messages = sorted(
        [await _message(system_sessionmaker, tenant_id, i) for i in ids], key=lambda m: m.sent_at
    )
    first, second, third = messages
    assert second.sent_at - first.sent_at < timedelta(minutes=5)
    assert third.sent_at - first.sent_at >= timedelta(hours=24)
    assert third.meta_data["policy"] == "allowed"
    assert len(providers_configured.twilio_forms()) == 3


async def test_a_start_temporal_could_not_take_waits_for_the_relay_which_delivers_it_once(
    temporal_env,
    temporal_worker,
    settings,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
) -> None:
    patient = await make_patient()
    await set_tenant(system_sessionmaker, tenant_id, quiet_hours={"enabled": False})
    waiting = await record_sms(system_sessionmaker, tenant_id, patient, gateway=unreachable_gateway())
    assert (await _message(system_sessionmaker, tenant_id, waiting)).status == "queued"
    workflow_id = delivery_workflow_id(waiting)
    [command] = await commands_for(system_sessionmaker, workflow_id)
    assert (command.kind, command.delivered_at, command.attempts) == ("start", None, 1)
    assert not await _started(temporal_env, workflow_id)

    relay = tenant_relay(system_sessionmaker, tenant_id, gateway_to(temporal_env, settings))
    assert await relay() is False  # one round: less than a batch was due
    assert [c.outcome for c in await commands_for(system_sessionmaker, workflow_id)] == ["delivered"]
    assert (await delivery_result(temporal_env, waiting)).status == "sent"
    await relay()  # a later round starts nothing again
    [command] = await commands_for(system_sessionmaker, workflow_id)
    assert (command.outcome, command.attempts) == ("delivered", 1)
    message = await _message(system_sessionmaker, tenant_id, waiting)
    assert message.status == "sent"
    assert len(providers_configured.twilio_forms()) == 1


async def test_a_held_start_waits_for_its_caller_who_settles_or_releases_it(
    temporal_env,
    temporal_worker,
    settings,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
) -> None:
    """A journey's send step sends itself: the delivery start it holds goes neither after the commit nor
    with the relay before its time; settled (the step sent the message), it never goes; released (the
    message needs its workflow after all), it goes after the commit."""
    patient = await make_patient()
    await set_tenant(system_sessionmaker, tenant_id, quiet_hours={"enabled": False})
    gateway = gateway_to(temporal_env, settings)
    held = []
    for _ in range(2):
        held.append(await record_sms(system_sessionmaker, tenant_id, patient, gateway=gateway, held=True))
    settled, released = held
    relay = tenant_relay(system_sessionmaker, tenant_id, gateway)
    await relay()
    for communication_id in held:
        [command] = await commands_for(system_sessionmaker, delivery_workflow_id(communication_id))
        assert command.delivered_at is None and command.not_before is not None
        assert not await _started(temporal_env, delivery_workflow_id(communication_id))

    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        bind_gateway(session, gateway)
        await dispatch.settle(session, settled)
        await dispatch.release(session, released)
        await session.commit()
        await run_after_commit_jobs(session)
    assert [c.outcome for c in await commands_for(system_sessionmaker, delivery_workflow_id(released))] == [
        "delivered"
    ]
    assert (await delivery_result(temporal_env, released)).status == "sent"
    await relay()
    assert [c.outcome for c in await commands_for(system_sessionmaker, delivery_workflow_id(settled))] == [
        "settled"
    ]
    assert not await _started(temporal_env, delivery_workflow_id(settled))
    assert len(providers_configured.twilio_forms()) == 1


async def test_a_step_sending_itself_settles_or_releases_its_held_start_in_the_transaction_that_decides(
    temporal_env,
    temporal_worker,
    settings,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
) -> None:
    """`send_at_once` with its start held (a journey's or a campaign's send step): the provider's answer
    and the settled start commit together, so a sent message never keeps a start waiting for the relay;
    a message that must wait (here the frequency cap) releases its start in the gate's transaction, and
    its workflow starts with nothing more from the caller; a provider failing for now leaves the start
    held (the caller releases it, or the relay delivers it), the attempt closed and nothing sent twice."""
    patient = await _patient_capped_at_two_a_day(system_sessionmaker, tenant_id, make_patient)
    gateway = gateway_to(temporal_env, settings)

    def sessions() -> AsyncSession:
        session = system_sessionmaker()
        bind_tenant(session, tenant_id)
        bind_gateway(session, gateway)
        return session

    async def send(communication_id: uuid.UUID) -> delivery.DeliveryOutcome | None:
        return await delivery.send_at_once(
            sessions, communication_id, now=datetime.now(UTC), settings=settings, held=True
        )

    failing, sent, capped = [
        await record_sms(system_sessionmaker, tenant_id, patient, gateway=gateway, held=True)
        for _ in range(3)
    ]
    providers_configured.twilio_answers.append((503, {"code": 20500, "message": "Service unavailable"}))
    with pytest.raises(ProviderError) as raised:
        await send(failing)
    assert raised.value.retryable
    [command] = await commands_for(system_sessionmaker, delivery_workflow_id(failing))
    assert (command.delivered_at, command.outcome) == (None, None) and command.not_before is not None
    message = await _message(system_sessionmaker, tenant_id, failing)
    assert (message.status, message.send_attempt) == ("queued", None)

    outcome = await send(sent)
    assert outcome is not None and (outcome.status, outcome.sent_now) == ("sent", True)
    assert [c.outcome for c in await commands_for(system_sessionmaker, delivery_workflow_id(sent))] == [
        "settled"
    ]

    # The cap (two a day) holds the one sent and the one let go and failing for now: its workflow waits.
    assert await send(capped) is None
    assert [c.outcome for c in await commands_for(system_sessionmaker, delivery_workflow_id(capped))] == [
        "delivered"
    ]
    assert await _started(temporal_env, delivery_workflow_id(capped))
    assert (await _message(system_sessionmaker, tenant_id, capped)).status == "scheduled"
    assert len(providers_configured.twilio_forms()) == 2  # the refused one and the one sent

    # Its caller releases the failing one's start (as `deliver_recorded` does), and its workflow sends it;
    # left held, another test's relay would deliver it to that test's worker once the hold ended.
    async with sessions() as session:
        await dispatch.release(session, failing)
        await session.commit()
        await run_after_commit_jobs(session)
    assert (await delivery_result(temporal_env, failing)).status == "sent"
    assert len(providers_configured.twilio_forms()) == 3


async def _patient_capped_at_two_a_day(system_sessionmaker, tenant_id, make_patient) -> Any:
    """A patient of a tenant with no quiet hours and a frequency cap of two messages a day."""
    await set_tenant(
        system_sessionmaker,
        tenant_id,
        quiet_hours={"enabled": False},
        frequency_cap={"max_messages": 2, "per_hours": 24},
    )
    return await make_patient()


async def _started(env, workflow_id: str) -> bool:
    try:
        await env.client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        assert exc.status == RPCStatusCode.NOT_FOUND
        return False
    return True
