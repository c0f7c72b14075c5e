"""One way in for every outbound message: the API (`POST /communications`) and the automated callers
(journeys, reminders, the booking chat, waitlist offers, consent confirmations, all through
`service.send_message`) get the same answer for a missing patient, an opted-out patient and a repeated
idempotency key, because they run the same function."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from temporalio.service import RPCError, RPCStatusCode

from core.database import bind_tenant
from core.errors import DomainError
from domain.communications import policy, service
from domain.communications.models import Communication
from domain.enums import Channel
from tests.communications.conftest import API
from tests.polling import eventually
from tests.problems import unprocessable

BASE = f"{API}/communications"


async def _send(session, patient_id: uuid.UUID, *, key: str | None = None, channel=Channel.SMS):
    """What an automated caller does (a reminder, a journey step)."""
    return await service.send_message(
        session,
        patient_id=patient_id,
        channel=channel,
        message="Your results are ready.",
        idempotency_key=key or f"test:{uuid.uuid4()}",
    )


async def _opt_out(system_sessionmaker, tenant_id, patient, channel=Channel.SMS) -> None:
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        await policy.set_consent(session, patient.id, channel, opt_out=True, at=datetime.now(UTC))
        await session.commit()


async def _count(system_sessionmaker, tenant_id, key: str) -> int:
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        return await session.scalar(
            select(func.count()).select_from(Communication).where(Communication.idempotency_key == key)
        )


async def test_a_missing_patient_is_404_from_the_api_and_from_an_automated_caller(
    client, auth, system_sessionmaker, tenant_id
) -> None:
    missing = uuid.uuid4()
    resp = await client.post(
        BASE, json={"patient_id": str(missing), "channel": "sms", "message": "Hi"}, headers=auth
    )
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        with pytest.raises(DomainError) as raised:
            await _send(session, missing)
    assert (resp.status_code, raised.value.status_code) == (404, 404)
    assert resp.json()["detail"] == raised.value.detail == "Patient not found."


async def test_an_opted_out_patient_gets_a_failed_record_and_no_delivery_from_either_path(
    client,
    auth,
    temporal_env,
    temporal_worker,
    providers_configured,
    system_sessionmaker,
    tenant_id,
    make_patient,
) -> None:
    patient = await make_patient()
    await _opt_out(system_sessionmaker, tenant_id, patient)
    resp = await client.post(
        BASE, json={"patient_id": str(patient.id), "channel": "sms", "message": "Hi"}, headers=auth
    )
    assert resp.status_code == 201, resp.text
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        result = await _send(session, patient.id)  # an automated caller does not crash on it
        await session.commit()
    automated = result.communication
    api = resp.json()
    assert (api["status"], api["error_code"]) == ("failed", "opted_out")
    assert (automated.status, automated.error_code, result.created) == ("failed", "opted_out", True)
    assert api["error_message"] == automated.error_message
    for communication_id in (api["id"], automated.id):
        with pytest.raises(RPCError) as raised:
            await temporal_env.client.get_workflow_handle(f"communication-{communication_id}").describe()
        assert raised.value.status == RPCStatusCode.NOT_FOUND
    assert providers_configured.requests == []


async def test_two_concurrent_creates_with_one_key_make_one_row_both_callers_get(
    system_sessionmaker, tenant_id, make_patient
) -> None:
    """The second insert reaches the unique constraint while the first is uncommitted (its pre-check saw
    nothing): the constraint makes it wait, then it returns the row the first one committed."""
    patient = await make_patient()
    key = f"race:{uuid.uuid4()}"
    async with system_sessionmaker() as first, system_sessionmaker() as second:
        bind_tenant(first, tenant_id)
        bind_tenant(second, tenant_id)
        won = await _send(first, patient.id, key=key)  # inserted, not committed yet
        pid = await second.scalar(text("SELECT pg_backend_pid()"))
        racing = asyncio.create_task(_send(second, patient.id, key=key))

        async def second_waits_on_the_constraint() -> bool:
            async with system_sessionmaker() as observer:
                wait = await observer.scalar(
                    text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                )
                return wait == "Lock"

        await eventually(second_waits_on_the_constraint, "the second insert to wait on the first")
        await first.commit()
        lost = await racing
        await second.commit()
    assert (won.created, lost.created) == (True, False)
    assert lost.communication.id == won.communication.id
    assert await _count(system_sessionmaker, tenant_id, key) == 1


async def test_concurrent_api_requests_with_one_key_get_the_same_message(
    client, auth, system_sessionmaker, tenant_id, make_patient
) -> None:
    patient = await make_patient()
    key = f"api-race:{uuid.uuid4()}"
    body = {"patient_id": str(patient.id), "channel": "sms", "message": "Hi", "idempotency_key": key}
    answers = await asyncio.gather(*(client.post(BASE, json=body, headers=auth) for _ in range(2)))
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    assert await _count(system_sessionmaker, tenant_id, key) == 1


async def test_a_template_name_beside_a_message_is_a_label_not_rendered(client, auth, make_patient) -> None:
    patient = await make_patient()
    for name in ("front_desk_note", "lab_results_ready"):  # not a template; a template needing test_name
        resp = await client.post(
            BASE,
            json={
                "patient_id": str(patient.id),
                "channel": "sms",
                "template_name": name,
                "message": "Hi {{ patient_first_name }}, please call us.",
            },
            headers=auth,
        )
        assert resp.status_code == 201, resp.text
        assert (resp.json()["template_name"], resp.json()["message"]) == (name, "Hi Maria, please call us.")


async def test_a_template_name_without_a_message_is_still_rendered_or_422(client, auth, make_patient) -> None:
    patient = await make_patient()
    body = {"patient_id": str(patient.id), "channel": "sms"}
    unknown = await client.post(BASE, json={**body, "template_name": "front_desk_note"}, headers=auth)
    assert (unknown.status_code, unprocessable(unknown)) == (422, "Unknown template 'front_desk_note'.")
    rendered = await client.post(
        BASE,
        json={**body, "template_name": "lab_results_ready", "template_vars": {"test_name": "blood panel"}},
        headers=auth,
    )
    assert rendered.status_code == 201 and "blood panel" in rendered.json()["message"]


async def test_consent_is_read_once_per_transaction_and_a_change_in_it_is_seen_at_once(
    system_sessionmaker, tenant_id, make_patient
) -> None:
    """A journey records its message and passes it through the gate in one transaction, which asks for the
    consent twice: the second answer comes from the first read, a change made in the transaction is seen,
    and a change another transaction committed is seen by the next transaction."""
    patient = await make_patient()
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        assert await policy.opted_out(session, patient.id, Channel.SMS) is False
        await _opt_out(system_sessionmaker, tenant_id, patient)  # committed by another transaction
        assert await policy.opted_out(session, patient.id, Channel.SMS) is False  # read once in this one
        await policy.set_consent(session, patient.id, Channel.EMAIL, opt_out=True, at=datetime.now(UTC))
        assert await policy.opted_out(session, patient.id, Channel.EMAIL) is True  # its own change
        await session.commit()
        assert await policy.opted_out(session, patient.id, Channel.SMS) is True  # a new transaction reads
        await policy.set_consent(session, patient.id, Channel.SMS, opt_out=False, at=datetime.now(UTC))
        assert await policy.opted_out(session, patient.id, Channel.SMS) is False
        await session.rollback()
        assert await policy.opted_out(session, patient.id, Channel.SMS) is True  # the opt-in rolled back
