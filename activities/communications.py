"""Communication delivery activities: the policy gate, the send step, fallbacks, and giving up.

Each takes one dataclass of ids (never a phone number or a message body), opens its own transactions scoped
to the input's tenant, and is idempotent under retry: the send step commits its attempt before it calls the
provider and does nothing once the message carries a provider message id (nor, until the provider's word
settles it, while an attempt is open), and a fallback copy is keyed `fallback:<id>:<channel>`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import ActivityDeps, count_outcome, heartbeating
from core import metrics
from domain.communications import delivery, pacing
from domain.communications.plan import (
    CommunicationRef,
    DeliveryPlan,
    FailInput,
    FallbackInput,
    PolicyAnswer,
    PolicyInput,
    SendInput,
)
from domain.communications.providers import (
    OutboxProvider,
    ProviderError,
    log_provider_configuration,
)
from domain.communications.repository import CommunicationRepository
from domain.communications.service import create_fallback
from domain.enums import Channel
from domain.tenants.models import Tenant
from domain.tenants.service import settings_of


class CommunicationActivities:
    """The delivery workflow's activities, bound to the worker's dependencies."""

    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps
        log_provider_configuration(deps.settings)

    @activity.defn(name="communication_plan")
    async def plan(self, data: CommunicationRef) -> DeliveryPlan | None:
        """The message's channel, its scheduled time and the tenant's fallback delay (None: it is gone)."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            record = await CommunicationRepository(session).get(uuid.UUID(data.communication_id))
            if record is None:
                return None
            tenant = await session.get(Tenant, record.tenant_id)
            minutes = settings_of(tenant).whatsapp_fallback_minutes if tenant is not None else 30
            scheduled = record.scheduled_for.isoformat() if record.scheduled_for else None
            return DeliveryPlan(
                channel=record.channel,
                scheduled_for=scheduled,
                fallback_minutes=minutes,
                reports_delivery=delivery.reports_delivery(record.channel, self.deps.settings),
            )

    @activity.defn(name="communication_check_policy")
    async def check_policy(self, data: PolicyInput) -> PolicyAnswer:
        """Consent, quiet hours and frequency cap for one message; a refusal is recorded as failed."""
        now = datetime.fromisoformat(data.now)
        async with self.deps.unit_of_work(data.tenant_id) as session:
            record = await CommunicationRepository(session).for_update(uuid.UUID(data.communication_id))
            if record is None:
                return PolicyAnswer("done", "nothing to send")
            answer = await delivery.pass_gate(session, record, now)
            channel = record.channel
        if answer.failure is not None:
            metrics.message_failed(channel, None, answer.failure)
        until = answer.until.isoformat() if answer.until else None
        return PolicyAnswer(answer.verdict, answer.reason, until)

    @activity.defn(name="communication_send")
    async def send(self, data: SendInput) -> str:
        """Hand the message to its provider once; its status after (transient errors are retried).

        Heartbeats while it works, so the attempt of a worker that died mid-send is retried within the
        workflow's heartbeat timeout (a few seconds) rather than its start-to-close timeout."""
        at = datetime.fromisoformat(data.at) if activity.info().attempt == 1 else datetime.now(UTC)
        return await heartbeating(self._send(data, at))

    async def _send(self, data: SendInput, at: datetime) -> str:
        sessions = partial(self.deps.tenant_session, data.tenant_id)
        try:
            outcome = await delivery.deliver(
                sessions, uuid.UUID(data.communication_id), at=at, settings=self.deps.settings
            )
        except delivery.AttemptInDoubt as exc:  # the retry policy waits for the provider's word
            raise ApplicationError(str(exc), type="SendAttemptInDoubt") from exc
        except pacing.SenderBusy as exc:  # a campaign message: tried again when its turn (kept) comes
            delay = timedelta(seconds=exc.wait_seconds)
            raise ApplicationError(str(exc), type="SenderBusy", next_retry_delay=delay) from exc
        except ProviderError as exc:  # transient: the retry policy backs off and tries again
            raise ApplicationError(str(exc), type="ProviderUnavailable") from exc
        count_outcome(outcome)
        return outcome.status

    @activity.defn(name="communication_fallback")
    async def fallback(self, data: FallbackInput) -> str | None:
        """Record the same content on `channel` (once) unless delivered meanwhile; the copy's id or None."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            record = await CommunicationRepository(session).get(uuid.UUID(data.communication_id))
            if record is None or record.status in ("delivered", "read"):
                return None
            if record.provider == OutboxProvider.name and record.status != "failed":
                return None  # the outbox never reports delivery: a fallback would only duplicate it
            copy = await create_fallback(session, record, Channel(data.channel))
            return str(copy.id) if copy is not None else None

    @activity.defn(name="communication_mark_failed")
    async def mark_failed(self, data: FailInput) -> None:
        """Record that the message could not be sent."""
        async with self.deps.unit_of_work(data.tenant_id) as session:
            record = await CommunicationRepository(session).get(uuid.UUID(data.communication_id))
            channel, provider = (record.channel, record.provider) if record is not None else ("", None)
            failed = await delivery.mark_failed(
                session,
                uuid.UUID(data.communication_id),
                at=datetime.fromisoformat(data.at),
                code=data.code,
                reason=data.reason,
            )
        if failed:  # the provider kept failing: retries exhausted
            metrics.message_failed(channel, provider, "gave_up")

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of this group, for the worker."""
        return [self.plan, self.check_policy, self.send, self.fallback, self.mark_failed]
