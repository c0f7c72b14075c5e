"""The request id, followed from the API request into the workflows it starts and their activities.

The API's `RequestIdMiddleware` binds the id for the request (`request_id_bound`); every log line written
meanwhile names it (`core.logging`). `RequestIdInterceptor`, on every Temporal client of the service,
carries it across Temporal in a header: a start, signal or update sent during a request carries the
request's id; the workflow keeps the id of its start (or of the latest signal or update that carried one)
and passes it on to the activities and child workflows it schedules; an activity binds it while it runs,
so its log lines (and the workflows it starts in turn) name the request that set it going.

The id is a plain token (`api.middleware` keeps a caller's only when it is one): never PHI.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import temporalio.client
import temporalio.converter
import temporalio.worker
from temporalio.api.common.v1 import Payload

HEADER = "prm-request-id"
_REQUEST_ID: ContextVar[str | None] = ContextVar("prm_request_id", default=None)
_CONVERTER = temporalio.converter.PayloadConverter.default


def current_request_id() -> str | None:
    """The id of the request (or of the request that set the running activity going), if any."""
    return _REQUEST_ID.get()


@contextmanager
def request_id_bound(request_id: str | None) -> Iterator[None]:
    """Bind `request_id` for the code run inside (None leaves the current one)."""
    if request_id is None:
        yield
        return
    token = _REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        _REQUEST_ID.reset(token)


def _with_id(headers: Mapping[str, Payload], request_id: str | None) -> Mapping[str, Payload]:
    if request_id is None or HEADER in headers:
        return headers
    return {**headers, HEADER: _CONVERTER.to_payload(request_id)}


def _id_from(headers: Mapping[str, Payload]) -> str | None:
    payload = headers.get(HEADER)
    if payload is None:
        return None
    try:
        value = _CONVERTER.from_payload(payload, str)
    except Exception:  # a header another client wrote: never fail a workflow or an activity over it
        return None
    return value if isinstance(value, str) else None


class RequestIdInterceptor(temporalio.client.Interceptor, temporalio.worker.Interceptor):
    """Carries the request id through Temporal headers (client calls, workflows, activities).

    Given to `Client.connect`, it also applies to the workers built on that client."""

    def intercept_client(
        self, next: temporalio.client.OutboundInterceptor
    ) -> temporalio.client.OutboundInterceptor:
        """Stamp the current request id on starts, signals and updates."""
        return _ClientOutbound(next)

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        """Bind the scheduling request's id while an activity runs."""
        return _ActivityInbound(next)

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
        """Keep the id in the workflow and pass it on to what the workflow schedules."""
        return _WorkflowInbound


class _ClientOutbound(temporalio.client.OutboundInterceptor):
    async def start_workflow(self, input: temporalio.client.StartWorkflowInput) -> Any:
        input.headers = _with_id(input.headers, current_request_id())
        return await super().start_workflow(input)

    async def signal_workflow(self, input: temporalio.client.SignalWorkflowInput) -> None:
        input.headers = _with_id(input.headers, current_request_id())
        await super().signal_workflow(input)

    async def start_workflow_update(self, input: temporalio.client.StartWorkflowUpdateInput) -> Any:
        input.headers = _with_id(input.headers, current_request_id())
        return await super().start_workflow_update(input)

    async def start_update_with_start_workflow(
        self, input: temporalio.client.StartWorkflowUpdateWithStartInput
    ) -> Any:
        request_id = current_request_id()
        input.start_workflow_input.headers = _with_id(input.start_workflow_input.headers, request_id)
        input.update_workflow_input.headers = _with_id(input.update_workflow_input.headers, request_id)
        return await super().start_update_with_start_workflow(input)


class _ActivityInbound(temporalio.worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        with request_id_bound(_id_from(input.headers)):
            return await super().execute_activity(input)


class _WorkflowInbound(temporalio.worker.WorkflowInboundInterceptor):
    """One per workflow run: the id it was started (or last signalled) with. Headers are in the history,
    so the value is the same on replay."""

    request_id: str | None = None

    def init(self, outbound: temporalio.worker.WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound, self))

    async def execute_workflow(self, input: temporalio.worker.ExecuteWorkflowInput) -> Any:
        self.request_id = _id_from(input.headers)
        return await super().execute_workflow(input)

    async def handle_signal(self, input: temporalio.worker.HandleSignalInput) -> None:
        self.request_id = _id_from(input.headers) or self.request_id
        await super().handle_signal(input)

    async def handle_update_handler(self, input: temporalio.worker.HandleUpdateInput) -> Any:
        self.request_id = _id_from(input.headers) or self.request_id
        return await super().handle_update_handler(input)


class _WorkflowOutbound(temporalio.worker.WorkflowOutboundInterceptor):
    def __init__(
        self, next: temporalio.worker.WorkflowOutboundInterceptor, inbound: _WorkflowInbound
    ) -> None:
        super().__init__(next)
        self._inbound = inbound

    def start_activity(self, input: temporalio.worker.StartActivityInput) -> Any:
        input.headers = _with_id(input.headers, self._inbound.request_id)
        return super().start_activity(input)

    def start_local_activity(self, input: temporalio.worker.StartLocalActivityInput) -> Any:
        input.headers = _with_id(input.headers, self._inbound.request_id)
        return super().start_local_activity(input)

    async def start_child_workflow(self, input: temporalio.worker.StartChildWorkflowInput) -> Any:
        input.headers = _with_id(input.headers, self._inbound.request_id)
        return await super().start_child_workflow(input)

    async def signal_external_workflow(self, input: temporalio.worker.SignalExternalWorkflowInput) -> None:
        input.headers = _with_id(input.headers, self._inbound.request_id)
        await super().signal_external_workflow(input)
