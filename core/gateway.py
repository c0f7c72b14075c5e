"""The workflow gateway: the one place that talks to the Temporal client.

Everything the service asks of Temporal goes through `WorkflowGateway`: start, signal, signal-with-start,
cancel, terminate, update and describe, and a schedule's create, pause, unpause and delete. It owns the
three things every caller used to decide for itself: one bound on each call (`rpc_timeout`), one way to
name search attributes (plain keyword names and values, ids only), and one mapping of Temporal's errors
onto the service's:

- Temporal unreachable (no connection, a deadline, UNAVAILABLE) -> `TemporalUnavailable` (a 503);
- the workflow is not running (NOT_FOUND) -> `False` from signal/cancel/terminate, `WorkflowNotRunning`
  from update and describe; a schedule that does not exist -> `False` from its pause and delete;
- a start whose id is taken (running, or closed under a once-ever policy) -> `False` from start; a
  schedule's id taken -> `False` from its create;
- an answer a retry would never change (INVALID_ARGUMENT, FAILED_PRECONDITION, PERMISSION_DENIED)
  -> `CommandRejected`;
- an update the workflow refused -> `UpdateRefused`, carrying the failure's type and message.

Domain code never calls it directly for what follows a commit: it records a command
(`core.workflow_commands`), which this gateway delivers after the commit (and the relay until it is
delivered). Only what needs Temporal's answer now (advancing a journey's stage, the readiness probe) calls
the gateway during a request.

The gateway also remembers for a few seconds that Temporal was just unreachable (`recently_down`), so a
burst of requests during an outage leaves its commands to the relay at once instead of each waiting out
the timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core.errors import ServiceUnavailable
from core.settings import CONTROL_QUEUE_SUFFIX

log = logging.getLogger(__name__)

T = TypeVar("T")

# The one bound on a call to Temporal made for a request or the relay: past it the call is given up.
RPC_TIMEOUT = timedelta(seconds=5)
# After Temporal was unreachable, requests leave their commands to the relay for this long without trying.
DOWN_MEMORY_SECONDS = 5.0

# Search attribute names (keyword type, ids only: operators filter on them in the Temporal UI).
SA_TENANT = "PrmTenantId"
SA_PATIENT = "PrmPatientId"
SA_JOURNEY = "PrmJourneyId"
SA_INSTANCE_STATUS = "PrmInstanceStatus"
SEARCH_ATTRIBUTE_NAMES = (SA_TENANT, SA_PATIENT, SA_JOURNEY, SA_INSTANCE_STATUS)

_REJECTED = {
    RPCStatusCode.INVALID_ARGUMENT,
    RPCStatusCode.FAILED_PRECONDITION,
    RPCStatusCode.PERMISSION_DENIED,
}


class TemporalUnavailable(ServiceUnavailable):
    """Temporal could not be reached in time; what the request stored is kept."""


class WorkflowNotRunning(Exception):
    """The workflow does not exist or has closed."""


class CommandRejected(Exception):
    """Temporal refused the call for good (a retry would get the same answer); `status` names why."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class UpdateRefused(Exception):
    """The workflow refused an update; `type`, `message` and `details` are its failure's (ids and reasons,
    never PHI, by the workflows' contract)."""

    def __init__(self, type: str | None, message: str, details: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.type = type
        self.message = message
        self.details = details


class StartPolicy(enum.StrEnum):
    """What a start does when its workflow id was used before."""

    # A running workflow is left alone (the start is a no-op); a closed one is started again.
    REUSE = "reuse"
    # At most one run per id, ever: a start after the first run (running or closed) is a no-op.
    ONCE = "once"
    # A running workflow is replaced by the new run (e.g. a reopened ticket's SLA clock starts over).
    REPLACE = "replace"


@dataclasses.dataclass(frozen=True)
class WorkflowStart:
    """A workflow to start: its type, id, input (a dataclass or a dict of ids) and search attributes."""

    workflow: str
    workflow_id: str
    input: Any
    search_attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    policy: StartPolicy = StartPolicy.REUSE


@dataclasses.dataclass(frozen=True)
class ScheduledStart:
    """A Temporal Schedule starting `start`'s workflow every `every` from `first_at` on (Temporal appends
    each fire's scheduled time to `start.workflow_id`); with `fire_at_once`, the first fire is at its
    creation (`first_at` has passed). A fire while the previous one's workflow still runs is skipped, and
    after an outage only the last missed fire (within `every`) is caught up."""

    schedule_id: str
    start: WorkflowStart
    every: timedelta
    first_at: datetime
    fire_at_once: bool = False


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ids_of(tenant_id: object, patient_id: object | None = None) -> dict[str, str]:
    """The search attributes naming a workflow's tenant and (when it has one) patient."""
    values = {SA_TENANT: str(tenant_id)}
    if patient_id is not None:
        values[SA_PATIENT] = str(patient_id)
    return values


def search_attributes(values: Mapping[str, str]) -> TypedSearchAttributes:
    """Keyword search attributes from plain names and values."""
    return TypedSearchAttributes(
        [SearchAttributePair(SearchAttributeKey.for_keyword(name), value) for name, value in values.items()]
    )


_REUSE = {
    StartPolicy.REUSE: WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    StartPolicy.ONCE: WorkflowIDReusePolicy.REJECT_DUPLICATE,
    StartPolicy.REPLACE: WorkflowIDReusePolicy.ALLOW_DUPLICATE,
}


# Workflows that run on the control task queue (`<task queue>-control`), which the worker polls with slots
# of its own: loops whose steps must not wait behind the work they fan out. A campaign's batch starts a
# hundred journeys, whose sends then fill the task queue and every activity slot; on that queue the next
# batch waited behind them (1-2 s for a slot, and as long for its workflow task, per batch).
CONTROL_WORKFLOWS = frozenset({"CampaignWorkflow"})


def control_queue(task_queue: str) -> str:
    """The control task queue beside `task_queue`."""
    return task_queue + CONTROL_QUEUE_SUFFIX


def main_queue(task_queue: str) -> str:
    """The task queue a control queue stands beside (a main queue is its own)."""
    return task_queue.removesuffix(CONTROL_QUEUE_SUFFIX)


class WorkflowGateway:
    """Every call the service makes to Temporal, with one timeout and one mapping of errors."""

    def __init__(
        self,
        get_client: Callable[[], Awaitable[Client]],
        task_queue: str,
        *,
        rpc_timeout: timedelta = RPC_TIMEOUT,
    ) -> None:
        self._get_client = get_client
        self.task_queue = main_queue(task_queue)  # where workflows start, unless they are control ones
        self.rpc_timeout = rpc_timeout
        self._down_until = 0.0

    @classmethod
    def of_client(cls, client: Client, task_queue: str, **options: Any) -> WorkflowGateway:
        """A gateway over a client that is already connected (the worker's)."""

        async def get_client() -> Client:
            return client

        return cls(get_client, task_queue, **options)

    def queue_for(self, workflow: str) -> str:
        """The task queue `workflow` is started on: the control queue for `CONTROL_WORKFLOWS`."""
        return control_queue(self.task_queue) if workflow in CONTROL_WORKFLOWS else self.task_queue

    @property
    def recently_down(self) -> bool:
        """Whether Temporal was found unreachable in the last few seconds."""
        return time.monotonic() < self._down_until

    def mark_reachable(self) -> None:
        """Forget an earlier outage (the relay saw Temporal healthy again)."""
        self._down_until = 0.0

    async def start(self, spec: WorkflowStart) -> bool:
        """Start `spec`'s workflow; False when its policy makes this start a no-op (see StartPolicy)."""

        async def call(client: Client) -> bool:
            try:
                await client.start_workflow(
                    spec.workflow,
                    spec.input,
                    id=spec.workflow_id,
                    task_queue=self.queue_for(spec.workflow),
                    search_attributes=search_attributes(spec.search_attributes),
                    id_reuse_policy=_REUSE[spec.policy],
                    id_conflict_policy=(
                        WorkflowIDConflictPolicy.TERMINATE_EXISTING
                        if spec.policy == StartPolicy.REPLACE
                        else WorkflowIDConflictPolicy.FAIL
                    ),
                    rpc_timeout=self.rpc_timeout,
                )
            except WorkflowAlreadyStartedError:
                return False
            return True

        return await self._call(call)

    async def signal_with_start(self, spec: WorkflowStart, signal: str, arg: Any) -> None:
        """Signal `spec`'s workflow, starting it first when it is not running."""

        async def call(client: Client) -> None:
            await client.start_workflow(
                spec.workflow,
                spec.input,
                id=spec.workflow_id,
                task_queue=self.queue_for(spec.workflow),
                search_attributes=search_attributes(spec.search_attributes),
                start_signal=signal,
                start_signal_args=[arg],
                rpc_timeout=self.rpc_timeout,
            )

        await self._call(call)

    async def create_schedule(self, spec: ScheduledStart) -> bool:
        """Create `spec`'s schedule; False when a schedule of that id already exists (a repeated create)."""
        # Interval fires land on epoch + n * every + offset: the offset puts `first_at` among them.
        offset = (spec.first_at - _EPOCH) % spec.every
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                spec.start.workflow,
                spec.start.input,
                id=spec.start.workflow_id,
                task_queue=self.queue_for(spec.start.workflow),
                typed_search_attributes=search_attributes(spec.start.search_attributes),
            ),
            spec=ScheduleSpec(
                intervals=[ScheduleIntervalSpec(every=spec.every, offset=offset)],
                start_at=spec.first_at - timedelta(seconds=1),
            ),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=spec.every),
        )

        async def call(client: Client) -> bool:
            try:
                await client.create_schedule(
                    spec.schedule_id,
                    schedule,
                    trigger_immediately=spec.fire_at_once,
                    search_attributes=search_attributes(spec.start.search_attributes),
                    rpc_timeout=self.rpc_timeout,
                )
            except ScheduleAlreadyRunningError:
                return False
            return True

        return await self._call(call)

    async def pause_schedule(self, schedule_id: str, *, paused: bool) -> bool:
        """Pause (or unpause) a schedule; False when it does not exist."""

        async def call(client: Client) -> bool:
            handle = client.get_schedule_handle(schedule_id)
            if paused:
                await handle.pause(rpc_timeout=self.rpc_timeout)
            else:
                await handle.unpause(rpc_timeout=self.rpc_timeout)
            return True

        return await self._unless_not_found(call)

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule (the workflows it started are left alone); False when it does not exist."""

        async def call(client: Client) -> bool:
            await client.get_schedule_handle(schedule_id).delete(rpc_timeout=self.rpc_timeout)
            return True

        return await self._unless_not_found(call)

    async def signal(self, workflow_id: str, signal: str, arg: Any) -> bool:
        """Signal a running workflow; False when it is not running."""

        async def call(client: Client) -> bool:
            await client.get_workflow_handle(workflow_id).signal(signal, arg, rpc_timeout=self.rpc_timeout)
            return True

        return await self._unless_not_found(call)

    async def cancel(self, workflow_id: str) -> bool:
        """Ask a running workflow to cancel (it cleans up and records it); False when it is not running."""

        async def call(client: Client) -> bool:
            await client.get_workflow_handle(workflow_id).cancel(rpc_timeout=self.rpc_timeout)
            return True

        return await self._unless_not_found(call)

    async def terminate(self, workflow_id: str, reason: str) -> bool:
        """End a running workflow at once, without its cleanup; False when it is not running."""

        async def call(client: Client) -> bool:
            await client.get_workflow_handle(workflow_id).terminate(
                reason=reason, rpc_timeout=self.rpc_timeout
            )
            return True

        return await self._unless_not_found(call)

    async def update(
        self,
        workflow_id: str,
        update: str,
        arg: Any,
        *,
        result_type: type[T],
        update_id: str | None = None,
        wait: timedelta,
    ) -> T:
        """Run an update and wait for its result (`wait` bounds the whole update). UpdateRefused when
        the workflow refused it, WorkflowNotRunning when it is not running, TemporalUnavailable when no
        answer came in time."""

        async def call(client: Client) -> T:
            return await client.get_workflow_handle(workflow_id).execute_update(
                update, arg, id=update_id, result_type=result_type, rpc_timeout=wait
            )

        return await self._call(call, not_found=True)

    async def update_result(self, workflow_id: str, update_id: str, *, result_type: type[T]) -> T | None:
        """The outcome of an update already run under `update_id`; None when there was none."""

        async def call(client: Client) -> T | None:
            handle = client.get_workflow_handle(workflow_id).get_update_handle(
                update_id, result_type=result_type
            )
            try:
                return await handle.result(rpc_timeout=self.rpc_timeout)
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return None
                raise

        return await self._call(call, not_found=True)

    async def status(self, workflow_id: str) -> str:
        """The workflow's status (`RUNNING`, `COMPLETED`, ...); WorkflowNotRunning when it never existed."""

        async def call(client: Client) -> str:
            described = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=self.rpc_timeout)
            status = described.status or WorkflowExecutionStatus.RUNNING
            return status.name

        return await self._call(call, not_found=True)

    async def healthy(self) -> bool:
        """Whether Temporal answers its health check now (never raises)."""
        try:
            client = await asyncio.wait_for(self._get_client(), self.rpc_timeout.total_seconds())
            ok = await client.service_client.check_health(timeout=self.rpc_timeout)
        except Exception:
            ok = False
        if ok:
            self.mark_reachable()
        return bool(ok)

    async def missing_search_attributes(self, namespace: str) -> list[str]:
        """The service's search attributes that `namespace` has not registered (operators' start-up check)."""

        async def call(client: Client) -> list[str]:
            resp = await client.operator_service.list_search_attributes(
                ListSearchAttributesRequest(namespace=namespace), timeout=self.rpc_timeout
            )
            return [name for name in SEARCH_ATTRIBUTE_NAMES if name not in resp.custom_attributes]

        return await self._call(call)

    async def polled_by(self, namespace: str, identity: str) -> bool:
        """Whether the worker `identity` polls this gateway's task queue (for workflows or activities)."""

        async def call(client: Client) -> bool:
            for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
                resp = await client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=namespace, task_queue=TaskQueue(name=self.task_queue), task_queue_type=kind
                    ),
                    timeout=self.rpc_timeout,
                )
                if any(p.identity == identity for p in resp.pollers):
                    return True
            return False

        return await self._call(call)

    async def _unless_not_found(self, call: Callable[[Client], Awaitable[bool]]) -> bool:
        try:
            return await self._call(call, not_found=True)
        except WorkflowNotRunning:
            return False

    async def _call(self, call: Callable[[Client], Awaitable[T]], *, not_found: bool = False) -> T:
        """Run `call` on the client, mapping Temporal's errors onto the service's (module docstring)."""
        try:
            client = await self._get_client()
        except ServiceUnavailable:
            self._down()
            raise
        except Exception as exc:  # connecting fails as RuntimeError, OSError, TimeoutError or RPCError
            self._down()
            raise TemporalUnavailable("Temporal is unreachable; try again shortly.") from exc
        try:
            result = await call(client)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError):
                raise UpdateRefused(cause.type, cause.message, tuple(cause.details)) from exc
            raise UpdateRefused(type(cause).__name__, str(cause)) from exc
        except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
            raise TemporalUnavailable("The workflow did not answer in time; try again.") from exc
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND and not_found:
                raise WorkflowNotRunning() from exc
            if exc.status in _REJECTED:
                raise CommandRejected(exc.status.name if exc.status else "UNKNOWN") from exc
            self._down()
            raise TemporalUnavailable("Temporal is unreachable; try again shortly.") from exc
        except (OSError, TimeoutError) as exc:
            self._down()
            raise TemporalUnavailable("Temporal is unreachable; try again shortly.") from exc
        self.mark_reachable()  # it answered: requests may deliver their own commands again
        return result

    def _down(self) -> None:
        self._down_until = time.monotonic() + DOWN_MEMORY_SECONDS


_GATEWAY_KEY = "workflow_gateway"


def bind_gateway(session: AsyncSession, gateway: WorkflowGateway) -> None:
    """Let what `session` records for Temporal be delivered right after its commit (`gateway_for`)."""
    session.info[_GATEWAY_KEY] = gateway


def gateway_for(session: AsyncSession) -> WorkflowGateway | None:
    """The gateway bound to `session`; inside an activity, one over the worker's own client; None where
    there is neither (a CLI script): its commands then wait for the relay."""
    bound: WorkflowGateway | None = session.info.get(_GATEWAY_KEY)
    if bound is not None:
        return bound
    if activity.in_activity():
        return WorkflowGateway.of_client(activity.client(), activity.info().task_queue)
    return None
