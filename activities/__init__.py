"""Temporal activities: the side effects workflows ask for, each idempotent under retry."""

from __future__ import annotations

import asyncio
import enum
import functools
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core import metrics
from core.database import bind_tenant, run_after_commit_jobs
from core.errors import DomainError
from core.events import EventSource, set_event_source
from core.settings import Settings
from domain.communications import delivery, dispatch, pacing
from domain.communications.delivery import DeliveryOutcome
from domain.communications.provider_contract import ProviderError

T = TypeVar("T")


class NotBegun(enum.Enum):
    """`deliver_recorded` begins the send itself (the message was recorded in an earlier transaction)."""

    TOKEN = 0


NOT_BEGUN = NotBegun.TOKEN
THROTTLED_TRIES = 5  # a provider's 429s a campaign's batch waits out itself (1, 2, 4, 8, 16 s)
P = ParamSpec("P")


@dataclass
class ActivityDeps:
    """What activities need from the process that hosts them (built once by worker.py)."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]

    def tenant_session(self, tenant_id: str) -> AsyncSession:
        """A session scoped to one tenant (`async with`); the caller commits. `unit_of_work` is the usual
        way in: this is for a step that must commit in several parts."""
        session = self.sessionmaker()
        bind_tenant(session, uuid.UUID(tenant_id))
        set_event_source(session, EventSource.WORKER)  # a booking by chat or from the waitlist
        return session

    @asynccontextmanager
    async def unit_of_work(self, tenant_id: str) -> AsyncIterator[AsyncSession]:
        """An activity's transaction, in one tenant: committed when the block ends (rolled back when it
        raises), then what it queued for after the commit runs (the workflow commands it recorded are
        delivered through the worker's client; metrics counted once committed). A domain error fails the
        activity for good (`domain_errors_are_final`)."""
        with domain_errors_are_final():
            async with self.tenant_session(tenant_id) as session:
                yield session
                await session.commit()
                await run_after_commit_jobs(session)


@contextmanager
def domain_errors_are_final() -> Iterator[None]:
    """A domain error (a patient who cannot be reached, an invalid snapshot, a state the request no longer
    fits) fails the activity for good, named by its class, with its readable detail: a retry would meet
    the same data. Database and provider outages are not domain errors, and the workflow's retry policy
    retries them."""
    try:
        yield
    except DomainError as exc:
        raise ApplicationError(exc.detail, type=type(exc).__name__, non_retryable=True) from exc


async def heartbeating(work: Coroutine[Any, Any, T]) -> T:
    """Await `work`, heartbeating at a third of the activity's heartbeat timeout (if it has one).

    A cancelled attempt (its heartbeat or start-to-close timeout passed, the worker is shutting down) still
    lets `work` finish: a provider call abandoned midway could be accepted with nothing recorded, and the
    retry, finding the message unsent, would send it twice. Waiting is bounded by the provider's HTTP
    timeout, and the retry waits on the message's row lock meanwhile, then finds it sent."""
    timeout = activity.info().heartbeat_timeout
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=timeout.total_seconds() / 3 if timeout else None)
            if not task.done():
                activity.heartbeat()
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise
    return task.result()


def heartbeats(body: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Run an activity's whole body under `heartbeating` (written under `@activity.defn`), so a worker that
    dies mid-activity is noticed within the heartbeat timeout its workflow sets."""

    @functools.wraps(body)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return await heartbeating(body(*args, **kwargs))

    return run


async def deliver_recorded(
    deps: ActivityDeps,
    tenant_id: str,
    communication_id: uuid.UUID,
    now: datetime,
    *,
    patience: float = 0.0,
    begun: delivery.Step | NotBegun = NOT_BEGUN,
) -> None:
    """Hand a message this activity recorded (its delivery start held) to its provider at once; its held
    start is settled (sent, refused or done: no workflow) or released (a durable wait, a fallback to watch,
    a provider failing for now: the delivery workflow takes over) in the transaction that decides which
    (`delivery.send_at_once`). A crash before that leaves the held start to the relay, so the message is
    never lost.

    With `patience` (seconds; a campaign's batch), a campaign message waits here for its sender's turn when
    it comes within that long, and a provider's 429 is waited out here too (`THROTTLED_TRIES` times, the
    sender held back meanwhile), rather than becoming a workflow each.

    `begun`: the first half already ran in the transaction that recorded the message
    (`delivery.begin_at_once`, committed), so only the provider call and its answer are left."""
    sessions = functools.partial(deps.tenant_session, tenant_id)
    throttled = 0
    while True:
        try:
            if isinstance(begun, NotBegun):
                outcome = await delivery.send_at_once(
                    sessions, communication_id, now=now, settings=deps.settings, held=True
                )
            else:
                step, begun = begun, NOT_BEGUN  # a turn waited out or a 429 retried begins anew
                outcome = await delivery.finish_at_once(sessions, communication_id, step, now=now, held=True)
        except pacing.SenderBusy as busy:
            if busy.wait_seconds <= patience:
                await asyncio.sleep(busy.wait_seconds)
                continue
        except ProviderError as exc:  # transient, or an attempt in doubt: the delivery workflow retries
            if patience and pacing.throttled(exc) and throttled < THROTTLED_TRIES:
                throttled += 1
                await asyncio.sleep(pacing.THROTTLE_PAUSE.total_seconds() * 2 ** (throttled - 1))
                continue
        else:
            if outcome is not None:
                count_outcome(outcome)
            return
        break
    # A turn too far off, or a provider failing for now: the delivery workflow's send step waits or retries
    # (the turn is kept on the message).
    async with deps.unit_of_work(tenant_id) as session:
        await dispatch.release(session, communication_id)


def count_outcome(outcome: DeliveryOutcome) -> None:
    """Count a send step's outcome in the message metrics (sent, or failed and why)."""
    if outcome.channel is not None and outcome.failure is not None:
        metrics.message_failed(outcome.channel, outcome.provider, outcome.failure)
    elif outcome.channel is not None and outcome.sent_now:
        metrics.message_sent(outcome.channel, outcome.provider)


def build_activities(deps: ActivityDeps) -> list[Callable[..., Any]]:
    """Every activity the worker registers, bound to `deps` (each domain adds its group here)."""
    from activities.appointments import AppointmentActivities  # imported here: it needs ActivityDeps
    from activities.campaign_schedules import CampaignScheduleActivities
    from activities.campaigns import CampaignActivities
    from activities.communications import CommunicationActivities
    from activities.journeys import JourneyActivities
    from activities.tickets import TicketActivities

    return [
        *AppointmentActivities(deps).all(),
        *JourneyActivities(deps).all(),
        *TicketActivities(deps).all(),
        *CommunicationActivities(deps).all(),
        *CampaignActivities(deps).all(),
        *CampaignScheduleActivities(deps).all(),
    ]
