"""On a random history written through every kind of write (ORM inserts, repository status moves, bulk
UPDATE and DELETE statements, out-of-order inserts, reschedules, time-zone changes), the rollup-based
figures equal the ones computed directly from the base tables, and equal a rebuild from scratch."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.database import bind_tenant
from domain.analytics.models import (
    AppointmentDaily,
    AppointmentPractitionerDaily,
    CommunicationDaily,
    MessageSentiment,
    Reply,
    ReplyDaily,
    SentimentDaily,
)
from domain.communications.models import Communication
from domain.communications.repository import advance_status
from domain.enums import CommunicationStatus as S
from domain.practitioners.models import Practitioner
from domain.scheduling.models import Appointment
from tests.analytics import reference
from tests.analytics.conftest import ANALYTICS, Clinic, make_clinic

PERIODS: list[dict[str, str]] = [
    {"time_period": p}
    for p in ("TODAY", "LAST_7_DAYS", "LAST_30_DAYS", "THIS_MONTH", "LAST_MONTH", "LAST_90_DAYS")
]
DAYS = 40
SLOT = timedelta(minutes=40)
APPOINTMENT_STATUSES = ["booked", "confirmed", "checked_in", "completed", "cancelled", "no_show"]
OUTBOUND_STATUSES = ["pending", "queued", "sent", "delivered", "read", "failed"]
CHANNELS = ["sms", "whatsapp", "email"]


class History:
    """Writes a random clinic history: appointments in free 40-minute slots of each practitioner, and
    messages between a few patients and the clinic (some at the very same instant)."""

    def __init__(self, clinic: Clinic, rng: random.Random, now: datetime) -> None:
        self.clinic, self.rng = clinic, rng
        self.origin = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=DAYS)
        self.free: dict[uuid.UUID, list[int]] = {}
        self.patients: list[uuid.UUID] = []
        self.instants: list[datetime] = []

    def slot(self, practitioner: uuid.UUID) -> datetime:
        """A free start time of the practitioner (taken)."""
        free = self.free[practitioner]
        return self.origin + free.pop(self.rng.randrange(len(free))) * SLOT

    def instant(self) -> datetime:
        """A random past instant; one in ten repeats an earlier one exactly."""
        if self.instants and self.rng.random() < 0.1:
            return self.rng.choice(self.instants)
        at = self.origin + timedelta(seconds=self.rng.uniform(0, DAYS * 86_400 - 3_600))
        self.instants.append(at)
        return at

    def message(self) -> Communication:
        """A random message row."""
        direction = self.rng.choice(["inbound", "outbound"])
        at = self.instant()
        status = "received" if direction == "inbound" else self.rng.choice(OUTBOUND_STATUSES)
        sent_at = None
        if direction == "outbound" and status not in ("pending", "queued") and self.rng.random() < 0.8:
            sent_at = at + timedelta(seconds=self.rng.uniform(0, 90))
        patient = None if self.rng.random() < 0.05 else self.rng.choice(self.patients)
        return self.clinic.message(
            direction,
            at,
            channel=self.rng.choice(CHANNELS),
            status=status,
            sent_at=sent_at,
            patient_id=patient,
        )

    async def write(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        """The initial history, then a round of changes through the different write paths."""
        rng, clinic = self.rng, self.clinic
        practitioners = [clinic.practitioner_id]
        for _ in range(2):
            doctor = Practitioner(first_name="Doc", last_name=uuid.uuid4().hex[:6])
            await clinic.add(doctor)
            practitioners.append(doctor.id)
        self.free = {p: list(range(DAYS * 36 + 200)) for p in practitioners}
        self.patients = [clinic.patient_id] + [await clinic.new_patient() for _ in range(3)]
        appointments = []
        for _ in range(90):
            doctor = rng.choice(practitioners)
            start = self.slot(doctor)
            appointments.append(
                Appointment(
                    patient_id=rng.choice(self.patients),
                    practitioner_id=doctor,
                    start_time=start,
                    end_time=start + timedelta(minutes=30),
                    status=rng.choice(APPOINTMENT_STATUSES),
                    source_channel=rng.choice(["web", "phone", "whatsapp", None]),
                )
            )
        messages = [self.message() for _ in range(300)]
        await clinic.add(*appointments, *messages)
        scores = [
            MessageSentiment(
                communication_id=m.id,
                compound=round(rng.uniform(-1, 1), 4),
                label=rng.choice(["positive", "neutral", "negative"]),
                analyzer="test",
            )
            for m in messages
            if m.direction == "inbound" and rng.random() < 0.6
        ]
        await clinic.add(*scores)

        outbound = [m for m in messages if m.direction == "outbound"]
        async with sessionmaker() as session:  # the repository's conditional UPDATE, one message at a time
            bind_tenant(session, clinic.tenant_id)
            for m in rng.sample(outbound, 40):
                target = rng.choice([S.SENT, S.DELIVERED, S.READ, S.FAILED])
                await advance_status(session, m.id, target, at=m.created_at + timedelta(seconds=30))
            await session.commit()
        C = Communication
        await clinic.execute(
            update(C).where(C.id.in_([m.id for m in rng.sample(outbound, 15)])).values(status="read")
        )
        for m in rng.sample(messages, 12):  # edited in the past, moved to another patient, another channel
            await clinic.execute(
                update(C)
                .where(C.id == m.id)
                .values(created_at=self.instant(), patient_id=rng.choice(self.patients), channel="sms")
            )
        await clinic.execute(delete(C).where(C.id.in_([m.id for m in rng.sample(messages, 25)])))
        await clinic.add(*(self.message() for _ in range(40)))  # late arrivals, anywhere in the past
        M = MessageSentiment
        await clinic.execute(delete(M).where(M.id.in_([score.id for score in rng.sample(scores, 5)])))

        A = Appointment
        for a in rng.sample(appointments, 25):
            await clinic.execute(
                update(A).where(A.id == a.id).values(status=rng.choice(APPOINTMENT_STATUSES))
            )
        for a in rng.sample(appointments, 12):  # reschedules, some to another practitioner
            doctor = rng.choice(practitioners)
            start = self.slot(doctor)
            await clinic.execute(
                update(A)
                .where(A.id == a.id)
                .values(practitioner_id=doctor, start_time=start, end_time=start + timedelta(minutes=30))
            )
        await clinic.execute(delete(A).where(A.id.in_([a.id for a in rng.sample(appointments, 10)])))


async def _assert_figures_match(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant_id: uuid.UUID,
) -> None:
    rows = await reference.read_tenant(sessionmaker, tenant_id)
    today = datetime.now(rows.zone).date()
    custom = {
        "time_period": "CUSTOM",
        "start_date": (today - timedelta(days=DAYS)).isoformat(),
        "end_date": today.isoformat(),
    }
    for params in [*PERIODS, custom]:
        resp = await client.get(f"{ANALYTICS}/dashboard", params=params, headers=headers)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        window = reference.Window.of(body["period"], rows.zone)
        expected = reference.appointment_figures(rows, window)
        appointments = body["appointments"]
        breakdown = appointments["breakdown"]
        assert appointments["total"] == expected["total"], params
        assert {s: n for s, n in breakdown["by_status"].items() if n} == expected["by_status"], params
        assert {d["date"]: d["count"] for d in breakdown["by_day"] if d["count"]} == expected["by_day"]
        assert breakdown["by_channel"] == expected["by_channel"], params
        practitioners = {p["practitioner_id"]: p["count"] for p in breakdown["by_practitioner"]}
        assert practitioners == expected["by_practitioner"], params
        figures = reference.communication_figures(rows, window)
        communication = body["communication"]
        assert {key: communication[key] for key in figures} == figures, params

    # The filtered figures: one from the rollup (channel), the others from the appointments themselves.
    body = (await client.get(f"{ANALYTICS}/dashboard", params=custom, headers=headers)).json()
    window = reference.Window.of(body["period"], rows.zone)
    for filters in ({"channel_origin": "web"}, {"channel_origin": "web", "include_breakdown": "true"}):
        only_web = await client.get(
            f"{ANALYTICS}/appointments", params={**custom, **filters}, headers=headers
        )
        web = [a for a in rows.appointments if a.source_channel == "web" and window.holds(a.start_time)]
        assert only_web.json()["total"] == len(web)
    doctor = rows.appointments[0].practitioner_id
    one = await client.get(
        f"{ANALYTICS}/appointments", params={**custom, "practitioner_id": str(doctor)}, headers=headers
    )
    assert one.json()["total"] == len(
        [a for a in rows.appointments if a.practitioner_id == doctor and window.holds(a.start_time)]
    )


# Each rollup's columns, and the column that is 0 on a row left empty by deletes (None: never empty).
ROLLUP_COLUMNS: dict[Any, tuple[tuple[str, ...], str | None]] = {
    AppointmentDaily: (("day", "status", "source_channel", "n"), "n"),
    AppointmentPractitionerDaily: (("day", "practitioner_id", "n"), "n"),
    CommunicationDaily: (("day", "direction", "channel", "status", "n"), "n"),
    SentimentDaily: (("day", "scored", "compound_sum", "positive", "neutral", "negative"), "scored"),
    ReplyDaily: (("day", "bucket", "n"), "n"),
    Reply: (("outbound_id", "inbound_id", "response_seconds", "bucket", "day"), None),
}


async def _rollup_rows(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID
) -> dict[str, set[tuple[Any, ...]]]:
    """Every non-empty rollup row of the tenant."""
    found = {}
    async with sessionmaker() as session:
        bind_tenant(session, tenant_id)
        for model, (columns, count) in ROLLUP_COLUMNS.items():
            stmt = select(*(getattr(model, c) for c in columns))
            if count is not None:
                stmt = stmt.where(getattr(model, count) != 0)
            found[model.__tablename__] = {tuple(row) for row in await session.execute(stmt)}
    return found


async def test_rollups_match_the_base_tables_through_every_write_path(
    client: httpx.AsyncClient,
    make_tenant: Callable,
    headers_for: Callable,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    rng = random.Random(20261203)
    now = datetime.now(UTC)
    clinics = []
    for zone in ("America/New_York", "Asia/Kolkata"):
        clinic = await make_clinic(await make_tenant(timezone=zone), system_sessionmaker)
        await History(clinic, rng, now).write(system_sessionmaker)
        clinics.append(clinic)

    for clinic in clinics:
        headers = headers_for(clinic.tenant_id)
        await _assert_figures_match(client, headers, system_sessionmaker, clinic.tenant_id)
        kept = await _rollup_rows(system_sessionmaker, clinic.tenant_id)
        assert kept["analytics_replies"], "the history has replies"
        await clinic.rebuild()
        assert await _rollup_rows(system_sessionmaker, clinic.tenant_id) == kept


async def test_a_time_zone_change_rebuilds_the_tenants_days(
    client: httpx.AsyncClient,
    make_tenant: Callable,
    headers_for: Callable,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    from domain.tenants.models import Tenant

    clinic = await make_clinic(await make_tenant(timezone="UTC"), system_sessionmaker)
    await History(clinic, random.Random(7), datetime.now(UTC)).write(system_sessionmaker)
    await clinic.execute(update(Tenant).where(Tenant.id == clinic.tenant_id).values(timezone="Asia/Kolkata"))

    rows = await reference.read_tenant(system_sessionmaker, clinic.tenant_id)
    assert rows.zone == ZoneInfo("Asia/Kolkata")
    await _assert_figures_match(client, headers_for(clinic.tenant_id), system_sessionmaker, clinic.tenant_id)
