"""Sender pacing: how fast each sender hands messages to its provider, and who goes first.

A sender is a channel's sending address (Twilio's SMS number, its WhatsApp number, SendGrid's from
address), shared by every tenant, and providers limit each: a US or Canadian long code takes about one
message a second, a toll-free number three, a short code a hundred, WhatsApp eighty; past its API's
concurrency Twilio answers 429 (error 20429). Each sender has a throughput
(`PRM_<CHANNEL>_MESSAGES_PER_SECOND`, else the default for its kind; `sender_for`) and a row in
`sender_pacing` holding `next_free`, the moment its next message may go: a token bucket kept as one
timestamp (the generic cell rate algorithm). Taking a turn moves `next_free` on by one interval (1/rate)
from `max(next_free, now - burst)` in one upsert, so any number of workers share a sender without a race,
and an idle sender catches up for at most `sender_burst_seconds` of its throughput. The database's clock
is the one clock every worker reads.

Two priorities, so a running campaign never delays a reminder:
- an interactive message (a reminder, a reply, the booking chat, a coordinator's message) takes its turn and
  goes at once, whatever the bucket holds: it only pushes the campaigns' next turn back;
- a campaign message (`BULK`, marked so when its campaign records it) takes its turn and waits for it. Its
  turn is kept on the message (`meta_data["turn_at"]`), so a retry waits out the same turn rather than
  queueing again. `delivery.deliver` waits up to `TURN_SLACK` itself; a longer wait is `SenderBusy`, which
  the campaign's batch activity sleeps out in process and the delivery workflow's retry policy waits out.
  A kept turn more than `STALE_TURN` in the past is given up for a new one: a message held long after its
  turn (quiet hours, an outage) queues again, so many released together do not go in one burst.

A provider's 429 moves the sender's `next_free` on by `THROTTLE_PAUSE` for everyone (`back_off`); the
message's attempt is closed (the provider took nothing) and its retry takes a new turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from sqlalchemy import DateTime, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.settings import Settings
from domain.communications.models import Communication, SenderPacing
from domain.communications.provider_contract import MessageProvider, ProviderError
from domain.communications.providers import OutboxProvider
from domain.enums import Channel

PRIORITY = "priority"  # the meta_data key naming a message's priority (absent: interactive)
BULK = "bulk"
TURN_AT = "turn_at"  # the meta_data key of a bulk message's turn (ISO 8601, the database's clock)
TURN_SLACK = 1.0  # seconds: a turn this close is waited for by the send step itself
STALE_TURN = 1.0  # seconds: a kept turn further past than this is stale (the message was held since)
THROTTLE_PAUSE = timedelta(seconds=1)  # a provider's 429 holds the sender this long
THROTTLED_CODES = frozenset({"429", "20429"})  # Twilio's 429 / error 20429, SendGrid's 429

# Messages per second by kind of sender, when a provider sends and no setting says otherwise.
DEFAULT_RATES = {
    "long_code": 1.0,  # a US or Canadian 10-digit number
    "toll_free": 3.0,
    "short_code": 100.0,
    "other": 10.0,  # a number elsewhere, or an alphanumeric sender id
    Channel.WHATSAPP.value: 80.0,
    Channel.EMAIL.value: 100.0,
}


@dataclass(frozen=True)
class Sender:
    """One sender: its key in `sender_pacing` (`<channel>:<address>`), its throughput (None: unpaced) and
    how many seconds of it an idle sender may catch up."""

    key: str
    per_second: float | None
    burst_seconds: float = 0.0

    @property
    def interval(self) -> timedelta:
        assert self.per_second  # only paced senders take turns
        return timedelta(seconds=1 / self.per_second)


class SenderBusy(ProviderError):
    """A campaign message's turn is more than `TURN_SLACK` away: nothing was sent and no attempt opened.
    Retryable after `wait_seconds`, when its turn (kept on the message) has come."""

    def __init__(self, wait_seconds: float) -> None:
        super().__init__(
            f"The sender's next turn for this message is {wait_seconds:.1f} s away",
            retryable=True,
            code="sender_busy",
        )
        self.wait_seconds = wait_seconds


def number_kind(address: str) -> str:
    """The kind of an SMS sender address: short_code, toll_free, long_code (US/Canada) or other."""
    digits = address.removeprefix("+")
    if digits.isdigit() and 4 <= len(digits) <= 6 and not address.startswith("+"):
        return "short_code"
    try:
        number = phonenumbers.parse(address, None)
    except phonenumbers.NumberParseException:
        return "other"  # an alphanumeric sender id
    if number.country_code != 1:
        return "other"
    if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.TOLL_FREE:
        return "toll_free"
    return "long_code"


def sender_for(channel: Channel, provider: MessageProvider, settings: Settings) -> Sender:
    """The sender a message on `channel` goes from, through `provider`, and its throughput."""
    configured = {
        Channel.SMS: settings.sms_messages_per_second,
        Channel.WHATSAPP: settings.whatsapp_messages_per_second,
        Channel.EMAIL: settings.email_messages_per_second,
    }[channel]
    address = {
        Channel.SMS: settings.twilio_sms_from,
        Channel.WHATSAPP: settings.twilio_whatsapp_from,
        Channel.EMAIL: settings.sendgrid_from_email,
    }[channel]
    if provider.name == OutboxProvider.name or not address:
        # The outbox sends nothing, so it is paced only when asked to be (benchmarks, tests).
        return Sender(f"{channel.value}:outbox", configured or None, settings.sender_burst_seconds)
    if configured is None:
        kind = number_kind(address) if channel == Channel.SMS else channel.value
        configured = DEFAULT_RATES[kind]
    return Sender(f"{channel.value}:{address}", configured or None, settings.sender_burst_seconds)


def is_bulk(record: Communication) -> bool:
    """Whether the message waits for its sender's turn (a campaign's) rather than going at once."""
    return (record.meta_data or {}).get(PRIORITY) == BULK


def mark_bulk(record: Communication) -> None:
    """Make `record` a bulk message: it waits for its sender's turn."""
    record.meta_data = {**(record.meta_data or {}), PRIORITY: BULK}


async def take_turn(session: AsyncSession, sender: Sender) -> tuple[datetime, float]:
    """Take the sender's next turn: its moment (the database's clock) and the seconds until it (0 or less:
    now). One upsert: concurrent callers get distinct turns, one interval apart."""
    burst = timedelta(seconds=sender.burst_seconds)
    now = func.clock_timestamp()
    row = (
        await session.execute(
            insert(SenderPacing)
            .values(sender=sender.key, next_free=now + sender.interval)
            .on_conflict_do_update(
                index_elements=[SenderPacing.sender],
                set_={"next_free": func.greatest(SenderPacing.next_free, now - burst) + sender.interval},
            )
            .returning(
                SenderPacing.next_free - sender.interval,
                func.extract("epoch", SenderPacing.next_free - sender.interval - now),
            )
        )
    ).one()
    return row[0], float(row[1])


async def turn_of(session: AsyncSession, record: Communication, sender: Sender) -> float:
    """Seconds until a bulk message's turn, taking one (recorded on the message) unless it holds one that
    has not gone stale (more than `STALE_TURN` past)."""
    held = (record.meta_data or {}).get(TURN_AT)
    if held is not None:
        turn = literal(datetime.fromisoformat(held), DateTime(timezone=True))
        left = float(await session.scalar(select(func.extract("epoch", turn - func.clock_timestamp()))) or 0)
        if left >= -STALE_TURN:  # its turn is to come, or has just come: it keeps its place
            return left
    at, wait = await take_turn(session, sender)
    record.meta_data = {**(record.meta_data or {}), TURN_AT: at.isoformat()}
    return wait


async def back_off(session: AsyncSession, sender: Sender) -> None:
    """The provider said 429: hold the sender for `THROTTLE_PAUSE` from now (or from its next turn)."""
    now = func.clock_timestamp()
    await session.execute(
        insert(SenderPacing)
        .values(sender=sender.key, next_free=now + THROTTLE_PAUSE)
        .on_conflict_do_update(
            index_elements=[SenderPacing.sender],
            set_={"next_free": func.greatest(SenderPacing.next_free, now) + THROTTLE_PAUSE},
        )
    )


def throttled(exc: ProviderError) -> bool:
    """Whether the provider refused for too many requests (it took nothing: try again later)."""
    return exc.retryable and not exc.in_doubt and (exc.code or "") in THROTTLED_CODES
