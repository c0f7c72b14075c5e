"""Reporting periods, resolved to local dates and UTC instants in the tenant's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from core.errors import Unprocessable

MAX_CUSTOM_DAYS = 366


class TimePeriod(StrEnum):
    """The reference's `time_period` values."""

    TODAY = "TODAY"
    YESTERDAY = "YESTERDAY"
    LAST_7_DAYS = "LAST_7_DAYS"
    LAST_30_DAYS = "LAST_30_DAYS"
    LAST_90_DAYS = "LAST_90_DAYS"
    THIS_MONTH = "THIS_MONTH"
    LAST_MONTH = "LAST_MONTH"
    CUSTOM = "CUSTOM"


@dataclass(frozen=True)
class Window:
    """Local dates `start_date`..`end_date` (inclusive) and the UTC instants [start, end) they cover."""

    period: TimePeriod
    timezone: str
    start_date: date
    end_date: date
    start: datetime
    end: datetime


def _first_of_previous_month(day: date) -> date:
    first = day.replace(day=1)
    return (first - timedelta(days=1)).replace(day=1)


def local_dates(
    period: TimePeriod, today: date, start_date: date | None = None, end_date: date | None = None
) -> tuple[date, date]:
    """The first and last local date of `period` as seen on `today`; 422 for an unusable CUSTOM range."""
    if period is TimePeriod.CUSTOM:
        if start_date is None or end_date is None:
            raise Unprocessable(
                "time_period CUSTOM needs start_date and end_date (YYYY-MM-DD).", loc=("query", "start_date")
            )
        if end_date < start_date:
            raise Unprocessable("end_date must not be before start_date.", loc=("query", "end_date"))
        if (end_date - start_date).days >= MAX_CUSTOM_DAYS:
            raise Unprocessable(
                f"A custom period spans at most {MAX_CUSTOM_DAYS} days.", loc=("query", "end_date")
            )
        return start_date, end_date
    spans = {
        TimePeriod.TODAY: (today, today),
        TimePeriod.YESTERDAY: (today - timedelta(days=1), today - timedelta(days=1)),
        TimePeriod.LAST_7_DAYS: (today - timedelta(days=6), today),
        TimePeriod.LAST_30_DAYS: (today - timedelta(days=29), today),
        TimePeriod.LAST_90_DAYS: (today - timedelta(days=89), today),
        TimePeriod.THIS_MONTH: (today.replace(day=1), today),
        TimePeriod.LAST_MONTH: (_first_of_previous_month(today), today.replace(day=1) - timedelta(days=1)),
    }
    return spans[period]


def resolve(
    period: TimePeriod,
    timezone: str,
    *,
    start_date: date | None = None,
    end_date: date | None = None,
    now: datetime | None = None,
) -> Window:
    """The window of `period` in `timezone` (local midnights, converted to UTC)."""
    zone = ZoneInfo(timezone)
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    first, last = local_dates(period, today, start_date, end_date)
    start = datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return Window(period, timezone, first, last, start, end)
