"""The Communications API: create, list, get, update, delete, read, stats, templates, search."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.communications.conftest import API
from tests.problems import unprocessable

BASE = f"{API}/communications"


async def _create(client: httpx.AsyncClient, auth: dict, **fields) -> httpx.Response:
    return await client.post(BASE, json=fields, headers=auth)


async def test_create_renders_a_template_with_system_and_given_variables(client, auth, make_patient) -> None:
    patient = await make_patient()
    resp = await _create(
        client,
        auth,
        patient_id=str(patient.id),
        channel="sms",
        template_name="lab_results_ready",
        template_vars={"test_name": "blood panel"},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["message"].startswith("Test Clinic: the results of your blood panel are ready")
    assert (body["status"], body["direction"], body["recipient"]) == (
        "queued",
        "outbound",
        patient.phone_primary,
    )


async def test_a_template_variable_left_out_is_422_at_creation(client, auth, make_patient) -> None:
    patient = await make_patient()
    resp = await _create(
        client, auth, patient_id=str(patient.id), channel="sms", template_name="lab_results_ready"
    )
    assert resp.status_code == 422
    assert "test_name" in unprocessable(resp)


async def test_an_unknown_template_is_422(client, auth, make_patient) -> None:
    patient = await make_patient()
    resp = await _create(client, auth, patient_id=str(patient.id), channel="sms", template_name="nope")
    assert resp.status_code == 422


async def test_a_message_for_an_unknown_patient_is_404(client, auth) -> None:
    resp = await _create(client, auth, patient_id=str(uuid.uuid4()), channel="sms", message="Hello")
    assert resp.status_code == 404


async def test_a_future_scheduled_for_makes_the_message_scheduled(client, auth, make_patient) -> None:
    patient = await make_patient()
    resp = await _create(
        client,
        auth,
        patient_id=str(patient.id),
        channel="email",
        subject="Hi",
        message="See you {{ patient_first_name }}",
        scheduled_for="2099-01-01T08:00:00Z",
    )
    assert resp.status_code == 201
    assert (resp.json()["status"], resp.json()["message"]) == ("scheduled", "See you Maria")


async def test_list_filters_by_patient_channel_and_status(client, auth, make_patient) -> None:
    one, two = await make_patient(), await make_patient()
    await _create(client, auth, patient_id=str(one.id), channel="sms", message="a")
    await _create(client, auth, patient_id=str(one.id), channel="email", subject="s", message="b")
    await _create(client, auth, patient_id=str(two.id), channel="sms", message="c")
    listed = (await client.get(BASE, params={"patient_id": str(one.id)}, headers=auth)).json()
    assert (listed["total"], listed["has_previous"]) == (2, False)
    sms = (await client.get(BASE, params={"patient_id": str(one.id), "channel": "sms"}, headers=auth)).json()
    assert [m["message"] for m in sms["items"]] == ["a"]
    queued = (await client.get(BASE, params={"status": "queued"}, headers=auth)).json()
    assert queued["total"] == 3
    assert (await client.get(BASE, params={"channel": "fax"}, headers=auth)).status_code == 422


async def test_get_patch_read_and_delete(client, auth, make_patient) -> None:
    patient = await make_patient()
    created = (await _create(client, auth, patient_id=str(patient.id), channel="sms", message="x")).json()
    url = f"{BASE}/{created['id']}"
    assert (await client.get(url, headers=auth)).json()["id"] == created["id"]
    delivered = await client.patch(url, json={"status": "delivered"}, headers=auth)
    assert (delivered.status_code, delivered.json()["status"]) == (200, "delivered")
    assert delivered.json()["delivered_at"] is not None
    backwards = await client.patch(url, json={"status": "sent"}, headers=auth)
    assert backwards.status_code == 409
    read = await client.patch(f"{url}/read", headers=auth)
    assert (read.json()["status"], read.json()["read_at"] is not None) == ("read", True)
    assert (await client.delete(url, headers=auth)).status_code == 204
    assert (await client.get(url, headers=auth)).status_code == 404
    assert (await client.patch(f"{url}/read", headers=auth)).status_code == 404


async def test_failed_with_error_message_is_final(client, auth, make_patient) -> None:
    patient = await make_patient()
    created = (await _create(client, auth, patient_id=str(patient.id), channel="sms", message="x")).json()
    url = f"{BASE}/{created['id']}"
    failed = await client.patch(
        url, json={"status": "failed", "error_message": "Number disconnected"}, headers=auth
    )
    assert (failed.json()["status"], failed.json()["error_message"]) == ("failed", "Number disconnected")
    assert (await client.patch(f"{url}/read", headers=auth)).status_code == 409
    assert (await client.patch(url, json={"status": "queued"}, headers=auth)).status_code == 422


async def test_stats_have_exactly_the_reference_keys(client, auth, make_patient) -> None:
    patient = await make_patient()
    first = (await _create(client, auth, patient_id=str(patient.id), channel="sms", message="x")).json()
    await _create(client, auth, patient_id=str(patient.id), channel="whatsapp", message="y")
    await client.patch(f"{BASE}/{first['id']}/read", headers=auth)
    stats = (await client.get(f"{BASE}/stats", headers=auth)).json()
    assert set(stats) == {"total", "by_channel", "by_status", "sent", "pending", "failed"}
    assert stats["by_channel"] == {"whatsapp": 1, "sms": 1, "email": 0}
    assert stats["by_status"] == {"sent": 1, "delivered": 1, "read": 1, "pending": 1, "failed": 0}
    assert (stats["total"], stats["sent"], stats["pending"], stats["failed"]) == (2, 1, 1, 0)


async def test_templates_have_the_reference_shape_and_filters(client, auth) -> None:
    everything = (await client.get(f"{BASE}/templates", headers=auth)).json()
    assert set(everything) == {"templates", "total", "channels", "categories"}
    assert everything["total"] >= 9 and everything["channels"] == ["whatsapp", "sms", "email"]
    assert set(everything["templates"][0]) == {
        "id",
        "name",
        "channel",
        "category",
        "subject",
        "body",
        "variables",
        "language",
    }
    billing = (await client.get(f"{BASE}/templates", params={"category": "billing"}, headers=auth)).json()
    assert {t["category"] for t in billing["templates"]} == {"billing"}
    sms = (await client.get(f"{BASE}/templates", params={"channel": "sms"}, headers=auth)).json()
    assert {t["channel"] for t in sms["templates"]} == {"sms"}


@pytest.mark.parametrize("share", [0.0, 0.001, 0.5])  # the GIN index; slice by slice; newest first
async def test_search_finds_words_ranked_and_filtered(client, auth, make_patient, monkeypatch, share) -> None:
    from domain.communications import reads

    async def expected_share(*_: object) -> float:
        return share

    monkeypatch.setattr(reads, "expected_share", expected_share)
    one, two = await make_patient(), await make_patient()
    await _create(
        client, auth, patient_id=str(one.id), channel="sms", message="Your insulin prescription is ready"
    )
    await _create(
        client, auth, patient_id=str(one.id), channel="sms", message="insulin insulin dosage changed"
    )
    await _create(client, auth, patient_id=str(two.id), channel="email", subject="Insulin", message="info")
    await _create(client, auth, patient_id=str(two.id), channel="sms", message="Unrelated text")
    found = (await client.get(f"{BASE}/search", params={"query": "insulin"}, headers=auth)).json()
    assert found["total"] == 3
    assert found["items"][0]["message"] == "insulin insulin dosage changed"
    mine = (
        await client.get(
            f"{BASE}/search", params={"query": "insulin", "patient_id": str(two.id)}, headers=auth
        )
    ).json()
    assert [m["channel"] for m in mine["items"]] == ["email"]
    paged = (
        await client.get(f"{BASE}/search", params={"query": "insulin", "page_size": 1}, headers=auth)
    ).json()
    assert (len(paged["items"]), paged["has_next"]) == (1, True)
    future = (
        await client.get(
            f"{BASE}/search", params={"query": "insulin", "date_from": "2099-01-01T00:00:00Z"}, headers=auth
        )
    ).json()
    assert future["total"] == 0
    assert (await client.get(f"{BASE}/search", params={"query": "x"}, headers=auth)).status_code == 422


async def test_another_tenants_message_is_404(client, auth, make_patient, make_tenant, headers_for) -> None:
    patient = await make_patient()
    created = (await _create(client, auth, patient_id=str(patient.id), channel="sms", message="x")).json()
    other = headers_for(await make_tenant())
    assert (await client.get(f"{BASE}/{created['id']}", headers=other)).status_code == 404
    assert (await client.delete(f"{BASE}/{created['id']}", headers=other)).status_code == 404
    assert (
        await client.post(
            BASE, json={"patient_id": str(patient.id), "channel": "sms", "message": "x"}, headers=other
        )
    ).status_code == 404


@pytest.mark.parametrize(
    ("share", "scan_rows"),
    [
        (0.0, 50_000),  # a word too rare for the statistics: the GIN index alone
        (0.001, 50_000),  # a word in the statistics, but not common: the GIN index, slice by slice
        (0.5, 50_000),  # a common word: the newest messages first
        (0.5, 2),  # a common word, but too few among the newest: then the GIN index, slice by slice
    ],
)
async def test_search_ranks_the_newest_window_and_stays_in_the_tenant(
    client, auth, make_patient, make_tenant, headers_for, monkeypatch, share, scan_rows
) -> None:
    from domain.communications import reads

    async def expected_share(*_: object) -> float:
        return share

    monkeypatch.setattr(reads, "expected_share", expected_share)
    monkeypatch.setattr(reads, "SCAN_ROWS", scan_rows)
    patient = await make_patient()
    texts = ["insulin once", "insulin insulin insulin", "insulin", "insulin insulin", "no match here"]
    for text in texts:  # created oldest to newest
        await _create(client, auth, patient_id=str(patient.id), channel="sms", message=text)
    other_tenant = await make_tenant()
    stranger = await make_patient(tenant=other_tenant)
    await _create(
        client, headers_for(other_tenant), patient_id=str(stranger.id), channel="sms", message="insulin x9"
    )
    everything = (await client.get(f"{BASE}/search", params={"query": "insulin"}, headers=auth)).json()
    assert everything["total"] == 4 and everything["has_next"] is False
    assert everything["items"][0]["message"] == "insulin insulin insulin"
    assert "insulin x9" not in [m["message"] for m in everything["items"]]

    monkeypatch.setattr(reads, "SEARCH_WINDOW", 2)  # rank the newest two, then newest first
    window = (await client.get(f"{BASE}/search", params={"query": "insulin"}, headers=auth)).json()
    assert [m["message"] for m in window["items"]] == [
        "insulin insulin",
        "insulin",
        "insulin insulin insulin",
        "insulin once",
    ]
    first = (
        await client.get(f"{BASE}/search", params={"query": "insulin", "page_size": 1}, headers=auth)
    ).json()
    assert (first["total"], first["has_next"]) == (3, True)  # a lower bound once past the window
    assert first["items"][0]["message"] == "insulin insulin"


async def test_expected_share_reads_the_statistics_of_the_words(
    client, auth, make_patient, system_sessionmaker, app
) -> None:
    from sqlalchemy import text

    from domain.communications.reads import expected_share, forget_word_statistics

    patient = await make_patient()
    for n in range(20):
        await _create(client, auth, patient_id=str(patient.id), channel="sms", message=f"zebrafish note {n}")
    async with system_sessionmaker() as session:
        await session.execute(text("ANALYZE communications"))
        await session.commit()  # the statistics are the transaction's until then
    pool = app.state.read_pool
    forget_word_statistics()  # a process reads them once per WORD_STATISTICS_SECONDS
    assert await expected_share(pool, "zebrafish") > 0
    assert await expected_share(pool, "Zebrafish, note!") > 0  # the words, not the punctuation
    assert await expected_share(pool, "zebrafish quokkaword") == 0  # a word the statistics never saw
