"""The Temporal client, shared by the API and the worker."""

from __future__ import annotations

from temporalio.client import Client

from core.settings import Settings


def temporal_target(settings: Settings) -> str:
    """TEMPORAL_ADDRESS when set, otherwise the local dev server that `make run` starts."""
    return settings.temporal_address or f"127.0.0.1:{settings.temporal_port}"


async def connect_temporal(settings: Settings) -> Client:
    """Connect to the configured Temporal namespace."""
    return await Client.connect(temporal_target(settings), namespace=settings.temporal_namespace)
