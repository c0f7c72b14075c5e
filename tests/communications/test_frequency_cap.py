"""The frequency cap against the real PostgreSQL: it counts the messages sent in its window and those the
policy let go that are still on their way, and a message moving from one to the other while another
message's check counts (the send step records it sent without the cap's lock) is counted once, never
missed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant, make_engine, make_sessionmaker
from core.settings import Settings
from domain.communications import delivery, policy
from domain.communications.models import Communication
from domain.communications.repository import advance_status
from domain.enums import CommunicationStatus
from tests.communications.support import record_sms, set_tenant

Sessions = async_sessionmaker[AsyncSession]
CHECK_STATEMENTS = 6  # more than the policy's check runs (consent, tenant, patient, the cap's lock and count)


@pytest.fixture
async def checking_engine(database_url: str, settings: Settings) -> AsyncIterator[Any]:
    """An engine of the test's own, for the one policy check whose statements the test counts."""
    engine = make_engine(database_url, settings)
    yield engine
    await engine.dispose()


async def _let_go(sessions: Sessions, tenant_id: uuid.UUID, message: uuid.UUID) -> None:
    """The send gate lets the message go (queued, on its way to the provider)."""
    async with sessions() as session:
        bind_tenant(session, tenant_id)
        record = await session.get(Communication, message)
        assert record is not None
        assert (await delivery.pass_gate(session, record, datetime.now(UTC))).verdict == "send"
        await session.commit()


async def _recorded_sent(sessions: Sessions, tenant_id: uuid.UUID, message: uuid.UUID) -> None:
    """What the send step commits when the provider takes the message."""
    async with sessions() as session:
        bind_tenant(session, tenant_id)
        await advance_status(
            session,
            message,
            CommunicationStatus.SENT,
            at=datetime.now(UTC),
            extra={"provider": "twilio", "provider_message_id": f"SM{uuid.uuid4().hex}"},
        )
        await session.commit()


@pytest.mark.parametrize("sent_after", range(CHECK_STATEMENTS))
async def test_a_message_recorded_sent_while_the_cap_is_counted_still_counts(
    sent_after: int, checking_engine: Any, system_sessionmaker, tenant_id, make_patient
) -> None:
    """Cap two a day: one message sent, one let go and on its way, so a third waits, whichever statement of
    its check the second one is recorded sent after."""
    await set_tenant(
        system_sessionmaker,
        tenant_id,
        quiet_hours={"enabled": False},
        frequency_cap={"max_messages": 2, "per_hours": 24},
    )
    patient = await make_patient()
    sent, on_its_way, third = [await record_sms(system_sessionmaker, tenant_id, patient) for _ in range(3)]
    for message in (sent, on_its_way):
        await _let_go(system_sessionmaker, tenant_id, message)
    await _recorded_sent(system_sessionmaker, tenant_id, sent)

    statements = 0

    @event.listens_for(checking_engine.sync_engine, "after_cursor_execute")
    def send_step_commits(*_: Any) -> None:
        nonlocal statements
        statements += 1
        if statements == sent_after + 1:  # the send step commits between this statement and the next
            # (on another connection; a hook runs in the session's greenlet, where the sync API works)
            sid = f"SM{uuid.uuid4().hex}"
            with checking_engine.sync_engine.begin() as other:
                other.execute(
                    update(Communication)
                    .where(Communication.id == on_its_way)
                    .values(status="sent", sent_at=datetime.now(UTC), provider_message_id=sid)
                )

    async with make_sessionmaker(checking_engine)() as session:
        bind_tenant(session, tenant_id)
        record = await session.get(Communication, third)
        assert record is not None
        statements = 0  # count the check's statements, not the read of the message
        decision = await policy.evaluate(session, record, datetime.now(UTC))
        await session.rollback()
    assert (decision.verdict, decision.reason) == (policy.Verdict.WAIT, "frequency cap")
