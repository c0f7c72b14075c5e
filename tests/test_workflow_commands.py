"""Workflow commands (core.workflow_commands): starts, signals and cancels recorded with the change,
delivered in order until Temporal has them, against a real Temporal test server and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import select, text
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from core.codec import TENANT, data_converter, new_key_setting
from core.database import bind_tenant, mark_system
from core.gateway import StartPolicy, WorkflowGateway, WorkflowStart, control_queue, main_queue
from core.settings import Settings
from core.workflow_commands import (
    CommandRelay,
    WorkflowCommand,
    deliver_pending,
    pending_summary,
    prune_delivered,
    record_cancel,
    record_signal,
    record_start,
    release_held,
    settle_held,
)
from tests.polling import eventually


@dataclass
class Note:
    n: int


@dataclass
class RecorderInput:
    label: str = ""


@workflow.defn(name="CommandRecorder")
class CommandRecorder:
    """Keeps every `note` it is sent, in arrival order, until told `done`."""

    def __init__(self) -> None:
        self.notes: list[int] = []
        self.finished = False

    @workflow.run
    async def run(self, _data: RecorderInput) -> list[int]:
        await workflow.wait_condition(lambda: self.finished)
        return self.notes

    @workflow.signal(name="note")
    def note(self, note: Note) -> None:
        self.notes.append(note.n)

    @workflow.signal(name="done")
    def done(self, _note: Note) -> None:
        self.finished = True

    @workflow.query(name="notes")
    def seen(self) -> list[int]:
        return list(self.notes)


@pytest.fixture
def temporal(dev_env) -> Client:
    """The dev server: nothing here sleeps, and a time-skipping server would skip a waiting recorder to its
    run timeout while a test awaits another's result."""
    return dev_env.client


@pytest.fixture
async def queue(temporal: Client) -> AsyncIterator[str]:
    name = f"commands-{uuid.uuid4().hex[:8]}"
    # A workflow defined in a test module runs unsandboxed (the sandbox would re-import pytest).
    async with Worker(
        temporal, task_queue=name, workflows=[CommandRecorder], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        yield name


async def _record(system_sessionmaker, tenant_id, *commands: tuple[str, str, int]) -> list[int]:
    """Record (workflow id, signal, n) commands in one transaction without Temporal: all stay pending."""
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        rows = [record_signal(session, workflow_id=w, signal=s, arg=Note(n)) for w, s, n in commands]
        await session.commit()
        return [r.id for r in rows]


async def _deliver(system_sessionmaker, client: Client, queue: str, ids: list[int]) -> tuple[int, int]:
    """Deliver this test's commands (a run's database may hold other tests' pending ones)."""
    async with system_sessionmaker() as session:
        return await deliver_pending(session, WorkflowGateway.of_client(client, queue), ids=ids)


def _recorder(workflow_id: str, policy: StartPolicy = StartPolicy.REUSE, label: str = "") -> WorkflowStart:
    return WorkflowStart("CommandRecorder", workflow_id, RecorderInput(label=label), policy=policy)


async def _rows(system_sessionmaker, ids: list[int]) -> list[WorkflowCommand]:
    async with system_sessionmaker() as session:
        mark_system(session)
        return list(
            (
                await session.scalars(
                    select(WorkflowCommand).where(WorkflowCommand.id.in_(ids)).order_by(WorkflowCommand.id)
                )
            ).all()
        )


async def test_commands_recorded_without_temporal_stay_pending_then_arrive_in_order(
    temporal, queue, system_sessionmaker, tenant_id
) -> None:
    workflow_id = f"recorder-{uuid.uuid4()}"
    handle = await temporal.start_workflow(
        CommandRecorder.run, RecorderInput(), id=workflow_id, task_queue=queue
    )
    ids = await _record(system_sessionmaker, tenant_id, *((workflow_id, "note", n) for n in (1, 2, 3)))
    assert [r.delivered_at for r in await _rows(system_sessionmaker, ids)] == [None, None, None]

    delivered, left = await _deliver(system_sessionmaker, temporal, queue, ids)
    assert (delivered, left) == (3, 0)
    assert await handle.query(CommandRecorder.seen) == [1, 2, 3]
    assert {r.outcome for r in await _rows(system_sessionmaker, ids)} == {"delivered"}

    assert await _deliver(system_sessionmaker, temporal, queue, ids) == (0, 0)  # nothing is sent twice
    assert await handle.query(CommandRecorder.seen) == [1, 2, 3]


async def test_a_command_held_elsewhere_holds_back_its_workflow_but_not_others(
    temporal, queue, system_sessionmaker, tenant_id
) -> None:
    first, second = f"recorder-{uuid.uuid4()}", f"recorder-{uuid.uuid4()}"
    handles = [
        await temporal.start_workflow(CommandRecorder.run, RecorderInput(), id=w, task_queue=queue)
        for w in (first, second)
    ]
    ids = await _record(
        system_sessionmaker, tenant_id, (first, "note", 1), (first, "note", 2), (second, "note", 7)
    )
    async with system_sessionmaker() as holder:  # another deliverer is busy with the first command
        await holder.execute(
            text("SELECT id FROM workflow_commands WHERE id = :id FOR UPDATE"), {"id": ids[0]}
        )
        delivered, _ = await _deliver(system_sessionmaker, temporal, queue, ids)
        assert delivered == 1
        assert await handles[1].query(CommandRecorder.seen) == [7]
        assert await handles[0].query(CommandRecorder.seen) == []  # 2 never overtakes 1
        await holder.rollback()
    assert (await _deliver(system_sessionmaker, temporal, queue, ids))[0] == 2
    assert await handles[0].query(CommandRecorder.seen) == [1, 2]


async def test_a_signal_to_a_workflow_that_is_not_running_is_dropped_as_not_running(
    temporal, queue, system_sessionmaker, tenant_id
) -> None:
    ids = await _record(system_sessionmaker, tenant_id, (f"recorder-{uuid.uuid4()}", "note", 1))
    assert await _deliver(system_sessionmaker, temporal, queue, ids) == (1, 0)
    [row] = await _rows(system_sessionmaker, ids)
    assert (row.outcome, row.delivered_at is not None) == ("not_running", True)


async def test_a_command_with_a_start_starts_the_missing_workflow_with_its_signal(
    temporal, queue, system_sessionmaker, tenant_id
) -> None:
    workflow_id = f"recorder-{uuid.uuid4()}"
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        rows = [
            record_signal(
                session,
                workflow_id=workflow_id,
                signal="note",
                arg=Note(5),
                start=_recorder(workflow_id, label="not running yet"),
            ),
            record_signal(session, workflow_id=workflow_id, signal="done", arg=Note(0)),
        ]
        await session.commit()
    ids = [r.id for r in rows]
    assert (await _deliver(system_sessionmaker, temporal, queue, ids))[0] == 2
    assert await temporal.get_workflow_handle(workflow_id).result() == [5]


async def test_a_command_rolled_back_with_its_change_is_never_delivered(
    temporal, queue, system_sessionmaker, tenant_id
) -> None:
    workflow_id = f"recorder-{uuid.uuid4()}"
    handle = await temporal.start_workflow(
        CommandRecorder.run, RecorderInput(), id=workflow_id, task_queue=queue
    )
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        record_signal(session, workflow_id=workflow_id, signal="note", arg=Note(9))
        await session.flush()
        await session.rollback()
    async with system_sessionmaker() as session:
        mark_system(session)
        kept = await session.scalar(
            select(WorkflowCommand.id).where(WorkflowCommand.workflow_id == workflow_id)
        )
    assert kept is None  # nothing for a relay to deliver
    assert await handle.query(CommandRecorder.seen) == []


async def test_delivered_commands_are_pruned_after_a_week_and_pending_ones_never(
    system_sessionmaker, tenant_id
) -> None:
    workflow_id = f"recorder-{uuid.uuid4()}"
    old, recent, pending = await _record(
        system_sessionmaker, tenant_id, *((workflow_id, "note", n) for n in (1, 2, 3))
    )
    async with system_sessionmaker() as session:
        await session.execute(
            text(
                "UPDATE workflow_commands SET delivered_at = now() - make_interval(days => :days)"
                " WHERE id = :id"
            ),
            [{"id": old, "days": 8}, {"id": recent, "days": 6}],
        )
        await session.commit()
        assert await prune_delivered(session) >= 1
    assert [r.id for r in await _rows(system_sessionmaker, [old, recent, pending])] == [recent, pending]


async def test_a_start_then_its_signals_and_cancel_arrive_in_order_once(
    temporal, queue, system_sessionmaker, tenant_id
) -> None:
    workflow_id = f"recorder-{uuid.uuid4()}"
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        rows = [
            record_start(session, _recorder(workflow_id)),
            record_signal(session, workflow_id=workflow_id, signal="note", arg=Note(4)),
            record_cancel(session, workflow_id=workflow_id),
        ]
        await session.commit()
    ids = [r.id for r in rows]
    assert await _deliver(system_sessionmaker, temporal, queue, ids) == (3, 0)
    assert [r.outcome for r in await _rows(system_sessionmaker, ids)] == ["delivered"] * 3
    status = await WorkflowGateway.of_client(temporal, queue).status(workflow_id)
    assert status in ("RUNNING", "CANCELED")  # cancellation requested after the note; never before the start
    assert await _deliver(system_sessionmaker, temporal, queue, ids) == (0, 0)


async def test_a_start_of_a_running_workflow_is_a_no_op_and_once_means_once_ever(
    temporal, queue, system_sessionmaker, tenant_id
) -> None:
    running, finished = f"recorder-{uuid.uuid4()}", f"recorder-{uuid.uuid4()}"
    await temporal.start_workflow(CommandRecorder.run, RecorderInput(), id=running, task_queue=queue)
    done = await temporal.start_workflow(CommandRecorder.run, RecorderInput(), id=finished, task_queue=queue)
    await done.signal(CommandRecorder.done, Note(0))
    await done.result()
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        rows = [
            record_start(session, _recorder(running)),
            record_start(session, _recorder(finished, StartPolicy.ONCE)),
        ]
        await session.commit()
    ids = [r.id for r in rows]
    assert (await _deliver(system_sessionmaker, temporal, queue, ids))[1] == 0
    assert [r.outcome for r in await _rows(system_sessionmaker, ids)] == [
        "already_started",
        "already_started",
    ]
    assert (await temporal.get_workflow_handle(finished).describe()).status.name == "COMPLETED"


async def test_a_held_start_waits_until_released_and_a_settled_one_never_goes(
    temporal, queue, system_sessionmaker, tenant_id
) -> None:
    released, settled = f"recorder-{uuid.uuid4()}", f"recorder-{uuid.uuid4()}"
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        held = [
            record_start(session, _recorder(w), hold_for=timedelta(minutes=5)) for w in (released, settled)
        ]
        await session.commit()
    ids = [c.id for c in held]
    assert await _deliver(system_sessionmaker, temporal, queue, ids) == (0, 0)  # not due yet
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        await release_held(session, released)
        await settle_held(session, settled)
        await session.commit()
    assert await _deliver(system_sessionmaker, temporal, queue, ids) == (1, 0)
    assert [r.outcome for r in await _rows(system_sessionmaker, ids)] == ["delivered", "settled"]
    assert (await temporal.get_workflow_handle(released).describe()).status.name == "RUNNING"
    with pytest.raises(RPCError):
        await temporal.get_workflow_handle(settled).describe()


async def test_an_unreachable_temporal_ends_the_round_and_leaves_every_command_pending(
    system_sessionmaker, tenant_id
) -> None:
    async def unreachable() -> Client:
        raise ConnectionError("Temporal is down")

    down = WorkflowGateway(unreachable, "nowhere")
    ids = await _record(
        system_sessionmaker, tenant_id, *((f"recorder-{uuid.uuid4()}", "note", n) for n in (1, 2, 3))
    )
    async with system_sessionmaker() as session:
        assert await deliver_pending(session, down, ids=ids) == (0, 3)
    rows = await _rows(system_sessionmaker, ids)
    assert [(r.delivered_at, r.attempts) for r in rows] == [(None, 1), (None, 0), (None, 0)]
    assert rows[0].last_error == "ConnectionError"
    assert down.recently_down  # requests now leave their commands to the relay without waiting


async def test_the_relay_delivers_what_waits_and_reports_the_oldest(
    temporal, queue, system_sessionmaker, tenant_id
) -> None:
    workflow_id = f"recorder-{uuid.uuid4()}"
    ids = await _record(system_sessionmaker, tenant_id, (workflow_id, "note", 1))
    async with system_sessionmaker() as session:
        summary = await pending_summary(session)
    assert summary.count >= 1 and summary.oldest_seconds >= 0
    relay = CommandRelay(system_sessionmaker, WorkflowGateway.of_client(temporal, queue))

    async def relayed() -> str | None:
        # Rounds, as the worker runs them: commands other tests of this run left pending go first.
        await relay()
        [row] = await _rows(system_sessionmaker, ids)
        return row.outcome

    # Delivered: the workflow does not run, so the signal is dropped.
    assert await eventually(relayed, "the relay's delivery") == "not_running"


async def test_a_delivered_signal_is_sealed_for_its_commands_tenant(
    temporal: Client, system_sessionmaker, tenant_id
) -> None:
    config = temporal.config()
    config["data_converter"] = data_converter(new_key_setting())
    encrypted = Client(**config)
    name, workflow_id = f"sealed-{uuid.uuid4().hex[:8]}", f"recorder-{uuid.uuid4()}"
    async with system_sessionmaker() as session:
        bind_tenant(session, tenant_id)
        rows = [
            record_start(session, _recorder(workflow_id)),
            record_signal(session, workflow_id=workflow_id, signal="note", arg=Note(7)),
            record_signal(session, workflow_id=workflow_id, signal="done", arg=Note(0)),
        ]
        await session.commit()
    async with Worker(
        encrypted, task_queue=name, workflows=[CommandRecorder], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        assert (await _deliver(system_sessionmaker, encrypted, name, [r.id for r in rows]))[0] == 3
        assert await encrypted.get_workflow_handle(workflow_id).result() == [7]
    history = await temporal.get_workflow_handle(workflow_id).fetch_history()
    signals = [
        p
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        for p in e.workflow_execution_signaled_event_attributes.input.payloads
    ]
    # Neither the signals nor the input name a tenant: the command's tenant is theirs, and the result's.
    (started,) = history.events[0].workflow_execution_started_event_attributes.input.payloads
    (result,) = history.events[-1].workflow_execution_completed_event_attributes.result.payloads
    assert len(signals) == 2
    assert {p.metadata[TENANT] for p in [*signals, started, result]} == {str(tenant_id).encode()}


def test_the_control_queue_stands_beside_the_task_queue_whose_name_may_not_look_like_one() -> None:
    assert control_queue("prm") == "prm-control" and main_queue("prm-control") == main_queue("prm") == "prm"
    with pytest.raises(ValidationError, match="must not end in '-control'"):
        Settings(temporal_task_queue="clinic-control")
