"""One workflow per cancelled appointment: offer the freed time to the waitlist, one wave at a time."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.appointments import AppointmentActivities
    from domain.scheduling.plan import (
        SIGNAL_INBOUND_REPLY,
        SIGNAL_OFFER_SETTLED,
        WAITLIST_WORKFLOW,
        ExpireWaitlistWaveInput,
        OfferSettledSignal,
        WaitlistBackfillInput,
        WaitlistReplyInput,
        WaitlistReplySignal,
        WaitlistWaveInput,
    )

# Sized to the call: a few database writes and the start of a message's delivery workflow (an RPC that gives
# up after 5 s). The activities heartbeat, so a worker that died mid-activity is noticed after HEARTBEAT and
# the retry runs within seconds, not after the start-to-close timeout. (Changing these options does not
# break replay: replay checks the commands and activity types.)
ACTIVITY_TIMEOUT = timedelta(seconds=30)
HEARTBEAT = timedelta(seconds=5)


@workflow.defn(name=WAITLIST_WORKFLOW)
class WaitlistBackfillWorkflow:
    """Offers the freed time wave by wave until someone books it, it is gone, or the waitlist runs out."""

    def __init__(self) -> None:
        self._replies: list[str] = []
        self._settled: list[OfferSettledSignal] = []
        self._wave = 0

    @workflow.run
    async def run(self, wf_input: WaitlistBackfillInput) -> str:
        """Offer a wave, follow its answers until its hold expires, then the next; returns the outcome."""
        while True:
            self._wave += 1
            wave = await workflow.execute_activity_method(
                AppointmentActivities.offer_waitlist_wave,
                WaitlistWaveInput(
                    tenant_id=wf_input.tenant_id,
                    cancelled_appointment_id=wf_input.cancelled_appointment_id,
                    wave=self._wave,
                    wave_size=wf_input.wave_size,
                    hold_minutes=wf_input.hold_minutes,
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                heartbeat_timeout=HEARTBEAT,
            )
            if wave.status != "offered":
                return wave.status  # exhausted, slot_gone, booked or closed
            deadline = workflow.now() + timedelta(minutes=wf_input.hold_minutes)
            outcome = await self._follow_wave(wf_input, set(wave.offer_ids), deadline)
            if outcome in ("booked", "taken"):
                return outcome
            await workflow.execute_activity_method(
                AppointmentActivities.expire_waitlist_wave,
                ExpireWaitlistWaveInput(wf_input.tenant_id, wf_input.cancelled_appointment_id, self._wave),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                heartbeat_timeout=HEARTBEAT,
            )

    async def _follow_wave(
        self, wf_input: WaitlistBackfillInput, open_offers: set[str], deadline: datetime
    ) -> str:
        """`booked`, `taken` (gone elsewhere), `declined` (all passed) or `expired` (the hold ran out)."""
        while open_offers:
            if self._settled:
                settled = self._settled.pop(0)
                if settled.status == "accepted":
                    return "booked"
                open_offers.discard(settled.offer_id)
                continue
            if self._replies:
                outcome = await workflow.execute_activity_method(
                    AppointmentActivities.handle_waitlist_reply,
                    WaitlistReplyInput(
                        wf_input.tenant_id, wf_input.cancelled_appointment_id, self._replies.pop(0)
                    ),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT,
                )
                if outcome.status in ("accepted", "taken"):
                    return "booked" if outcome.status == "accepted" else "taken"
                if outcome.status in ("declined", "expired") and outcome.offer_id:
                    open_offers.discard(outcome.offer_id)
                continue
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0):
                return "expired"
            try:
                await workflow.wait_condition(lambda: bool(self._replies or self._settled), timeout=remaining)
            except TimeoutError:
                return "expired"
        return "declined"

    @workflow.signal(name=SIGNAL_INBOUND_REPLY)
    def inbound_reply(self, reply: WaitlistReplySignal) -> None:
        """A patient holding an offer answered over the channel: handled in an activity."""
        self._replies.append(reply.communication_id)

    @workflow.signal(name=SIGNAL_OFFER_SETTLED)
    def offer_settled(self, settled: OfferSettledSignal) -> None:
        """An offer was accepted or declined through the API (or its entry was removed)."""
        self._settled.append(settled)

    @workflow.query(name="wave")
    def current_wave(self) -> int:
        """The wave being offered (for operators and tests)."""
        return self._wave
