"""Business time: SLA targets count only the clinic's working hours, in the tenant's time zone.

Pure functions over aware datetimes. Each working day's window is built from the local date and wall-clock
times, then converted to UTC, so daylight-saving changes shorten or lengthen the day as the clinic's clock
does. A calendar with no working days or an empty window counts every minute (a 24/7 team).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.enums import TicketPriority
from domain.tenants.schemas import TenantSettings

# A target can never be further than this many calendar days away (guards against pathological calendars).
MAX_DAYS = 3660
PRIORITY_LADDER = [TicketPriority.LOW, TicketPriority.MEDIUM, TicketPriority.HIGH, TicketPriority.URGENT]


@dataclass(frozen=True)
class BusinessCalendar:
    """When the SLA clock runs: `start`-`end` local time on `weekdays` (0 = Monday) in `timezone`."""

    timezone: str = "UTC"
    start: time = time(8, 0)
    end: time = time(18, 0)
    weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})

    @property
    def always_open(self) -> bool:
        """True when the calendar has no usable window, so every minute counts."""
        return not self.weekdays or self.end <= self.start

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """The working window of the local `day` in UTC, or None on a day off."""
        if day.weekday() not in self.weekdays:
            return None
        zone = ZoneInfo(self.timezone)
        opens = datetime.combine(day, self.start, tzinfo=zone).astimezone(UTC)
        closes = datetime.combine(day, self.end, tzinfo=zone).astimezone(UTC)
        return (opens, closes) if closes > opens else None


def calendar_for(settings: TenantSettings, timezone: str) -> BusinessCalendar:
    """The calendar of a tenant's settings and time zone."""
    hours = settings.business_hours
    return BusinessCalendar(
        timezone=timezone, start=hours.start, end=hours.end, weekdays=frozenset(hours.weekdays)
    )


def _local_day(cal: BusinessCalendar, moment: datetime) -> date:
    return moment.astimezone(ZoneInfo(cal.timezone)).date()


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("business-time arithmetic needs aware datetimes")
    return moment.astimezone(UTC)


def add_business_time(cal: BusinessCalendar, start: datetime, amount: timedelta) -> datetime:
    """The moment `amount` of working time after `start` (UTC)."""
    cursor, remaining = _utc(start), amount
    if remaining <= timedelta(0):
        return cursor
    if cal.always_open:
        return cursor + remaining
    day = _local_day(cal, cursor) - timedelta(days=1)  # a window may begin on the previous local day
    for _ in range(MAX_DAYS):
        window = cal.window(day)
        day += timedelta(days=1)
        if window is None or window[1] <= cursor:
            continue
        opens = max(window[0], cursor)
        available = window[1] - opens
        if remaining <= available:
            return opens + remaining
        remaining -= available
        cursor = window[1]
    raise ValueError("the business calendar has no working time within ten years")


def add_business_minutes(cal: BusinessCalendar, start: datetime, minutes: float) -> datetime:
    """The moment `minutes` working minutes after `start` (UTC)."""
    return add_business_time(cal, start, timedelta(minutes=minutes))


def business_time_between(cal: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    """Working time from `start` to `end` (zero when `end` is not after `start`)."""
    first, last = _utc(start), _utc(end)
    if last <= first:
        return timedelta(0)
    if cal.always_open:
        return last - first
    total = timedelta(0)
    day, final_day = _local_day(cal, first) - timedelta(days=1), _local_day(cal, last)
    while day <= final_day:
        window = cal.window(day)
        day += timedelta(days=1)
        if window is None:
            continue
        overlap = min(window[1], last) - max(window[0], first)
        if overlap > timedelta(0):
            total += overlap
    return total


def shift_for_pause(
    cal: BusinessCalendar, due: datetime, paused_from: datetime, paused_to: datetime
) -> datetime:
    """Where a due time moves after a pause: the working time left at the pause is left after it."""
    if due <= paused_from:
        return due  # already due before the pause: nothing left to preserve
    left = business_time_between(cal, paused_from, due)
    return add_business_time(cal, max(_utc(paused_to), _utc(paused_from)), left)


@dataclass(frozen=True)
class DueTimes:
    """When a ticket must first be answered and when it must be resolved."""

    response_due_at: datetime
    resolution_due_at: datetime


def due_times(
    cal: BusinessCalendar, settings: TenantSettings, priority: TicketPriority | str, opened_at: datetime
) -> DueTimes:
    """The response and resolution due times of a ticket of `priority` opened at `opened_at`."""
    target = settings.sla[TicketPriority(priority)]
    return DueTimes(
        response_due_at=add_business_minutes(cal, opened_at, target.response_minutes),
        resolution_due_at=add_business_minutes(cal, opened_at, target.resolution_minutes),
    )


def escalated(priority: TicketPriority | str) -> TicketPriority:
    """One step up the priority ladder (urgent stays urgent)."""
    index = PRIORITY_LADDER.index(TicketPriority(priority))
    return PRIORITY_LADDER[min(index + 1, len(PRIORITY_LADDER) - 1)]
