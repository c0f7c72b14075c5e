"""Tenant helpers shared by the tests of every directory: the type of the `make_tenant` fixture (root
`conftest.py`), and waiting for the app's cache of active tenants to listen."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI

from domain.tenants.active import ActiveTenants

TenantFactory = Callable[..., Awaitable[uuid.UUID]]


async def listening(app: FastAPI) -> ActiveTenants:
    """The app's cache, once its LISTEN connection is up."""
    active: ActiveTenants = app.state.active_tenants
    async with asyncio.timeout(15):
        await active.wait_listening()
    return active
