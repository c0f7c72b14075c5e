"""The business-time calculator: SLA targets count only working hours of the tenant's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.enums import TicketPriority
from domain.tenants.schemas import TenantSettings
from domain.tickets.sla import (
    BusinessCalendar,
    add_business_minutes,
    business_time_between,
    calendar_for,
    due_times,
    escalated,
    shift_for_pause,
)

WEEKDAYS_8_TO_18 = BusinessCalendar()  # UTC, Monday-Friday 08:00-18:00


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# 2026-03-02 is a Monday.
def test_minutes_inside_one_working_day_add_plainly() -> None:
    assert add_business_minutes(WEEKDAYS_8_TO_18, utc(2026, 3, 2, 9), 60) == utc(2026, 3, 2, 10)


def test_time_past_closing_continues_next_morning() -> None:
    assert add_business_minutes(WEEKDAYS_8_TO_18, utc(2026, 3, 2, 17, 30), 60) == utc(2026, 3, 3, 8, 30)


def test_weekend_is_skipped() -> None:
    friday_five_pm = utc(2026, 3, 6, 17)
    assert add_business_minutes(WEEKDAYS_8_TO_18, friday_five_pm, 120) == utc(2026, 3, 9, 9)


def test_a_start_outside_hours_counts_from_the_next_opening() -> None:
    saturday = utc(2026, 3, 7, 12)
    assert add_business_minutes(WEEKDAYS_8_TO_18, saturday, 30) == utc(2026, 3, 9, 8, 30)


def test_working_hours_are_read_in_the_tenant_time_zone() -> None:
    new_york = BusinessCalendar(timezone="America/New_York")
    # 08:00 in New York is 13:00 UTC in March before the DST change (EST, UTC-5).
    assert add_business_minutes(new_york, utc(2026, 3, 2, 12), 60) == utc(2026, 3, 2, 14)


def test_a_daylight_saving_day_counts_the_hours_the_clock_shows() -> None:
    # London springs forward at 01:00 on 2026-03-29 (a Sunday): 00:30-03:00 local is 1.5 real hours.
    night = BusinessCalendar(
        timezone="Europe/London", start=time(0, 30), end=time(3, 0), weekdays=frozenset({6})
    )
    london = ZoneInfo("Europe/London")
    start = datetime(2026, 3, 29, 0, 0, tzinfo=london)
    end = datetime(2026, 3, 29, 4, 0, tzinfo=london)
    assert business_time_between(night, start, end) == timedelta(hours=1, minutes=30)


def test_between_and_add_are_inverse() -> None:
    start = utc(2026, 3, 5, 16, 10)
    due = add_business_minutes(WEEKDAYS_8_TO_18, start, 1234)
    assert business_time_between(WEEKDAYS_8_TO_18, start, due) == timedelta(minutes=1234)


def test_a_calendar_without_working_days_counts_every_minute() -> None:
    always = BusinessCalendar(weekdays=frozenset())
    assert add_business_minutes(always, utc(2026, 3, 7, 23), 120) == utc(2026, 3, 8, 1)


def test_a_pause_inside_hours_moves_the_due_time_by_its_length() -> None:
    due = utc(2026, 3, 2, 15)
    assert shift_for_pause(WEEKDAYS_8_TO_18, due, utc(2026, 3, 2, 10), utc(2026, 3, 2, 12)) == utc(
        2026, 3, 2, 17
    )


def test_a_pause_overnight_keeps_the_working_time_that_was_left() -> None:
    due = utc(2026, 3, 3, 10)  # 1 h left on Monday (17-18) + 2 h on Tuesday (8-10) at the pause
    shifted = shift_for_pause(WEEKDAYS_8_TO_18, due, utc(2026, 3, 2, 17), utc(2026, 3, 3, 9))
    assert shifted == utc(2026, 3, 3, 12)


def test_due_times_follow_the_tenant_targets_for_the_priority() -> None:
    settings = TenantSettings()
    due = due_times(calendar_for(settings, "UTC"), settings, TicketPriority.URGENT, utc(2026, 3, 2, 9))
    assert due.response_due_at == utc(2026, 3, 2, 9, 30)
    assert due.resolution_due_at == utc(2026, 3, 2, 13)


@pytest.mark.parametrize(
    ("before", "after"), [("low", "medium"), ("medium", "high"), ("high", "urgent"), ("urgent", "urgent")]
)
def test_escalation_raises_priority_one_step(before: str, after: str) -> None:
    assert escalated(before) == after


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        add_business_minutes(WEEKDAYS_8_TO_18, datetime(2026, 3, 2, 9), 10)
