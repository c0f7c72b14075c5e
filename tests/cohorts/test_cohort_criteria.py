"""Each criterion over a small population that straddles it: the preview holds exactly the patients expected,
and a count written independently in plain SQL over the tables agrees."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.cohorts.support import (
    Clinic,
    assert_preview_matches,
    born_years_ago,
    days_ago,
    days_ahead,
)
from tests.tenants import TenantFactory

AGE = "extract(year FROM age((now() AT TIME ZONE t.timezone)::date, p.date_of_birth))"
VISITED_WITHIN = (
    "EXISTS (SELECT 1 FROM appointments a WHERE a.patient_id = p.id AND a.tenant_id = p.tenant_id "
    "AND a.status = 'completed' AND a.start_time >= now() - make_interval(days => :days))"
)


async def check(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    criteria: dict[str, Any],
    sql: str,
    expected: set[uuid.UUID],
    **params: Any,
) -> None:
    """The direct SQL finds `expected`, and so does the cohort's preview."""
    assert await clinic.sql_ids(sql, **params) == expected
    await assert_preview_matches(client, auth, criteria, expected)


async def test_age_counts_whole_years_both_ends_included(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    fifty_today = await clinic.patient(date_of_birth=born_years_ago(50))
    await clinic.patient(date_of_birth=born_years_ago(50, days=1))  # 49 until tomorrow
    seventy_four = await clinic.patient(date_of_birth=born_years_ago(75, days=1))  # 75 tomorrow
    await clinic.patient(date_of_birth=born_years_ago(75))  # 75 today
    await clinic.patient()  # no birth date
    sql = (
        "p.date_of_birth IS NOT NULL AND "
        "extract(year FROM age((now() AT TIME ZONE t.timezone)::date, p.date_of_birth)) BETWEEN 50 AND 74"
    )
    await check(client, auth, clinic, {"age": {"min": 50, "max": 74}}, sql, {fifty_today, seventy_four})


async def test_age_is_counted_on_the_tenants_own_day(
    client: httpx.AsyncClient,
    make_tenant: TenantFactory,
    headers_for: Callable[..., dict[str, str]],
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # A zone whose date differs from UTC's right now (a day ahead, or a day behind).
    zone = "Pacific/Kiritimati" if datetime.now(UTC).hour >= 10 else "Pacific/Pago_Pago"
    tenant = await make_tenant(name="Far Clinic", timezone=zone)
    clinic = Clinic(system_sessionmaker, tenant)
    local_today, utc_today = datetime.now(ZoneInfo(zone)).date(), datetime.now(UTC).date()
    assert local_today != utc_today
    forty_locally = await clinic.patient(date_of_birth=_years_before(local_today, 40))
    forty_in_utc = await clinic.patient(date_of_birth=_years_before(utc_today, 40))
    assert forty_in_utc != forty_locally
    sql = "extract(year FROM age((now() AT TIME ZONE t.timezone)::date, p.date_of_birth)) >= 40"
    # Ahead of UTC: 40 locally today, 39 in UTC. Behind: 40 in UTC today, 39 locally until tomorrow.
    expected = {forty_locally, forty_in_utc} if local_today > utc_today else {forty_locally}
    await check(client, headers_for(tenant), clinic, {"age": {"min": 40}}, sql, expected)
    await check(
        client,
        headers_for(tenant),
        clinic,
        {"age": {"max": 39}},
        f"NOT ({sql})",
        {forty_in_utc, forty_locally} - expected,
    )


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February: the birthday is the 28th
        return day.replace(year=day.year - years, day=28)


async def test_gender_matches_any_listed(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    woman = await clinic.patient(gender="female")
    other = await clinic.patient(gender="other")
    await clinic.patient(gender="male")
    await clinic.patient()
    sql = "p.gender IN ('female', 'other')"
    await check(client, auth, clinic, {"gender": ["female", "other"]}, sql, {woman, other})


async def test_languages_match_the_tag_and_its_regional_forms(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    spanish = await clinic.patient(preferred_language="es")
    mexican = await clinic.patient(preferred_language="es-MX")
    french = await clinic.patient(preferred_language="fr")
    await clinic.patient(preferred_language="en-GB")
    await clinic.patient(preferred_language="est")  # Estonian's prefix is not Spanish
    await clinic.patient()
    sql = "p.preferred_language = 'es' OR p.preferred_language LIKE 'es-%' OR p.preferred_language = 'fr'"
    await check(client, auth, clinic, {"languages": ["ES", "fr"]}, sql, {spanish, mexican, french})


async def test_status(client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic) -> None:
    deceased = await clinic.patient(status="deceased")
    await clinic.patient(status="active")
    await clinic.patient(status="inactive")
    await check(client, auth, clinic, {"status": "deceased"}, "p.status = 'deceased'", {deceased})


async def test_last_visit_not_within_days(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    recent = await clinic.patient(last_name="Recent")
    await clinic.appointment(recent, days_ago(100))
    lapsed = await clinic.patient(last_name="Lapsed")
    await clinic.appointment(lapsed, days_ago(400))
    never_seen = await clinic.patient(last_name="Never")
    cancelled_only = await clinic.patient(last_name="Cancelled")
    await clinic.appointment(cancelled_only, days_ago(10), status="cancelled")
    booked = await clinic.patient(last_name="Booked")
    await clinic.appointment(booked, days_ahead(5), status="booked")
    sql = f"NOT {VISITED_WITHIN}"
    expected = {lapsed, never_seen, cancelled_only, booked}
    await check(client, auth, clinic, {"last_visit": {"not_within_days": 365}}, sql, expected, days=365)
    await check(
        client, auth, clinic, {"last_visit": {"not_within_days": 30}}, sql, expected | {recent}, days=30
    )


async def test_last_visit_never(client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic) -> None:
    seen = await clinic.patient()
    await clinic.appointment(seen, days_ago(900))
    never_seen = await clinic.patient()
    no_show = await clinic.patient()
    await clinic.appointment(no_show, days_ago(3), status="no_show")
    sql = "NOT EXISTS (SELECT 1 FROM appointments a WHERE a.patient_id = p.id AND a.status = 'completed')"
    await check(client, auth, clinic, {"last_visit": {"never": True}}, sql, {never_seen, no_show})


async def test_has_upcoming_appointment(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    booked = await clinic.patient()
    await clinic.appointment(booked, days_ahead(2), status="booked")
    confirmed = await clinic.patient()
    await clinic.appointment(confirmed, days_ahead(20), status="confirmed")
    cancelled = await clinic.patient()
    await clinic.appointment(cancelled, days_ahead(2), status="cancelled")
    past = await clinic.patient()
    await clinic.appointment(past, days_ago(2), status="completed")
    nothing = await clinic.patient()
    sql = (
        "EXISTS (SELECT 1 FROM appointments a WHERE a.patient_id = p.id AND a.start_time > now() "
        "AND a.status IN ('booked', 'confirmed', 'checked_in'))"
    )
    await check(client, auth, clinic, {"has_upcoming_appointment": True}, sql, {booked, confirmed})
    await check(
        client, auth, clinic, {"has_upcoming_appointment": False}, f"NOT {sql}", {cancelled, past, nothing}
    )


async def test_seen_by_practitioners_specialities_and_locations(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    ada = await clinic.practitioner(speciality="Cardiology")
    bob = await clinic.practitioner(speciality="cardiology")
    cy = await clinic.practitioner(speciality="Dermatology")
    downtown, uptown = await clinic.location("Downtown"), await clinic.location("Uptown")
    p1 = await clinic.patient()
    await clinic.appointment(p1, days_ago(100), practitioner_id=ada, location_id=downtown)
    p2 = await clinic.patient()
    await clinic.appointment(p2, days_ago(800), practitioner_id=bob, location_id=uptown)
    p3 = await clinic.patient()  # booked with Ada, not yet seen
    await clinic.appointment(p3, days_ahead(3), status="booked", practitioner_id=ada, location_id=downtown)
    p4 = await clinic.patient()
    await clinic.appointment(p4, days_ago(10), practitioner_id=cy, location_id=downtown)
    await clinic.patient()

    def seen(where: str) -> str:
        return (
            "EXISTS (SELECT 1 FROM appointments a JOIN practitioners d ON d.id = a.practitioner_id "  # noqa: S608
            f"WHERE a.patient_id = p.id AND a.status = 'completed' AND {where})"
        )

    await check(
        client,
        auth,
        clinic,
        {"seen_by": {"practitioner_ids": [str(ada)]}},
        seen("d.id = :ada"),
        {p1},
        ada=ada,
    )
    await check(
        client,
        auth,
        clinic,
        {"seen_by": {"specialities": ["CARDIOLOGY"]}},
        seen("lower(d.speciality) = 'cardiology'"),
        {p1, p2},
    )
    await check(
        client,
        auth,
        clinic,
        {"seen_by": {"specialities": ["cardiology"], "within_days": 730}},
        seen("lower(d.speciality) = 'cardiology' AND a.start_time > now() - interval '730 days'"),
        {p1},
    )
    await check(
        client,
        auth,
        clinic,
        {"seen_by": {"location_ids": [str(downtown)]}},
        seen("a.location_id = :downtown"),
        {p1, p4},
        downtown=downtown,
    )
    await check(
        client,
        auth,
        clinic,
        {"seen_by": {"practitioner_ids": [str(ada), str(cy)], "location_ids": [str(uptown)]}},
        seen("d.id IN (:ada, :cy) AND a.location_id = :uptown"),
        set(),
        ada=ada,
        cy=cy,
        uptown=uptown,
    )


async def test_on_and_not_on_journey(client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic) -> None:
    recall, onboarding = await clinic.journey("Recall"), await clinic.journey("Onboarding")
    running = await clinic.patient()
    await clinic.on_journey(running, recall, "active")
    finished = await clinic.patient()
    await clinic.on_journey(finished, recall, "completed")
    elsewhere = await clinic.patient()
    await clinic.on_journey(elsewhere, onboarding, "active")
    nowhere = await clinic.patient()

    def on(where: str) -> str:
        return f"EXISTS (SELECT 1 FROM journey_instances j WHERE j.patient_id = p.id AND {where})"  # noqa: S608

    active_recall = on("j.journey_id = :recall AND j.status = 'active'")
    ever_recall = on("j.journey_id = :recall")
    ids = [str(recall)]
    await check(
        client, auth, clinic, {"on_journey": {"journey_ids": ids}}, active_recall, {running}, recall=recall
    )
    await check(
        client,
        auth,
        clinic,
        {"on_journey": {"journey_ids": ids, "state": "ever"}},
        ever_recall,
        {running, finished},
        recall=recall,
    )
    await check(client, auth, clinic, {"on_journey": {}}, on("j.status = 'active'"), {running, elsewhere})
    await check(
        client,
        auth,
        clinic,
        {"not_on_journey": {"journey_ids": ids}},
        f"NOT {active_recall}",
        {finished, elsewhere, nowhere},
        recall=recall,
    )
    await check(
        client,
        auth,
        clinic,
        {"not_on_journey": {"journey_ids": ids, "state": "ever"}},
        f"NOT {ever_recall}",
        {elsewhere, nowhere},
        recall=recall,
    )


async def test_consent_leaves_out_who_opted_out_of_the_channel(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    stopped = await clinic.patient()
    await clinic.consent(stopped, "sms", opted_out=True)
    restarted = await clinic.patient()
    await clinic.consent(restarted, "sms", opted_out=False)
    stopped_whatsapp = await clinic.patient()
    await clinic.consent(stopped_whatsapp, "whatsapp", opted_out=True)
    silent = await clinic.patient()
    sql = (
        "NOT EXISTS (SELECT 1 FROM channel_consents c WHERE c.patient_id = p.id AND c.channel = 'sms' "
        "AND c.opted_out)"
    )
    await check(client, auth, clinic, {"consent": "sms"}, sql, {restarted, stopped_whatsapp, silent})


async def test_merged_duplicates_are_never_members(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    survivor = await clinic.patient(gender="female")
    duplicate = await clinic.patient(gender="female")
    await clinic.merge(duplicate, into=survivor)
    await check(client, auth, clinic, {}, "true", {survivor})
    await check(client, auth, clinic, {"gender": ["female"]}, "p.gender = 'female'", {survivor})


async def test_another_tenants_patients_are_never_counted(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    clinic: Clinic,
    make_tenant: TenantFactory,
    system_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    other = Clinic(system_sessionmaker, await make_tenant(name="Other Clinic"))
    for population in (clinic, other):
        await population.patient(gender="female", date_of_birth=born_years_ago(60))
        await population.patient(gender="male", date_of_birth=born_years_ago(60))
    mine = await clinic.sql_ids("p.gender = 'female'")
    assert len(mine) == 1
    await assert_preview_matches(client, auth, {"gender": ["female"], "age": {"min": 50}}, mine)
    await assert_preview_matches(client, auth, {}, await clinic.sql_ids("true"))


async def test_combined_criteria_all_hold(
    client: httpx.AsyncClient, auth: dict[str, str], clinic: Clinic
) -> None:
    recall = await clinic.journey("Screening recall")
    criteria = {
        "age": {"min": 50, "max": 74},
        "gender": ["female"],
        "last_visit": {"not_within_days": 365},
        "consent": "sms",
        "not_on_journey": {"journey_ids": [str(recall)]},
    }
    due = await clinic.patient(last_name="Due", gender="female", date_of_birth=born_years_ago(60))
    await clinic.appointment(due, days_ago(500))
    never_seen = await clinic.patient(last_name="New", gender="female", date_of_birth=born_years_ago(52))
    too_young = await clinic.patient(gender="female", date_of_birth=born_years_ago(40))
    male = await clinic.patient(gender="male", date_of_birth=born_years_ago(60))
    seen_lately = await clinic.patient(gender="female", date_of_birth=born_years_ago(60))
    await clinic.appointment(seen_lately, days_ago(30))
    opted_out = await clinic.patient(gender="female", date_of_birth=born_years_ago(60))
    await clinic.consent(opted_out, "sms", opted_out=True)
    on_recall = await clinic.patient(gender="female", date_of_birth=born_years_ago(60))
    await clinic.on_journey(on_recall, recall)
    assert {too_young, male} - await clinic.sql_ids("true") == set()
    sql = (
        "p.gender = 'female' "  # noqa: S608
        f"AND {AGE} BETWEEN 50 AND 74 "
        f"AND NOT {VISITED_WITHIN} "
        "AND NOT EXISTS (SELECT 1 FROM channel_consents c WHERE c.patient_id = p.id AND c.channel = 'sms' "
        "AND c.opted_out) "
        "AND NOT EXISTS (SELECT 1 FROM journey_instances j WHERE j.patient_id = p.id "
        "AND j.journey_id = :recall AND j.status = 'active')"
    )
    await check(client, auth, clinic, criteria, sql, {due, never_seen}, days=365, recall=recall)
