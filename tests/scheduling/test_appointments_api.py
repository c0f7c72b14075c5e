"""Appointments API: booking, the lifecycle, reschedules, cancellation, lists, stats and conflicts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.scheduling.conftest import API, future

BASE = f"{API}/appointments"


@pytest.fixture
async def practitioner(make_practitioner) -> dict:
    return await make_practitioner()


@pytest.fixture
async def patient(make_patient):
    return await make_patient()


async def booked(book, patient, practitioner, start: datetime, minutes: int = 30, **extra) -> dict:
    resp = await book(
        patient_id=str(patient.id),
        practitioner_id=practitioner["id"],
        start_time=start,
        end_time=start + timedelta(minutes=minutes),
        **extra,
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


# ------------------------------------------------------------------ create


async def test_booking_into_a_slot_returns_201_with_summaries_and_takes_a_place(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner, make_slot
) -> None:
    slot = await make_slot(practitioner["id"], future())
    resp = await book(
        patient_id=str(patient.id),
        time_slot_id=slot["id"],
        appointment_type="consultation",
        reason_text="Annual checkup",
        source_channel="web",
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["status"] == "booked"
    assert (body["start_time"], body["practitioner_id"]) == (slot["start_time"], practitioner["id"])
    assert body["patient"] == {"id": str(patient.id), "mrn": patient.mrn, "name": "Pat Doe"}
    assert body["practitioner"]["name"] == "Dr. Ada Lovelace"
    assert "phone_primary" not in str(body["patient"])
    slot_now = (await client.get(f"{API}/time-slots/{slot['id']}", headers=auth)).json()
    assert slot_now["booked_count"] == 1


async def test_booking_by_practitioner_and_times_returns_201(book, patient, practitioner) -> None:
    body = await booked(book, patient, practitioner, future(), appointment_type="follow_up")
    assert body["time_slot_id"] is None
    assert body["appointment_type"] == "follow_up"


async def test_booking_with_own_tenant_id_is_accepted_and_another_is_400(
    book, patient, practitioner, tenant_id
) -> None:
    start = future()
    ok = await booked(book, patient, practitioner, start, tenant_id=str(tenant_id))
    assert ok["tenant_id"] == str(tenant_id)
    resp = await book(
        tenant_id=str(uuid.uuid4()),
        patient_id=str(patient.id),
        practitioner_id=practitioner["id"],
        start_time=start + timedelta(hours=1),
        end_time=start + timedelta(hours=2),
    )
    assert resp.status_code == 403


@pytest.mark.parametrize(
    "fields",
    [
        {},  # neither a slot nor times
        {"start_time": "2030-01-01T10:00:00Z"},  # times without practitioner / end
        {"start_time": "2030-01-01T10:00:00", "end_time": "2030-01-01T10:30:00"},  # naive times
        {"start_time": "2030-01-01T10:30:00Z", "end_time": "2030-01-01T10:00:00Z"},  # ends before start
        {"id": str(uuid.uuid4())},  # server-owned field
    ],
)
async def test_invalid_booking_is_422(book, patient, practitioner, fields: dict) -> None:
    body = {"patient_id": str(patient.id), "practitioner_id": practitioner["id"], **fields}
    if "start_time" not in fields and "id" in fields:
        body.update(start_time="2030-01-01T10:00:00Z", end_time="2030-01-01T10:30:00Z")
    resp = await book(**body)
    assert resp.status_code == 422, resp.text


async def test_booking_unknown_patient_practitioner_or_slot_is_404(book, patient, practitioner) -> None:
    start = future()
    times = {"start_time": start, "end_time": start + timedelta(minutes=30)}
    resp = await book(patient_id=str(uuid.uuid4()), practitioner_id=practitioner["id"], **times)
    assert (resp.status_code, resp.json()["detail"]) == (404, "Patient not found.")
    resp = await book(patient_id=str(patient.id), practitioner_id=str(uuid.uuid4()), **times)
    assert (resp.status_code, resp.json()["detail"]) == (404, "Practitioner not found.")
    resp = await book(patient_id=str(patient.id), time_slot_id=str(uuid.uuid4()))
    assert (resp.status_code, resp.json()["detail"]) == (404, "Time slot not found.")


async def test_booking_another_tenants_patient_or_slot_is_404(
    book, patient, practitioner, make_tenant, make_patient, make_practitioner, make_slot, headers_for
) -> None:
    other = await make_tenant()
    other_headers = headers_for(other)
    their_patient = await make_patient(tenant=other)
    their_practitioner = await make_practitioner(headers=other_headers)
    their_slot = await make_slot(their_practitioner["id"], future(), headers=other_headers)
    start = future(days=4)
    resp = await book(
        patient_id=str(their_patient.id),
        practitioner_id=practitioner["id"],
        start_time=start,
        end_time=start + timedelta(minutes=30),
    )
    assert resp.status_code == 404
    resp = await book(patient_id=str(patient.id), time_slot_id=their_slot["id"])
    assert resp.status_code == 404
    resp = await book(
        patient_id=str(patient.id),
        practitioner_id=their_practitioner["id"],
        start_time=start,
        end_time=start + timedelta(minutes=30),
    )
    assert resp.status_code == 404


async def test_overlapping_booking_is_409_naming_the_appointment_in_the_way(
    book, patient, practitioner, make_patient
) -> None:
    start = future()
    first = await booked(book, patient, practitioner, start)
    other = await make_patient()
    resp = await book(
        patient_id=str(other.id),
        practitioner_id=practitioner["id"],
        start_time=start + timedelta(minutes=15),
        end_time=start + timedelta(minutes=45),
    )
    assert resp.status_code == 409
    body = resp.json()
    assert body["detail"] == "The practitioner already has an appointment at that time."
    assert [c["appointment_id"] for c in body["conflicting_appointments"]] == [first["id"]]
    assert set(body["conflicting_appointments"][0]) == {
        "appointment_id",
        "patient_id",
        "status",
        "start_time",
        "end_time",
    }


async def test_back_to_back_bookings_do_not_clash(book, patient, practitioner) -> None:
    start = future()
    await booked(book, patient, practitioner, start)
    await booked(book, patient, practitioner, start + timedelta(minutes=30))


async def test_full_slot_is_409_and_blocked_slot_is_409(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner, make_slot, make_patient
) -> None:
    slot = await make_slot(practitioner["id"], future())
    first = await book(patient_id=str(patient.id), time_slot_id=slot["id"])
    assert first.status_code == 201
    other = await make_patient()
    resp = await book(patient_id=str(other.id), time_slot_id=slot["id"])
    assert resp.status_code == 409
    assert resp.json()["detail"] == "The time slot is fully booked."
    assert [c["appointment_id"] for c in resp.json()["conflicting_appointments"]] == [first.json()["id"]]

    blocked = await make_slot(practitioner["id"], future(days=5))
    assert (await client.post(f"{API}/time-slots/{blocked['id']}/block", headers=auth)).status_code == 200
    resp = await book(patient_id=str(patient.id), time_slot_id=blocked["id"])
    assert (resp.status_code, resp.json()["detail"]) == (409, "The time slot is blocked.")


async def test_group_slot_takes_bookings_up_to_its_capacity(
    book, practitioner, make_slot, make_patient
) -> None:
    slot = await make_slot(practitioner["id"], future(), capacity=2)
    results = [
        (await book(patient_id=str((await make_patient()).id), time_slot_id=slot["id"])).status_code
        for _ in range(3)
    ]
    assert results == [201, 201, 409]


async def test_inactive_practitioner_cannot_be_booked(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner
) -> None:
    await client.patch(f"{API}/practitioners/{practitioner['id']}", json={"is_active": False}, headers=auth)
    start = future()
    resp = await book(
        patient_id=str(patient.id),
        practitioner_id=practitioner["id"],
        start_time=start,
        end_time=start + timedelta(minutes=30),
    )
    assert resp.status_code == 409


# ------------------------------------------------------------------ get / patch / cancel / delete


async def test_get_returns_the_appointment_and_unknown_or_foreign_is_404(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner, make_tenant, headers_for
) -> None:
    created = await booked(book, patient, practitioner, future())
    resp = await client.get(f"{BASE}/{created['id']}", headers=auth)
    assert resp.status_code == 200
    assert "patient" not in resp.json()
    assert (await client.get(f"{BASE}/{uuid.uuid4()}", headers=auth)).status_code == 404
    other = headers_for(await make_tenant())
    for method, path in [
        ("GET", ""),
        ("PATCH", ""),
        ("POST", "/cancel"),
        ("DELETE", ""),
    ]:
        json = {"notes": "x"} if method == "PATCH" else None
        resp = await client.request(method, f"{BASE}/{created['id']}{path}", headers=other, json=json)
        assert resp.status_code == 404, (method, path)
    assert (await client.get(f"{BASE}/{created['id']}", headers=auth)).json()["status"] == "booked"


async def test_malformed_appointment_id_is_422(client: httpx.AsyncClient, auth: dict) -> None:
    assert (await client.get(f"{BASE}/not-a-uuid", headers=auth)).status_code == 422


async def test_status_lifecycle_stamps_each_step(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner
) -> None:
    created = await booked(book, patient, practitioner, future())
    for status, stamp in [
        ("confirmed", "confirmed_at"),
        ("checked_in", "checked_in_at"),
        ("completed", "completed_at"),
    ]:
        resp = await client.patch(f"{BASE}/{created['id']}", json={"status": status}, headers=auth)
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == status
        assert resp.json()[stamp] is not None


@pytest.mark.parametrize(
    ("path", "target"),
    [
        (["completed"], "completed"),  # booked cannot jump to completed
        (["cancelled"], "confirmed"),
        (["no_show"], "checked_in"),
        (["confirmed", "checked_in"], "no_show"),
    ],
)
async def test_invalid_transition_is_409(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner, path: list[str], target: str
) -> None:
    created = await booked(book, patient, practitioner, future())
    for step in path:
        if step != "completed":
            resp = await client.patch(f"{BASE}/{created['id']}", json={"status": step}, headers=auth)
            assert resp.status_code == 200, resp.text
    resp = await client.patch(f"{BASE}/{created['id']}", json={"status": target}, headers=auth)
    assert resp.status_code == 409
    assert "cannot go from" in resp.json()["detail"]


async def test_patch_with_invalid_body_is_422(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner
) -> None:
    created = await booked(book, patient, practitioner, future())
    for body in [
        {"status": "teleported"},
        {"start_time": "2030-01-01T10:00:00Z"},
        {"tenant_id": str(uuid.uuid4())},
        {
            "time_slot_id": str(uuid.uuid4()),
            "start_time": "2030-01-01T10:00:00Z",
            "end_time": "2030-01-01T11:00:00Z",
        },
    ]:
        assert (await client.patch(f"{BASE}/{created['id']}", json=body, headers=auth)).status_code == 422


async def test_reschedule_to_new_times_and_into_a_clash(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner, make_patient
) -> None:
    start = future()
    first = await booked(book, patient, practitioner, start)
    second = await booked(book, await make_patient(), practitioner, start + timedelta(hours=2))
    new_start = start + timedelta(days=1)
    resp = await client.patch(
        f"{BASE}/{first['id']}",
        json={
            "start_time": new_start.isoformat(),
            "end_time": (new_start + timedelta(minutes=30)).isoformat(),
        },
        headers=auth,
    )
    assert resp.status_code == 200, resp.text
    assert datetime.fromisoformat(resp.json()["start_time"]) == new_start
    clash = await client.patch(
        f"{BASE}/{first['id']}",
        json={"start_time": second["start_time"], "end_time": second["end_time"]},
        headers=auth,
    )
    assert clash.status_code == 409
    assert [c["appointment_id"] for c in clash.json()["conflicting_appointments"]] == [second["id"]]
    unchanged = (await client.get(f"{BASE}/{first['id']}", headers=auth)).json()
    assert datetime.fromisoformat(unchanged["start_time"]) == new_start


async def test_reschedule_within_own_time_does_not_clash_with_itself(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner
) -> None:
    start = future()
    first = await booked(book, patient, practitioner, start)
    resp = await client.patch(
        f"{BASE}/{first['id']}",
        json={"start_time": start.isoformat(), "end_time": (start + timedelta(minutes=45)).isoformat()},
        headers=auth,
    )
    assert resp.status_code == 200, resp.text


async def test_reschedule_to_another_slot_moves_the_place(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner, make_slot
) -> None:
    old = await make_slot(practitioner["id"], future())
    new = await make_slot(practitioner["id"], future(days=4))
    created = (await book(patient_id=str(patient.id), time_slot_id=old["id"])).json()
    resp = await client.patch(f"{BASE}/{created['id']}", json={"time_slot_id": new["id"]}, headers=auth)
    assert resp.status_code == 200, resp.text
    assert (resp.json()["time_slot_id"], resp.json()["start_time"]) == (new["id"], new["start_time"])
    counts = [
        (await client.get(f"{API}/time-slots/{s['id']}", headers=auth)).json()["booked_count"]
        for s in (old, new)
    ]
    assert counts == [0, 1]
    assert (
        await client.patch(f"{BASE}/{created['id']}", json={"time_slot_id": str(uuid.uuid4())}, headers=auth)
    ).status_code == 404


async def test_completed_appointment_cannot_be_rescheduled(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner
) -> None:
    created = await booked(book, patient, practitioner, future())
    for status in ("checked_in", "completed"):
        await client.patch(f"{BASE}/{created['id']}", json={"status": status}, headers=auth)
    start = future(days=6)
    resp = await client.patch(
        f"{BASE}/{created['id']}",
        json={"start_time": start.isoformat(), "end_time": (start + timedelta(minutes=30)).isoformat()},
        headers=auth,
    )
    assert resp.status_code == 409


async def test_cancel_frees_the_slot_and_a_second_cancel_is_409(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner, make_slot, make_patient
) -> None:
    slot = await make_slot(practitioner["id"], future())
    created = (await book(patient_id=str(patient.id), time_slot_id=slot["id"])).json()
    resp = await client.post(f"{BASE}/{created['id']}/cancel", params={"notify_patient": False}, headers=auth)
    assert resp.status_code == 200
    assert resp.json()["status"] == "cancelled"
    assert resp.json()["cancelled_at"] is not None
    assert (await client.get(f"{API}/time-slots/{slot['id']}", headers=auth)).json()["booked_count"] == 0
    rebook = await book(patient_id=str((await make_patient()).id), time_slot_id=slot["id"])
    assert rebook.status_code == 201
    again = await client.post(f"{BASE}/{created['id']}/cancel", headers=auth)
    assert again.status_code == 409
    assert (await client.post(f"{BASE}/{uuid.uuid4()}/cancel", headers=auth)).status_code == 404
    assert (
        await client.post(f"{BASE}/{created['id']}/cancel?notify_patient=maybe", headers=auth)
    ).status_code == 422


async def test_cancelled_time_can_be_booked_again(book, patient, practitioner, client, auth) -> None:
    start = future()
    first = await booked(book, patient, practitioner, start)
    await client.post(f"{BASE}/{first['id']}/cancel", headers=auth)
    await booked(book, patient, practitioner, start)


async def test_delete_is_204_then_404_and_frees_the_slot(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner, make_slot, headers_for, tenant_id
) -> None:
    slot = await make_slot(practitioner["id"], future())
    created = (await book(patient_id=str(patient.id), time_slot_id=slot["id"])).json()
    viewer = headers_for(tenant_id, "viewer")
    assert (await client.delete(f"{BASE}/{created['id']}", headers=viewer)).status_code == 403
    resp = await client.delete(f"{BASE}/{created['id']}", headers=auth)
    assert (resp.status_code, resp.content) == (204, b"")
    assert (await client.get(f"{BASE}/{created['id']}", headers=auth)).status_code == 404
    assert (await client.delete(f"{BASE}/{created['id']}", headers=auth)).status_code == 404
    assert (await client.get(f"{API}/time-slots/{slot['id']}", headers=auth)).json()["booked_count"] == 0


# ------------------------------------------------------------------ conflicts


async def test_conflicts_lists_overlaps_and_honours_exclude(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner
) -> None:
    start = future()
    first = await booked(book, patient, practitioner, start)
    params = {
        "practitioner_id": practitioner["id"],
        "start_time": (start + timedelta(minutes=10)).isoformat(),
        "end_time": (start + timedelta(minutes=20)).isoformat(),
    }
    resp = await client.get(f"{BASE}/conflicts", params=params, headers=auth)
    assert resp.status_code == 200
    body = resp.json()
    assert (body["has_conflict"], body["conflict_count"]) == (True, 1)
    assert (
        body["conflicting_appointments"][0]
        == {
            "appointment_id": first["id"],
            "patient_id": str(patient.id),
            "status": "booked",
            "start_time": first["start_time"].replace("+00:00", "Z"),
            "end_time": first["end_time"].replace("+00:00", "Z"),
        }
        or body["conflicting_appointments"][0]["appointment_id"] == first["id"]
    )
    excluded = await client.get(
        f"{BASE}/conflicts", params={**params, "exclude_appointment_id": first["id"]}, headers=auth
    )
    assert excluded.json() == {"has_conflict": False, "conflict_count": 0, "conflicting_appointments": []}


async def test_conflicts_validation_and_unknown_practitioner(
    client: httpx.AsyncClient, auth: dict, practitioner
) -> None:
    start = future()
    good = {
        "practitioner_id": practitioner["id"],
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(minutes=30)).isoformat(),
    }
    assert (
        await client.get(f"{BASE}/conflicts", params={"practitioner_id": practitioner["id"]}, headers=auth)
    ).status_code == 422
    reversed_ = {**good, "start_time": good["end_time"], "end_time": good["start_time"]}
    assert (await client.get(f"{BASE}/conflicts", params=reversed_, headers=auth)).status_code == 422
    unknown = {**good, "practitioner_id": str(uuid.uuid4())}
    assert (await client.get(f"{BASE}/conflicts", params=unknown, headers=auth)).status_code == 404


# ------------------------------------------------------------------ lists, today, upcoming, stats


async def test_list_filters_by_everything_the_reference_names(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner, make_patient, make_practitioner
) -> None:
    other_patient, other_practitioner = await make_patient(), await make_practitioner()
    location = (await client.post(f"{API}/locations", json={"name": "Main"}, headers=auth)).json()
    a = await booked(book, patient, practitioner, future(days=3), location_id=location["id"])
    b = await booked(book, other_patient, other_practitioner, future(days=5))
    c = await booked(book, patient, other_practitioner, future(days=7))
    await client.patch(f"{BASE}/{c['id']}", json={"status": "confirmed"}, headers=auth)

    async def ids(**params) -> list[str]:
        resp = await client.get(BASE, params=params, headers=auth)
        assert resp.status_code == 200, resp.text
        return [i["id"] for i in resp.json()["items"]]

    assert await ids() == [a["id"], b["id"], c["id"]]
    assert await ids(patient_id=str(patient.id)) == [a["id"], c["id"]]
    assert await ids(practitioner_id=other_practitioner["id"]) == [b["id"], c["id"]]
    assert await ids(location_id=location["id"]) == [a["id"]]
    assert await ids(status="confirmed") == [c["id"]]
    day_b = future(days=5).date().isoformat()
    assert await ids(start_date=day_b) == [b["id"], c["id"]]
    assert await ids(end_date=day_b) == [a["id"], b["id"]]
    assert await ids(start_date=day_b, end_date=day_b) == [b["id"]]
    page = (await client.get(BASE, params={"page_size": 2}, headers=auth)).json()
    assert (page["total"], page["has_next"], len(page["items"])) == (3, True, 2)
    assert (await client.get(BASE, params={"status": "nope"}, headers=auth)).status_code == 422
    assert (await client.get(BASE, params={"start_date": "01/02/2030"}, headers=auth)).status_code == 422


async def test_today_uses_the_locations_local_day(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner, make_practitioner
) -> None:
    # A location 14 hours ahead of UTC: "today" there is a different date for part of every UTC day.
    kiritimati = (
        await client.post(
            f"{API}/locations", json={"name": "Line Islands", "timezone": "Pacific/Kiritimati"}, headers=auth
        )
    ).json()
    from zoneinfo import ZoneInfo

    local_now = datetime.now(ZoneInfo("Pacific/Kiritimati"))
    local_noon_today = local_now.replace(hour=12, minute=0, second=0, microsecond=0)
    local_noon_tomorrow = local_noon_today + timedelta(days=1)
    today_there = await booked(
        book, patient, practitioner, local_noon_today.astimezone(UTC), location_id=kiritimati["id"]
    )
    await booked(
        book, patient, practitioner, local_noon_tomorrow.astimezone(UTC), location_id=kiritimati["id"]
    )
    utc_doc = await make_practitioner()
    utc_now = datetime.now(UTC)
    today_utc = await booked(
        book, patient, utc_doc, utc_now.replace(hour=0, minute=0, second=0, microsecond=0)
    )
    resp = await client.get(f"{BASE}/today", headers=auth)
    assert resp.status_code == 200
    got = {a["id"] for a in resp.json()}
    assert got == {today_there["id"], today_utc["id"]}
    # Each entry is the appointment with its summaries exactly as booking answered it (`with_details`).
    by_id = {a["id"]: a for a in resp.json()}
    assert by_id == {today_there["id"]: today_there, today_utc["id"]: today_utc}
    assert by_id[today_there["id"]]["location"]["timezone"] == "Pacific/Kiritimati"
    assert by_id[today_there["id"]]["patient"]["name"] == "Pat Doe"
    assert by_id[today_utc["id"]]["location"] is None
    filtered = await client.get(f"{BASE}/today", params={"practitioner_id": utc_doc["id"]}, headers=auth)
    assert [a["id"] for a in filtered.json()] == [today_utc["id"]]
    assert (await client.get(f"{BASE}/today", params={"status": "bogus"}, headers=auth)).status_code == 422


async def test_today_is_the_local_day_across_a_dst_change(
    client: httpx.AsyncClient, auth: dict, app, tenant_id, book, patient, practitioner, make_practitioner
) -> None:
    """At the end of New York's 25-hour day when the clocks go back, its first minute is today and the
    minutes either side are not; at the same instant Kiritimati is already on the next day, and an
    appointment without a location takes the tenant's zone (UTC)."""
    from zoneinfo import ZoneInfo

    from core.reads import TenantReads
    from domain.scheduling import reads as appointment_reads

    async def location(zone: str) -> str:
        resp = await client.post(f"{API}/locations", json={"name": zone, "timezone": zone}, headers=auth)
        return resp.json()["id"]

    new_york, kiritimati = ZoneInfo("America/New_York"), ZoneInfo("Pacific/Kiritimati")
    ny, line = await location("America/New_York"), await location("Pacific/Kiritimati")
    now = datetime(2027, 11, 7, 23, 59, tzinfo=new_york)  # 04:59 UTC on the 8th
    other = await make_practitioner()

    async def at(start: datetime, location_id: str | None, doctor: dict = practitioner) -> str:
        extra = {"location_id": location_id} if location_id else {}
        return (await booked(book, patient, doctor, start.astimezone(UTC), minutes=1, **extra))["id"]

    first_minute = await at(datetime(2027, 11, 7, 0, 1, tzinfo=new_york), ny)  # EDT, 24h58m earlier
    await at(datetime(2027, 11, 6, 23, 59, tzinfo=new_york), ny)
    await at(datetime(2027, 11, 8, 0, 0, tzinfo=new_york), ny)
    next_day_there = await at(datetime(2027, 11, 8, 23, 0, tzinfo=kiritimati), line, other)
    await at(datetime(2027, 11, 7, 23, 0, tzinfo=kiritimati), line, other)
    utc_today = await at(datetime(2027, 11, 8, 0, 30, tzinfo=UTC), None, other)
    await at(datetime(2027, 11, 7, 23, 30, tzinfo=UTC), None, other)

    async def today(**filters) -> list[str]:
        rows = await appointment_reads.todays_appointments(
            TenantReads(app.state.read_pool, tenant_id),
            **{"practitioner_id": None, "location_id": None, "status": None, **filters},
            now=now,
        )
        return [row["id"] for row in rows]

    expected = [first_minute, utc_today, next_day_there]  # earliest first
    assert [str(i) for i in await today()] == expected
    assert [str(i) for i in await today(location_id=uuid.UUID(ny))] == [first_minute]
    assert [str(i) for i in await today(practitioner_id=uuid.UUID(other["id"]), status="booked")] == [
        utc_today,
        next_day_there,
    ]
    assert await today(status="cancelled") == []


async def test_upcoming_lists_active_future_appointments_soonest_first(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner, make_patient
) -> None:
    later = await booked(book, patient, practitioner, future(days=9))
    sooner = await booked(book, patient, practitioner, future(days=2))
    cancelled = await booked(book, patient, practitioner, future(days=4))
    await client.post(f"{BASE}/{cancelled['id']}/cancel", headers=auth)
    await booked(book, await make_patient(), practitioner, datetime.now(UTC) - timedelta(days=1))
    resp = await client.get(f"{BASE}/upcoming", headers=auth)
    assert [a["id"] for a in resp.json()] == [sooner["id"], later["id"]]
    assert resp.json()[0]["practitioner"]["id"] == practitioner["id"]
    limited = await client.get(
        f"{BASE}/upcoming", params={"limit": 1, "patient_id": str(patient.id)}, headers=auth
    )
    assert [a["id"] for a in limited.json()] == [sooner["id"]]
    assert (await client.get(f"{BASE}/upcoming", params={"limit": 51}, headers=auth)).status_code == 422


async def test_upcoming_embeds_the_summaries_and_filters_by_practitioner(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner, make_practitioner
) -> None:
    other = await make_practitioner()
    theirs = await booked(book, patient, other, future(days=1))
    mine = await booked(book, patient, practitioner, future(days=3))
    resp = await client.get(f"{BASE}/upcoming", params={"practitioner_id": practitioner["id"]}, headers=auth)
    assert resp.status_code == 200
    [only] = resp.json()
    assert only["id"] == mine["id"] != theirs["id"]
    assert only["patient"] == {"id": str(patient.id), "mrn": patient.mrn, "name": "Pat Doe"}
    assert only["location"] is None
    assert only == mine  # the booking answered with the same shape, read by the same statement


async def test_stats_have_exactly_the_reference_keys(
    client: httpx.AsyncClient, auth: dict, book, patient, practitioner, tenant_id
) -> None:
    a = await booked(book, patient, practitioner, future(days=2), appointment_type="consultation")
    b = await booked(book, patient, practitioner, future(days=3), appointment_type="consultation")
    c = await booked(book, patient, practitioner, future(days=4), appointment_type="procedure")
    await booked(
        book, patient, practitioner, datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    )
    await client.post(f"{BASE}/{b['id']}/cancel", headers=auth)
    for status in ("checked_in", "completed"):
        await client.patch(f"{BASE}/{c['id']}", json={"status": status}, headers=auth)
    resp = await client.get(f"{BASE}/stats", headers=auth)
    assert resp.status_code == 200
    stats = resp.json()
    assert set(stats) == {
        "total",
        "today",
        "upcoming",
        "completed",
        "cancelled",
        "no_show",
        "by_status",
        "by_type",
    }
    assert (stats["total"], stats["today"], stats["completed"], stats["cancelled"], stats["no_show"]) == (
        4,
        1,
        1,
        1,
        0,
    )
    assert stats["upcoming"] == 1  # a: active and in the future
    assert stats["by_status"]["booked"] == 2
    assert stats["by_type"] == {"consultation": 2, "procedure": 1, "unspecified": 1}
    ranged = (
        await client.get(
            f"{BASE}/stats",
            params={"start_date": future(days=2).date().isoformat(), "tenant_id": str(tenant_id)},
            headers=auth,
        )
    ).json()
    assert ranged["total"] == 3
    assert a["id"]
    assert (
        await client.get(f"{BASE}/stats", params={"tenant_id": str(uuid.uuid4())}, headers=auth)
    ).status_code == 403
    assert (await client.get(f"{BASE}/stats", params={"start_date": "x"}, headers=auth)).status_code == 422


async def test_viewer_can_read_but_not_book(
    client: httpx.AsyncClient, book, patient, practitioner, headers_for, tenant_id
) -> None:
    viewer = headers_for(tenant_id, "viewer")
    assert (await client.get(BASE, headers=viewer)).status_code == 200
    start = future()
    resp = await book(
        headers=viewer,
        patient_id=str(patient.id),
        practitioner_id=practitioner["id"],
        start_time=start,
        end_time=start + timedelta(minutes=30),
    )
    assert resp.status_code == 403
