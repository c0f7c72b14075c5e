"""The trigger matcher on its own: which events a journey's `trigger_conditions` accept, and why not."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from domain.enums import RepeatPolicy
from domain.journeys.trigger_conditions import EventFacts, evaluate, mismatches, trigger_adapter

ON = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)


def trigger(**shape: Any) -> Any:
    """A validated trigger."""
    return trigger_adapter.validate_python(shape)


def event(type_: str = "patient.registered", **fields: Any) -> EventFacts:
    """An event on 2026-06-15."""
    return EventFacts(type=type_, occurred_at=ON, **fields)


@pytest.mark.parametrize(
    ("born", "matches"),
    [
        (date(2008, 6, 15), True),  # 18 today
        (date(2008, 6, 16), False),  # 18 tomorrow
        (date(1961, 6, 16), True),  # still 64
        (date(1961, 6, 15), False),  # 65 today
    ],
)
def test_age_is_whole_years_on_the_events_day_both_ends_included(born: date, matches: bool) -> None:
    adults = trigger(event="patient.registered", conditions={"age": {"min": 18, "max": 64}})
    assert (mismatches(adults, event(date_of_birth=born)) == []) is matches


def test_a_patient_without_a_birth_date_does_not_meet_an_age_condition() -> None:
    adults = trigger(event="patient.registered", conditions={"age": {"min": 18}})
    assert mismatches(adults, event()) == ["age: the patient has no date of birth"]


@pytest.mark.parametrize(
    ("language", "matches"), [("es", True), ("es-MX", True), ("ES_ar", True), ("est", False)]
)
def test_a_language_matches_its_regional_variants(language: str, matches: bool) -> None:
    spanish = trigger(event="patient.registered", conditions={"languages": ["es"]})
    assert (mismatches(spanish, event(language=language)) == []) is matches


@pytest.mark.parametrize(
    ("text", "matches"),
    [("Can I reschedule?", True), ("RESCHEDULE", True), ("rescheduled already", False), (None, False)],
)
def test_keywords_match_whole_words_case_insensitively(text: str | None, matches: bool) -> None:
    rebook = trigger(event="message.received", conditions={"keywords": ["reschedule", "new time"]})
    assert (mismatches(rebook, event("message.received", text=text)) == []) is matches


@pytest.mark.parametrize(
    ("facts", "matches"),
    [
        ({"procedure_names": ["Total Knee Replacement, left"]}, True),
        ({"procedure_codes": ["27447"]}, True),
        ({"procedure_codes": "27447"}, True),  # one code, not a list
        ({"procedure_names": ["Hip replacement"], "procedure_codes": ["27130"]}, False),
        ({}, False),
    ],
)
def test_a_procedure_matches_a_code_or_part_of_a_name(facts: dict[str, Any], matches: bool) -> None:
    knee = trigger(event="encounter.discharged", conditions={"procedures": ["knee replacement", "27447"]})
    assert (mismatches(knee, event("encounter.discharged", facts=facts)) == []) is matches


def test_appointment_facts_match_any_listed_value_and_every_condition_must_hold() -> None:
    cardiology_consults = trigger(
        event="appointment.no_show",
        conditions={"appointment_types": ["Consultation"], "specialities": ["cardiology", "oncology"]},
    )
    facts = {"appointment_type": "consultation", "speciality": "Cardiology"}
    assert mismatches(cardiology_consults, event("appointment.no_show", facts=facts)) == []
    assert mismatches(
        cardiology_consults, event("appointment.no_show", facts={**facts, "speciality": "dermatology"})
    ) == ["specialities: the event's speciality is not listed"]


def test_a_default_journey_starts_every_new_patient_once_whatever_its_conditions() -> None:
    spanish = trigger(event="patient.registered", conditions={"languages": ["es"]}, delay={"hours": 1})
    verdict = evaluate(True, spanish, event(language="en"))
    assert verdict.matched and verdict.repeat == RepeatPolicy.NEVER
    matching = evaluate(True, spanish, event(language="es"))
    assert matching.delay == timedelta(hours=1) and matching.repeat == RepeatPolicy.NEVER
    assert not evaluate(True, None, event("patient.updated")).matched


def test_a_journey_without_conditions_starts_nothing_by_itself() -> None:
    assert evaluate(False, None, event()).reasons == [
        "the journey has no trigger conditions and is not a default journey"
    ]


def test_the_cooldown_and_delay_come_from_the_conditions() -> None:
    verdict = evaluate(
        False,
        trigger(
            event="ticket.resolved",
            delay={"days": 2},
            repeat={"policy": "after_cooldown", "cooldown": {"days": 30}},
        ),
        event("ticket.resolved"),
    )
    assert (verdict.delay, verdict.repeat, verdict.cooldown) == (
        timedelta(days=2),
        RepeatPolicy.AFTER_COOLDOWN,
        timedelta(days=30),
    )
