"""One workflow per booking conversation: holds the offered slots until the offer expires, then frees them."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.appointments import AppointmentActivities
    from domain.scheduling.plan import (
        CONVERSATION_WORKFLOW,
        SIGNAL_CONVERSATION_UPDATED,
        SIGNAL_INBOUND_REPLY,
        ConversationInput,
        ConversationReplyInput,
        ConversationUpdate,
        ExpireConversationInput,
        InboundReply,
    )

# Sized to the call: a few database writes and the start of a message's delivery workflow (an RPC that gives
# up after 5 s). The activities heartbeat, so a worker that died mid-activity is noticed after HEARTBEAT and
# the retry runs within seconds, not after the start-to-close timeout. (Changing these options does not
# break replay: replay checks the commands and activity types.)
ACTIVITY_TIMEOUT = timedelta(seconds=30)
HEARTBEAT = timedelta(seconds=5)


@workflow.defn(name=CONVERSATION_WORKFLOW)
class BookingConversationWorkflow:
    """Waits for replies until the offer expires; each reply is handled by an activity."""

    def __init__(self) -> None:
        self._status = "active"
        self._expires_at: datetime | None = None
        self._replies: list[str] = []
        self._changed = False

    @workflow.run
    async def run(self, wf_input: ConversationInput) -> str:
        """Handle routed replies; on expiry release the holds; end when booked, closed or expired."""
        if self._expires_at is None:
            self._expires_at = datetime.fromisoformat(wf_input.expires_at)
        while self._status == "active":
            if self._replies:
                communication_id = self._replies.pop(0)
                update = await workflow.execute_activity_method(
                    AppointmentActivities.handle_booking_reply,
                    ConversationReplyInput(wf_input.tenant_id, wf_input.conversation_id, communication_id),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT,
                )
                self._apply(update)
                continue
            self._changed = False
            timeout = max(self._expires_at - workflow.now(), timedelta(0))
            try:
                await workflow.wait_condition(lambda: self._changed or bool(self._replies), timeout=timeout)
                continue
            except TimeoutError:
                pass
            update = await workflow.execute_activity_method(
                AppointmentActivities.expire_booking_conversation,
                ExpireConversationInput(
                    wf_input.tenant_id, wf_input.conversation_id, self._expires_at.isoformat()
                ),
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                heartbeat_timeout=HEARTBEAT,
            )
            self._apply(update)  # expired, or the state the database holds (extended, booked, closed)
        return self._status

    def _apply(self, update: ConversationUpdate) -> None:
        self._status = update.status
        self._expires_at = datetime.fromisoformat(update.expires_at)
        self._changed = True

    @workflow.signal(name=SIGNAL_CONVERSATION_UPDATED)
    def updated(self, update: ConversationUpdate) -> None:
        """A reply was handled elsewhere (the select-slot API): take its status and expiry."""
        self._apply(update)

    @workflow.signal(name=SIGNAL_INBOUND_REPLY)
    def inbound_reply(self, reply: InboundReply) -> None:
        """The patient answered over the channel: handle it in an activity."""
        self._replies.append(reply.communication_id)
        self._changed = True
