"""Commands to workflows that follow a database change, recorded in the change's own transaction and
delivered until Temporal has them (a transactional outbox).

A reschedule, a cancellation, a ticket's new status or a patient's reply changes a row and must reach the
row's workflow. Sending the signal after the commit loses it whenever Temporal is down at that moment (or
the process dies in between); sending it before the commit tells the workflow about a change that may
roll back. So the domain records a `WorkflowCommand` row beside its change (`record_signal`); once the
transaction commits, the same process tries to deliver it at once (the fast path, bounded in time), and
the worker's `CommandRelay` delivers whatever is still pending every few seconds, so an outage delays a
command and never loses it.

Delivery is ordered per workflow (a reschedule is never overtaken by the cancellation that followed it)
and at least once: a command whose delivery succeeded but whose `delivered_at` could not be written is
sent again, so every signal carried this way is a state the workflow can apply twice (a new time, a
status, a cancellation) or names a stored record it can recognise. A command may carry a start: then it
is delivered as signal-with-start, so a workflow whose own start was lost is started by its first
command. A plain signal to a workflow that is not running (never started, or finished) is recorded as
`not_running` and dropped: the workflow reads the row's current state when it starts.

Ids and statuses only: these payloads end up in Temporal, where operators see them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Index, Integer, String, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from core.database import Base, after_commit, mark_system
from core.temporal import RPC_TIMEOUT, temporal_for

log = logging.getLogger(__name__)

FAST_PATH_SECONDS = 2.0  # how long a request waits (to connect, then per call) for an unreachable Temporal
BATCH = 200
KEEP_DELIVERED = timedelta(days=7)  # delivered commands stay this long for operators, then are pruned
PRUNE_BATCH = 10_000
# Answers that will never change on a retry: the command is dropped (and logged) so it cannot block the
# commands queued behind it for the same workflow.
_REJECTED = {
    RPCStatusCode.INVALID_ARGUMENT,
    RPCStatusCode.FAILED_PRECONDITION,
    RPCStatusCode.PERMISSION_DENIED,
}


class WorkflowCommand(Base):
    """One signal (or signal-with-start) owed to one workflow; pending while `delivered_at` is null."""

    __tablename__ = "workflow_commands"
    __table_args__ = (
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
    workflow_id: Mapped[str] = mapped_column(String(200), nullable=False)
    signal: Mapped[str] = mapped_column(String(100), nullable=False)
    arg: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    # Set for signal-with-start: the workflow type, its input and its search attributes (ids only).
    start_workflow: Mapped[str | None] = mapped_column(String(100))
    start_input: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    search_attributes: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(20))  # delivered | not_running | rejected
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(200))  # an error's class or status, never text


@dataclasses.dataclass(frozen=True)
class StartIfMissing:
    """Deliver as signal-with-start: the workflow to start (with this input) when it is not running."""

    workflow: str
    input: Any
    search_attributes: dict[str, str] = dataclasses.field(default_factory=dict)


def _plain(value: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return value
    raise TypeError(f"a workflow command carries a dataclass or a dict, not {type(value).__name__}")


_PENDING_KEY = "workflow_commands"


def record_signal(
    session: AsyncSession,
    *,
    workflow_id: str,
    signal: str,
    arg: Any,
    start: StartIfMissing | None = None,
    tenant_id: uuid.UUID | None = None,
) -> WorkflowCommand:
    """Record a signal to `workflow_id` in the session's transaction; it is delivered after the commit."""
    tenant = tenant_id or session.info.get("tenant_id")
    if tenant is None:
        raise RuntimeError("a workflow command needs the tenant of the change it follows")
    command = WorkflowCommand(
        tenant_id=tenant,
        workflow_id=workflow_id,
        signal=signal,
        arg=_plain(arg),
        start_workflow=start.workflow if start else None,
        start_input=_plain(start.input) if start else None,
        search_attributes=dict(start.search_attributes) if start else None,
    )
    session.add(command)
    pending: list[WorkflowCommand] = session.info.setdefault(_PENDING_KEY, [])
    pending.append(command)
    if len(pending) == 1:  # one fast-path job per transaction, for all of its commands
        after_commit(session, lambda: _deliver_now(session))
    return command


async def _deliver_now(session: AsyncSession) -> None:
    """The fast path: right after the commit, deliver this transaction's commands if Temporal answers
    quickly; anything left is the relay's."""
    commands: list[WorkflowCommand] = session.info.pop(_PENDING_KEY, [])
    access = temporal_for(session)
    if not commands or access is None:
        return
    try:
        async with asyncio.timeout(FAST_PATH_SECONDS):
            client = await access.get_client()
    except Exception as exc:
        log.warning(
            "Temporal unreachable (%s): %d workflow commands left for the relay",
            type(exc).__name__,
            len(commands),
        )
        return
    try:
        await deliver_pending(
            session,
            client,
            access.task_queue,
            ids=[c.id for c in commands],
            rpc_timeout=timedelta(seconds=FAST_PATH_SECONDS),
        )
    except Exception as exc:  # the commands are stored; the relay delivers them
        await session.rollback()
        log.warning("workflow commands left for the relay: %s", type(exc).__name__)


async def deliver_pending(
    session: AsyncSession,
    client: Client,
    task_queue: str,
    *,
    ids: list[int] | None = None,
    rpc_timeout: timedelta = RPC_TIMEOUT,
) -> tuple[int, int]:
    """Deliver pending commands in order (only `ids` when given) and commit; (delivered, left pending).

    Rows are locked (`FOR UPDATE SKIP LOCKED`), so two deliverers never send the same command, and a
    command goes only when every earlier pending command of its workflow went before it in this round:
    one held by another deliverer, or one that failed, holds back the rest of that workflow's queue."""
    stmt = (
        select(WorkflowCommand)
        .where(WorkflowCommand.delivered_at.is_(None))
        .order_by(WorkflowCommand.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    )
    if ids is not None:
        stmt = stmt.where(WorkflowCommand.id.in_(ids))
    rows = list((await session.scalars(stmt)).all())
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
    blocked: set[str] = set()
    now = datetime.now(UTC)
    for command in rows:
        ahead = [i for i in waiting.get(command.workflow_id, []) if i < command.id and i not in done]
        if command.workflow_id in blocked or ahead:
            blocked.add(command.workflow_id)
            continue
        try:
            command.outcome = await _send(client, task_queue, command, rpc_timeout)
        except Exception as exc:
            command.attempts += 1
            if isinstance(exc, RPCError):
                command.last_error = f"RPCError {exc.status.name if exc.status else 'UNKNOWN'}"
                if exc.status in _REJECTED:
                    log.error(
                        "workflow command %s to %s rejected: %s", command.id, command.workflow_id, exc.status
                    )
                    command.outcome, command.delivered_at = "rejected", now
                    done.add(command.id)
                    continue
            else:
                command.last_error = type(exc).__name__[:200]
            blocked.add(command.workflow_id)
            continue
        command.delivered_at = now
        done.add(command.id)
    await session.commit()
    return sum(1 for c in rows if c.outcome in ("delivered", "not_running")), sum(
        1 for c in rows if c.delivered_at is None
    )


async def _send(client: Client, task_queue: str, command: WorkflowCommand, rpc_timeout: timedelta) -> str:
    """One delivery: signal-with-start when the command carries a start, else a signal."""
    if command.start_workflow is not None:
        pairs = [
            SearchAttributePair(SearchAttributeKey.for_keyword(name), value)
            for name, value in (command.search_attributes or {}).items()
        ]
        await client.start_workflow(
            command.start_workflow,
            command.start_input,
            id=command.workflow_id,
            task_queue=task_queue,
            start_signal=command.signal,
            start_signal_args=[command.arg],
            search_attributes=TypedSearchAttributes(pairs),
            rpc_timeout=rpc_timeout,
        )
        return "delivered"
    try:
        await client.get_workflow_handle(command.workflow_id).signal(
            command.signal, command.arg, rpc_timeout=rpc_timeout
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return "not_running"
        raise
    return "delivered"


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


async def pending_count(session: AsyncSession) -> int:
    """How many commands wait for delivery (every tenant)."""
    mark_system(session)
    return int(
        await session.scalar(
            select(func.count()).select_from(WorkflowCommand).where(WorkflowCommand.delivered_at.is_(None))
        )
        or 0
    )


Reconcile = Callable[[bool], Awaitable[None]]  # called with True right after Temporal came back


class CommandRelay:
    """The worker's loop: deliver pending commands every `interval`; start lost workflows every
    `reconcile_every` and at once when Temporal comes back after being unreachable, so an outage costs
    seconds after it ends, not minutes. Only one relay delivers at a time across worker processes."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        client: Client,
        task_queue: str,
        *,
        interval: float = 2.0,
        reconcile: Reconcile | None = None,
        reconcile_every: float = 60.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.client = client
        self.task_queue = task_queue
        self.interval = interval
        self.reconcile = reconcile
        self.reconcile_every = reconcile_every
        self.temporal_up = True
        self._last_reconcile = asyncio.get_running_loop().time()

    async def round(self) -> int:
        """One round: check Temporal, reconcile if it just came back (or it is time), deliver what is
        pending; how many commands were delivered."""
        up = await self._temporal_reachable()
        recovered = up and not self.temporal_up
        if up != self.temporal_up:
            log.warning("Temporal is %s", "reachable again" if up else "unreachable; workflow commands wait")
        self.temporal_up = up
        if not up:
            return 0
        now = asyncio.get_running_loop().time()
        if self.reconcile is not None and (recovered or now - self._last_reconcile >= self.reconcile_every):
            self._last_reconcile = now
            try:
                await self.reconcile(recovered)
            except Exception as exc:
                log.warning("reconciliation of lost workflow starts failed: %s", type(exc).__name__)
            async with self.sessionmaker() as session:
                await prune_delivered(session)
        async with self.sessionmaker() as session:
            mark_system(session)
            if not await session.scalar(
                text("SELECT pg_try_advisory_xact_lock(hashtextextended('workflow-command-relay', 0))")
            ):
                return 0  # another worker's relay is delivering
            delivered, _ = await deliver_pending(session, self.client, self.task_queue)
        if delivered:
            log.info("relay delivered %d workflow commands", delivered)
        return delivered

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until `stop` is set; a failed round (the database down) is logged and retried."""
        while not stop.is_set():
            try:
                await self.round()
            except Exception as exc:
                log.warning("workflow command relay round failed: %s", type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            except TimeoutError:
                pass

    async def _temporal_reachable(self) -> bool:
        try:
            return await self.client.service_client.check_health(timeout=RPC_TIMEOUT)
        except Exception:
            return False
