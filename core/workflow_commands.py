"""The one road from a database change to its workflow: commands recorded in the change's own transaction
and delivered until Temporal has them (a transactional outbox).

Every start, signal and cancel that follows a change (a journey placed or cancelled, an appointment booked,
moved or cancelled, a ticket opened or reopened, a message recorded, a patient's reply, a freed time for the
waitlist), and every change to a Temporal Schedule (a recurring campaign created, paused, resumed or
cancelled), is a `WorkflowCommand` row written beside the change (`record_start`, `record_signal`,
`record_cancel`, `record_schedule`, `record_schedule_change`). The row commits or rolls back with the
change, so a workflow never hears of a change that did not happen, and a change never misses its workflow:

1. right after the commit, the same process delivers its transaction's commands through the gateway bound
   to its session (`core.gateway`) when Temporal answers quickly (the fast path);
2. whatever is still pending (Temporal down, the process killed after the commit) is delivered by the
   worker's relay (`deliver_pending`, a job of `core.periodic`), every couple of seconds, in order.

Delivery is ordered per workflow (a start before the cancel that follows it; a reschedule never overtaken
by the cancellation after it) and at least once: a command whose delivery succeeded but whose `delivered_at`
could not be written is sent again, so every command is one its workflow can take twice (a start of a
running workflow is a no-op; a signal carries a state, or names a stored record). A signal may carry a start:
it is then delivered as signal-with-start, so the workflow is started by it when it is not running.

A command may be held (`hold_for`): it is not delivered before that time unless released. A journey's send
step holds its message's delivery start while it sends the message itself, then settles (it was sent) or
releases it (it needs its workflow after all); a worker killed in between leaves the start to the relay.

Operators see what waits with `prm commands pending` and the worker's metrics
(`prm_workflow_commands_pending`, `prm_workflow_command_oldest_pending_seconds`).

Ids and statuses only: these payloads end up in Temporal, where operators see them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core import metrics
from core.codec import payloads_for_tenant
from core.database import Base, after_commit, mark_system, prebuilt
from core.gateway import (
    CommandRejected,
    ScheduledStart,
    StartPolicy,
    TemporalUnavailable,
    WorkflowGateway,
    WorkflowStart,
    gateway_for,
)
from core.periodic import claim

log = logging.getLogger(__name__)

BATCH = 200
IN_FLIGHT = 16  # workflows whose commands a round delivers at once (each its own in order)
KEEP_DELIVERED = timedelta(days=7)  # delivered commands stay this long for operators, then are pruned
PRUNE_BATCH = 10_000

START, SIGNAL, CANCEL, SCHEDULE = "start", "signal", "cancel", "schedule"
# What a `schedule` command does to its schedule (its `arg["op"]`).
SCHEDULE_CREATE, SCHEDULE_PAUSE, SCHEDULE_UNPAUSE, SCHEDULE_DELETE = "create", "pause", "unpause", "delete"


class WorkflowCommand(Base):
    """One start, signal (or signal-with-start) or cancel owed to one workflow, or one change owed to a
    Temporal Schedule (`schedule`: its id in `workflow_id`, the change in `arg`); pending while
    `delivered_at` is null."""

    __tablename__ = "workflow_commands"
    __table_args__ = (
        CheckConstraint("kind IN ('start', 'signal', 'cancel', 'schedule')", name="kind"),
        Index("ix_workflow_commands_pending", "id", postgresql_where=text("delivered_at IS NULL")),
        Index(
            "ix_workflow_commands_workflow_pending",
            "workflow_id",
            "id",
            postgresql_where=text("delivered_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="CASCADE"), index=True, nullable=False
    )
    kind: Mapped[str] = mapped_column(
        String(10), nullable=False, server_default=SIGNAL
    )  # start|signal|cancel|schedule
    workflow_id: Mapped[str] = mapped_column(String(200), nullable=False)
    signal: Mapped[str | None] = mapped_column(String(100))
    arg: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # A start, or a signal's start-if-not-running: the workflow type, its input and search attributes (ids).
    start_workflow: Mapped[str | None] = mapped_column(String(100))
    start_input: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    search_attributes: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    start_policy: Mapped[str | None] = mapped_column(String(10))
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # held until then
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # delivered | already_started | not_running | rejected | settled
    outcome: Mapped[str | None] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(200))  # an error's class or status, never text

    def start_spec(self) -> WorkflowStart:
        """The start this command carries."""
        return WorkflowStart(
            workflow=self.start_workflow or "",
            workflow_id=self.workflow_id,
            input=self.start_input,
            search_attributes=self.search_attributes or {},
            policy=StartPolicy(self.start_policy or StartPolicy.REUSE),
        )

    def scheduled_start(self) -> ScheduledStart:
        """The schedule this `schedule` command creates."""
        arg = self.arg or {}
        return ScheduledStart(
            schedule_id=self.workflow_id,
            start=self.start_spec(),
            every=timedelta(seconds=arg["every_seconds"]),
            first_at=datetime.fromisoformat(arg["first_at"]),
            fire_at_once=bool(arg.get("fire_at_once")),
        )


def _plain(value: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return value
    raise TypeError(f"a workflow command carries a dataclass or a dict, not {type(value).__name__}")


_PENDING_KEY = "workflow_commands"  # recorded by this transaction (ids known once flushed)
_RELEASED_KEY = "workflow_commands_released"  # ids of held commands this transaction released
_QUEUED_KEY = "workflow_commands_queued"  # the fast path is queued for after the commit


def _record(session: AsyncSession, tenant_id: uuid.UUID | None, **fields: Any) -> WorkflowCommand:
    tenant = tenant_id or session.info.get("tenant_id")
    if tenant is None:
        raise RuntimeError("a workflow command needs the tenant of the change it follows")
    command = WorkflowCommand(tenant_id=tenant, **fields)
    session.add(command)
    if command.not_before is None:
        session.info.setdefault(_PENDING_KEY, []).append(command)
        _deliver_after_commit(session)
    return command


def _deliver_after_commit(session: AsyncSession) -> None:
    """Queue the fast path once per transaction, for all of its commands."""
    if not session.info.get(_QUEUED_KEY):
        session.info[_QUEUED_KEY] = True
        after_commit(session, lambda: _deliver_now(session))


def forget_recorded(session: AsyncSession) -> None:
    """Forget the commands `session` recorded in a savepoint that rolled back (with the after-commit jobs
    the caller drops): the fast path has nothing of theirs to deliver."""
    for key in (_PENDING_KEY, _RELEASED_KEY, _QUEUED_KEY):
        session.info.pop(key, None)


def _start_fields(spec: WorkflowStart) -> dict[str, Any]:
    return {
        "start_workflow": spec.workflow,
        "start_input": _plain(spec.input),
        "search_attributes": dict(spec.search_attributes),
        "start_policy": spec.policy.value,
    }


def record_start(
    session: AsyncSession,
    spec: WorkflowStart,
    *,
    tenant_id: uuid.UUID | None = None,
    hold_for: timedelta | None = None,
) -> WorkflowCommand:
    """Record, in the session's transaction, the start of `spec`'s workflow; delivered after the commit
    (after `hold_for`, unless released sooner)."""
    return _record(
        session,
        tenant_id,
        kind=START,
        workflow_id=spec.workflow_id,
        not_before=datetime.now(UTC) + hold_for if hold_for is not None else None,
        **_start_fields(spec),
    )


def record_signal(
    session: AsyncSession,
    *,
    workflow_id: str,
    signal: str,
    arg: Any,
    start: WorkflowStart | None = None,
    tenant_id: uuid.UUID | None = None,
) -> WorkflowCommand:
    """Record a signal to `workflow_id` in the session's transaction (with `start`: signal-with-start, so a
    workflow that is not running is started by it); delivered after the commit."""
    if start is not None and start.workflow_id != workflow_id:
        raise ValueError("a signal-with-start starts the workflow it signals")
    return _record(
        session,
        tenant_id,
        kind=SIGNAL,
        workflow_id=workflow_id,
        signal=signal,
        arg=_plain(arg),
        **(_start_fields(start) if start is not None else {}),
    )


def record_cancel(
    session: AsyncSession, *, workflow_id: str, tenant_id: uuid.UUID | None = None
) -> WorkflowCommand:
    """Record the cancellation of `workflow_id` in the session's transaction; delivered after the commit
    (after any start recorded before it). A workflow that is not running has nothing to cancel."""
    return _record(session, tenant_id, kind=CANCEL, workflow_id=workflow_id)


def record_schedule(
    session: AsyncSession, spec: ScheduledStart, *, tenant_id: uuid.UUID | None = None
) -> None:
    """Record the creation of `spec`'s Temporal Schedule in the session's transaction; delivered after the
    commit (a repeated create is a no-op)."""
    _record(
        session,
        tenant_id,
        kind=SCHEDULE,
        workflow_id=spec.schedule_id,
        arg={
            "op": SCHEDULE_CREATE,
            "every_seconds": spec.every.total_seconds(),
            "first_at": spec.first_at.isoformat(),
            "fire_at_once": spec.fire_at_once,
        },
        **_start_fields(spec.start),
    )


def record_schedule_change(
    session: AsyncSession, *, schedule_id: str, op: str, tenant_id: uuid.UUID | None = None
) -> None:
    """Record a pause, an unpause or the deletion of a Temporal Schedule in the session's transaction;
    delivered after the commit, after the schedule's earlier commands (its create first)."""
    if op not in (SCHEDULE_PAUSE, SCHEDULE_UNPAUSE, SCHEDULE_DELETE):
        raise ValueError(f"not a change of a schedule: {op!r}")
    _record(session, tenant_id, kind=SCHEDULE, workflow_id=schedule_id, arg={"op": op})


# Built once: it runs for every message a journey or a reminder sends at once.
_SETTLE_HELD = prebuilt(
    update(WorkflowCommand)
    .where(
        WorkflowCommand.workflow_id == bindparam("b_workflow_id"),
        WorkflowCommand.delivered_at.is_(None),
        WorkflowCommand.not_before.is_not(None),
    )
    .values(delivered_at=func.now(), outcome="settled")
    .execution_options(synchronize_session=False)
)


async def settle_held(session: AsyncSession, workflow_id: str) -> None:
    """The held start of `workflow_id` is no longer needed (what it would do is done): never deliver it."""
    await session.execute(_SETTLE_HELD, {"b_workflow_id": workflow_id})


async def release_held(session: AsyncSession, workflow_id: str) -> None:
    """Deliver the held commands of `workflow_id` now (after the commit) rather than at their time."""
    ids = (
        await session.scalars(
            update(WorkflowCommand)
            .where(
                WorkflowCommand.workflow_id == workflow_id,
                WorkflowCommand.delivered_at.is_(None),
                WorkflowCommand.not_before.is_not(None),
            )
            .values(not_before=None)
            .returning(WorkflowCommand.id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    if ids:
        session.info.setdefault(_RELEASED_KEY, []).extend(ids)
        _deliver_after_commit(session)


async def _deliver_now(session: AsyncSession) -> None:
    """The fast path: right after the commit, deliver this transaction's commands if Temporal answers
    quickly; anything left is the relay's."""
    ids = [c.id for c in session.info.pop(_PENDING_KEY, [])] + session.info.pop(_RELEASED_KEY, [])
    session.info.pop(_QUEUED_KEY, None)
    try:
        gateway = gateway_for(session)
        if not ids or gateway is None or gateway.recently_down:
            return
        await deliver_pending(session, gateway, ids=ids)
    except Exception as exc:  # the commands are stored; the relay delivers them
        await session.rollback()
        log.warning("workflow commands left for the relay: %s", type(exc).__name__)


def _due(ids: list[int] | None) -> Any:
    stmt = (
        select(WorkflowCommand)
        .where(
            WorkflowCommand.delivered_at.is_(None),
            or_(WorkflowCommand.not_before.is_(None), WorkflowCommand.not_before <= func.now()),
        )
        .order_by(WorkflowCommand.id)
    )
    return stmt.where(WorkflowCommand.id.in_(ids)) if ids is not None else stmt


async def deliver_pending(
    session: AsyncSession, gateway: WorkflowGateway, *, ids: list[int] | None = None
) -> tuple[int, int]:
    """Deliver due pending commands in order (only `ids` when given) and commit; (delivered, left pending).

    Rows are locked (`FOR UPDATE SKIP LOCKED`), so two deliverers never send the same command, and a
    command goes only when every earlier pending command of its workflow went before it in this round:
    one held, held by another deliverer, or one that failed, holds back the rest of that workflow's queue.
    Temporal unreachable ends the round: what is left waits for the next."""
    rows: list[WorkflowCommand] = await claim(session, _due(ids), limit=BATCH)
    if not rows:
        await session.commit()
        return 0, 0
    waiting: dict[str, list[int]] = {}
    for workflow_id, command_id in await session.execute(
        select(WorkflowCommand.workflow_id, WorkflowCommand.id).where(
            WorkflowCommand.delivered_at.is_(None),
            WorkflowCommand.workflow_id.in_({r.workflow_id for r in rows}),
        )
    ):
        waiting.setdefault(workflow_id, []).append(command_id)
    done: set[int] = set()
    outage = asyncio.Event()  # Temporal unreachable: the rest of the round would meet the same outage
    now = datetime.now(UTC)

    async def deliver_queue(queue: list[WorkflowCommand]) -> None:
        """One workflow's commands of this round, in order; a command that cannot go holds back the rest."""
        for command in queue:
            ahead = [i for i in waiting.get(command.workflow_id, []) if i < command.id and i not in done]
            if ahead or outage.is_set():
                return
            try:
                command.outcome = await _send(gateway, command)
            except CommandRejected as exc:
                log.error(
                    "workflow command %s to %s rejected: %s", command.id, command.workflow_id, exc.status
                )
                command.attempts += 1
                command.last_error = f"rejected {exc.status}"[:200]
                command.outcome, command.delivered_at = "rejected", now
                done.add(command.id)
                continue
            except TemporalUnavailable as exc:
                command.attempts += 1
                command.last_error = (type(exc.__cause__ or exc).__name__)[:200]
                outage.set()
                return
            except Exception as exc:
                command.attempts += 1
                command.last_error = type(exc).__name__[:200]
                return
            command.delivered_at = now
            done.add(command.id)

    queues: dict[str, list[WorkflowCommand]] = {}
    for command in rows:  # in id order: each workflow's queue keeps its commands' order
        queues.setdefault(command.workflow_id, []).append(command)
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def bounded(queue: list[WorkflowCommand]) -> None:
        async with slots:
            await deliver_queue(queue)

    # Different workflows' queues go side by side (a campaign's batch starts a hundred workflows at once).
    await asyncio.gather(*(bounded(queue) for queue in queues.values()))
    await session.commit()
    delivered = sum(1 for c in rows if c.delivered_at is not None and c.outcome != "rejected")
    return delivered, sum(1 for c in rows if c.delivered_at is None)


async def _send(gateway: WorkflowGateway, command: WorkflowCommand) -> str:
    """One delivery; its outcome. A signal's payload carries no tenant: the command says whose it is."""
    with payloads_for_tenant(command.tenant_id):
        return await _deliver(gateway, command)


async def _deliver(gateway: WorkflowGateway, command: WorkflowCommand) -> str:
    if command.kind == START:
        return "delivered" if await gateway.start(command.start_spec()) else "already_started"
    if command.kind == CANCEL:
        return "delivered" if await gateway.cancel(command.workflow_id) else "not_running"
    if command.kind == SCHEDULE:
        return await _deliver_schedule(gateway, command)
    if command.start_workflow is not None:
        await gateway.signal_with_start(command.start_spec(), command.signal or "", command.arg)
        return "delivered"
    sent = await gateway.signal(command.workflow_id, command.signal or "", command.arg)
    return "delivered" if sent else "not_running"


async def _deliver_schedule(gateway: WorkflowGateway, command: WorkflowCommand) -> str:
    """A schedule's change, each safe to deliver twice: a create of an existing schedule, a pause of a
    paused one, a delete of a deleted one change nothing."""
    op = (command.arg or {}).get("op")
    if op == SCHEDULE_CREATE:
        return "delivered" if await gateway.create_schedule(command.scheduled_start()) else "already_started"
    if op == SCHEDULE_DELETE:
        done = await gateway.delete_schedule(command.workflow_id)
    else:
        done = await gateway.pause_schedule(command.workflow_id, paused=op == SCHEDULE_PAUSE)
    return "delivered" if done else "not_running"


async def prune_delivered(session: AsyncSession, *, older_than: timedelta = KEEP_DELIVERED) -> int:
    """Delete commands delivered more than `older_than` ago (a bounded batch) and commit; how many."""
    result = await session.execute(
        text(
            "DELETE FROM workflow_commands WHERE id IN (SELECT id FROM workflow_commands"
            " WHERE delivered_at < now() - make_interval(secs => :age) ORDER BY id LIMIT :batch)"
        ),
        {"age": older_than.total_seconds(), "batch": PRUNE_BATCH},
    )
    await session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class PendingSummary:
    """What waits for delivery (every tenant): how many, and how old the oldest is (seconds; 0: none).
    Held commands count from their time, not their creation."""

    count: int
    oldest_seconds: float


async def pending_summary(session: AsyncSession) -> PendingSummary:
    """How many commands wait for delivery, and the age of the oldest one that is due."""
    mark_system(session)
    due_since = func.coalesce(WorkflowCommand.not_before, WorkflowCommand.created_at)
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(due_since)).where(WorkflowCommand.delivered_at.is_(None))
        )
    ).one()
    age = max((datetime.now(UTC) - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
    return PendingSummary(count=int(count or 0), oldest_seconds=age)


async def pending_commands(session: AsyncSession, *, limit: int = 50) -> list[WorkflowCommand]:
    """The oldest pending commands (every tenant), for an operator."""
    mark_system(session)
    return list(
        (
            await session.scalars(
                select(WorkflowCommand)
                .where(WorkflowCommand.delivered_at.is_(None))
                .order_by(WorkflowCommand.id)
                .limit(limit)
            )
        ).all()
    )


class CommandRelay:
    """The worker's delivery of what the fast path left: one round delivers every due pending command (in
    batches), logs when Temporal goes away and comes back, and sets the pending metrics. Run as a job of
    `core.periodic` (which takes the job's lock first, so one worker relays at a time)."""

    def __init__(self, sessionmaker: Any, gateway: WorkflowGateway) -> None:
        self.sessionmaker = sessionmaker
        self.gateway = gateway
        self.temporal_up = True

    async def __call__(self) -> bool:
        """One round; True when a full batch went (more may be due at once)."""
        async with self.sessionmaker() as session:
            mark_system(session)
            delivered, left = await deliver_pending(session, self.gateway)
            summary = await pending_summary(session)
        metrics.workflow_commands_pending(summary.count, summary.oldest_seconds)
        up = not self.gateway.recently_down
        if up != self.temporal_up:
            log.warning("Temporal is %s", "reachable again" if up else "unreachable; workflow commands wait")
            self.temporal_up = up
        if delivered:
            log.info("relay delivered %d workflow commands", delivered)
        return up and delivered + left >= BATCH
