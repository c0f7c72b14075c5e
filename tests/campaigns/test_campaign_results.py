"""A campaign's results count each enrolled patient once, from their first message of the journey: sent,
delivered, replied and opted out after it, and booked within the window after it, by channel and language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from core.database import bind_tenant
from domain.communications.models import Communication
from domain.patients.models import ChannelConsent
from domain.scheduling.models import Appointment
from tests.campaigns.support import API, cohort_of_everyone, launch, members, result_of

DAY = timedelta(days=1)


async def test_results_count_each_patient_once_by_what_followed_their_first_message(
    client, auth, clinic, temporal_env, temporal_worker, system_sessionmaker, tenant_id
) -> None:
    journey = await clinic.journey()
    replied, opted_out, failed, silent = [await clinic.patient(last_name=n) for n in ("A", "B", "C", "D")]
    launched = await launch(
        client, auth, cohort_id=await cohort_of_everyone(client, auth), journey_id=journey
    )
    assert await result_of(temporal_env, launched["id"]) == "completed"
    instance = {
        m.patient_id: m.journey_instance_id
        for m in await members(system_sessionmaker, tenant_id, launched["id"])
    }
    t = datetime.now(UTC) - 20 * DAY  # each patient's first campaign message went out then

    def message(patient, channel="sms", language="en", status="delivered", at=t, **fields) -> Communication:
        sent = at if status != "failed" else None
        delivered = at + timedelta(minutes=1) if status == "delivered" else None
        return Communication(
            patient_id=patient,
            journey_instance_id=instance[patient],
            direction="outbound",
            channel=channel,
            language=language,
            status=status,
            message="(text)",
            created_at=at,
            sent_at=sent,
            delivered_at=delivered,
            **fields,
        )

    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        session.add_all(
            [
                message(replied),
                message(replied, at=t + 2 * DAY),  # a later message of the journey: the patient counts once
                Communication(
                    patient_id=replied,
                    direction="inbound",
                    channel="sms",
                    status="received",
                    message="yes",
                    created_at=t + timedelta(hours=1),
                ),
                message(opted_out, status="sent"),
                ChannelConsent(patient_id=opted_out, channel="sms", opted_out=True, changed_at=t + DAY),
                message(failed, channel="email", language="es", status="failed"),
                # `silent` was enrolled but the journey has sent them nothing yet
            ]
        )
        await session.commit()
    booked = {
        replied: (t + 3 * DAY, "booked"),  # within 30 days: counts
        opted_out: (t + 25 * DAY, "cancelled"),  # cancelled: does not count
        failed: (t - 5 * DAY, "booked"),  # before the message: does not count
    }
    for patient, (created, status) in booked.items():
        appointment = await clinic.appointment(patient, datetime.now(UTC) + 10 * DAY, status=status)
        async with system_sessionmaker() as session:
            bind_tenant(session, tenant_id)
            await session.execute(
                update(Appointment).where(Appointment.id == appointment).values(created_at=created)
            )
            await session.commit()

    answer = await client.get(f"{API}/campaigns/{launched['id']}/results", headers=auth)
    assert answer.status_code == 200, answer.text
    results = answer.json()
    assert (results["members"], results["enrolled"], results["booked_within_days"]) == (4, 4, 30)
    counted = ("messaged", "sent", "delivered", "replied", "opted_out", "booked")
    assert {
        (r["channel"], r["language"]): tuple(r[k] for k in counted)
        for r in results["by_channel_and_language"]
    } == {
        ("email", "es"): (1, 0, 0, 0, 0, 0),
        ("sms", "en"): (2, 2, 1, 1, 1, 1),
    }
    assert tuple(results["total"][k] for k in counted) == (3, 2, 1, 1, 1, 1)
    assert silent in instance  # enrolled, and in no row: nothing was sent to them

    narrow = await client.get(
        f"{API}/campaigns/{launched['id']}/results", params={"booked_within_days": 2}, headers=auth
    )
    assert narrow.json()["total"]["booked"] == 0  # the booking came on day 3
    assert (
        await client.get(
            f"{API}/campaigns/{launched['id']}/results", params={"booked_within_days": 0}, headers=auth
        )
    ).status_code == 422
