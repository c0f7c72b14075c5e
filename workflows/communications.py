"""One delivery workflow per outbound message (`communication-<uuid>`), whoever created it (the API, a
journey, a reminder, the booking chat): wait for `scheduled_for`, pass the send policy (waiting on durable
timers through quiet hours and frequency caps, never dropping the message), send with retries, and fall back
from WhatsApp to SMS to email when a message is not delivered in time. The plan and the policy checks are
local activities (short database reads and writes in the worker); the send is a regular activity with its
own retry policy, since it calls the provider."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.communications import CommunicationActivities
    from domain.communications.plan import (
        WORKFLOW_NAME,
        CommunicationRef,
        DeliveryInput,
        FailInput,
        FallbackInput,
        PolicyInput,
        SendInput,
    )

STEP_TIMEOUT = timedelta(seconds=30)
# Sized to the call: a provider request gives up after `provider_timeout_seconds` (10 s) and the send step's
# database work takes milliseconds, so an attempt still running after 30 s is lost; a worker that died
# mid-send stops heartbeating and its attempt is retried after SEND_HEARTBEAT, not after SEND_TIMEOUT.
# (Changing these options does not break replay: replay checks the commands and activity types.)
SEND_TIMEOUT = timedelta(seconds=30)
SEND_HEARTBEAT = timedelta(seconds=5)
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=10,
)
STEP_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
LOCAL_STEPS_PATCH = "local-policy-steps"
MAX_POLICY_ROUNDS = 100  # quiet hours and caps each release within a day; this only bounds a bug
FALLBACK_CHAIN = MappingProxyType({"whatsapp": "sms", "sms": "email"})


@dataclass
class DeliveryResult:
    """Where delivery ended: the last message tried, its channel and status."""

    communication_id: str
    channel: str
    status: str


@workflow.defn(name=WORKFLOW_NAME)
class CommunicationDeliveryWorkflow:
    """Delivers one message durably: scheduled time, send policy, retries, channel fallback."""

    @workflow.run
    async def run(self, data: DeliveryInput) -> DeliveryResult:
        """Deliver the message, falling back channel by channel when a WhatsApp one goes undelivered."""
        plan = await self._step(
            CommunicationActivities.plan, CommunicationRef(data.tenant_id, data.communication_id)
        )
        if plan is None:
            return DeliveryResult(data.communication_id, "", "missing")
        if plan.scheduled_for:
            await self._sleep_until(datetime.fromisoformat(plan.scheduled_for))
        current, channel = data.communication_id, plan.channel
        falls_back = plan.channel == "whatsapp" and plan.reports_delivery
        while True:
            status = await self._send(data.tenant_id, current)
            next_channel = FALLBACK_CHAIN.get(channel) if falls_back else None
            if next_channel is None or status in ("delivered", "read", "missing", "done"):
                return DeliveryResult(current, channel, status)
            if status != "failed":
                await workflow.sleep(timedelta(minutes=plan.fallback_minutes))
            copy = await workflow.execute_activity_method(
                CommunicationActivities.fallback,
                FallbackInput(data.tenant_id, current, next_channel),
                start_to_close_timeout=STEP_TIMEOUT,
            )
            if copy is None:
                return DeliveryResult(current, channel, status)
            current, channel = copy, next_channel

    async def _step(self, activity: Any, arg: Any) -> Any:
        """A short database-only step (the plan, the policy check): a local activity since the
        `local-policy-steps` patch (no task round trip through the server), a regular one in histories
        recorded before it."""
        if workflow.patched(LOCAL_STEPS_PATCH):
            return await workflow.execute_local_activity_method(
                activity, arg, start_to_close_timeout=STEP_TIMEOUT, retry_policy=STEP_RETRY
            )
        return await workflow.execute_activity_method(activity, arg, start_to_close_timeout=STEP_TIMEOUT)

    async def _sleep_until(self, when: datetime) -> None:
        delay = when - workflow.now()
        if delay > timedelta(0):
            await workflow.sleep(delay)

    async def _send(self, tenant_id: str, communication_id: str) -> str:
        for _ in range(MAX_POLICY_ROUNDS):
            answer = await self._step(
                CommunicationActivities.check_policy,
                PolicyInput(tenant_id, communication_id, workflow.now().isoformat()),
            )
            if answer.verdict == "done":
                return "done"
            if answer.verdict == "refuse":
                return "failed"
            if answer.verdict == "send":
                break
            if answer.until is not None:
                await self._sleep_until(datetime.fromisoformat(answer.until))
        try:
            return await workflow.execute_activity_method(
                CommunicationActivities.send,
                SendInput(tenant_id, communication_id, workflow.now().isoformat()),
                start_to_close_timeout=SEND_TIMEOUT,
                heartbeat_timeout=SEND_HEARTBEAT,
                retry_policy=SEND_RETRY,
            )
        except ActivityError:
            await workflow.execute_activity_method(
                CommunicationActivities.mark_failed,
                FailInput(
                    tenant_id,
                    communication_id,
                    "retries_exhausted",
                    "The provider kept failing; the message was not sent.",
                    workflow.now().isoformat(),
                ),
                start_to_close_timeout=STEP_TIMEOUT,
            )
            return "failed"
