"""Helpers for the waitlist tests: entries, cancellations, routed replies, and reading what was sent."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select, update

from api.deps import workflow_gateway
from core.database import bind_tenant, mark_system, run_after_commit_jobs
from core.gateway import bind_gateway
from domain.communications.models import Communication
from domain.scheduling.models import WaitlistEntry, WaitlistOffer
from domain.tenants.models import Tenant
from tests.polling import eventually
from tests.scheduling.conftest import API, future

WAITLIST = f"{API}/waitlist"


async def set_policy(sessionmaker, tenant_id: uuid.UUID, *, wave_size: int, hold_minutes: int) -> None:
    """Give the tenant a waitlist wave size and hold."""
    async with sessionmaker() as session:
        mark_system(session)
        await session.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(settings={"waitlist": {"wave_size": wave_size, "hold_minutes": hold_minutes}})
        )
        await session.commit()


async def add_entry(client: httpx.AsyncClient, auth: dict, patient_id: uuid.UUID, **fields: Any) -> dict:
    """POST /waitlist for the next 30 days (fields override)."""
    body = {
        "patient_id": str(patient_id),
        "start_date": future(days=0).date().isoformat(),
        "end_date": future(days=30).date().isoformat(),
        **fields,
    }
    resp = await client.post(WAITLIST, json=body, headers=auth)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def booked_then_cancelled(client, auth, book, make_patient, make_slot, practitioner_id: str) -> dict:
    """A slot booked by someone who then cancels: returns the cancelled appointment."""
    slot = await make_slot(practitioner_id, future(days=5, hour=10))
    owner = await make_patient(phone_primary="+14155550900")
    booked = await book(patient_id=str(owner.id), time_slot_id=slot["id"])
    assert booked.status_code == 201, booked.text
    resp = await client.post(f"{API}/appointments/{booked.json()['id']}/cancel", headers=auth)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def offers(sessionmaker, tenant_id, **where: Any) -> list[WaitlistOffer]:
    """The tenant's offers matching `where` (column=value), oldest first."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        stmt = select(WaitlistOffer).order_by(WaitlistOffer.wave, WaitlistOffer.created_at)
        for column, value in where.items():
            stmt = stmt.where(getattr(WaitlistOffer, column) == value)
        return list((await session.scalars(stmt)).all())


async def entry_status(sessionmaker, tenant_id, entry_id: str) -> str:
    """The entry's status in the database."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        entry = await session.scalar(select(WaitlistEntry).where(WaitlistEntry.id == uuid.UUID(entry_id)))
        return entry.status


async def templates_sent(sessionmaker, tenant_id, patient_id) -> list[str]:
    """Template names of the messages sent to a patient, in order."""
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        rows = await session.scalars(
            select(Communication.template_name)
            .where(Communication.patient_id == patient_id, Communication.direction == "outbound")
            .order_by(Communication.created_at)
        )
        return list(rows)


async def reply(app, sessionmaker, tenant_id, *answers: tuple[uuid.UUID, str]) -> list[uuid.UUID | None]:
    """What the communications webhook does: store each inbound reply and route it, in one transaction."""
    from domain.scheduling import replies

    class _Request:
        pass

    request = _Request()
    request.app = app  # type: ignore[attr-defined]
    routed = []
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        bind_gateway(session, workflow_gateway(request))  # as the webhook's request binds it
        for patient_id, text in answers:
            inbound = Communication(
                patient_id=patient_id,
                direction="inbound",
                channel="whatsapp",
                message=text,
                status="received",
            )
            session.add(inbound)
            await session.flush()
            routed.append(
                await replies.route_inbound_reply(
                    session,
                    patient_id=patient_id,
                    communication_id=inbound.id,
                )
            )
        await session.commit()
        await run_after_commit_jobs(session)
    return routed


def backfill(temporal_env, appointment: dict):
    return temporal_env.client.get_workflow_handle(f"waitlist-backfill-{appointment['id']}")


async def open_offers(sessionmaker, tenant_id, appointment: dict, count: int) -> list[WaitlistOffer]:
    async def found():
        rows = await offers(sessionmaker, tenant_id, status="offered")
        rows = [o for o in rows if str(o.cancelled_appointment_id) == appointment["id"]]
        return rows if len(rows) == count else None

    return await eventually(found, f"{count} open offer(s)")
