"""Tests of the workflow commands a change records (`core.workflow_commands`): reading them, a Temporal that
cannot be reached, and the worker's relay confined to one test's tenant. Shared by every test directory."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import ORMExecuteState, with_loader_criteria
from temporalio.client import Client

from core.database import mark_system
from core.gateway import WorkflowGateway
from core.workflow_commands import CommandRelay, WorkflowCommand


async def commands_for(sessionmaker: Any, *workflow_ids: str) -> list[WorkflowCommand]:
    """Every command recorded for `workflow_ids` (delivered or not), in the order they were recorded."""
    async with sessionmaker() as session:
        mark_system(session)
        rows = await session.scalars(
            select(WorkflowCommand)
            .where(WorkflowCommand.workflow_id.in_(workflow_ids))
            .order_by(WorkflowCommand.id)
        )
        return list(rows)


def unreachable_gateway(task_queue: str = "nowhere") -> WorkflowGateway:
    """A gateway whose Temporal cannot be reached (every call raises `TemporalUnavailable`)."""

    async def get_client() -> Client:
        raise ConnectionError("Temporal is down")

    return WorkflowGateway(get_client, task_queue)


def tenant_relay(sessionmaker: Any, tenant_id: uuid.UUID, gateway: WorkflowGateway) -> CommandRelay:
    """The worker's relay (`CommandRelay`), over sessions that see only `tenant_id`'s commands, as it runs
    against a database holding only this test's: a run's database also holds the commands other tests left
    pending, which are not this test's to start on its server and worker."""

    def only_this_tenant(state: ORMExecuteState) -> None:
        if state.is_select or state.is_update or state.is_delete:
            state.statement = state.statement.options(
                with_loader_criteria(WorkflowCommand, WorkflowCommand.tenant_id == tenant_id)
            )

    def sessions() -> Any:
        session = sessionmaker()
        event.listen(session.sync_session, "do_orm_execute", only_this_tenant)
        return session

    return CommandRelay(sessions, gateway)


async def relay_rounds(relay: CommandRelay) -> None:
    """Relay rounds until one says nothing more is due at once (as the worker's periodic job does)."""
    while await relay():
        pass
