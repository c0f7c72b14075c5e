"""Patient fixtures: patients through the API, and the records a patient owns straight through the ORM
(the factories themselves are in `tests/patients/support.py`)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.patients.support import CreatePatient, Records, patient_factory


@pytest.fixture
def create_patient(client: httpx.AsyncClient, auth: dict[str, str]) -> CreatePatient:
    """Register a patient through the API (as the test tenant's coordinator) and return the response."""
    return patient_factory(client, auth)


@pytest.fixture
def records(system_sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID) -> Records:
    """Factories for the rows a patient owns, in this test's tenant."""
    return Records(system_sessionmaker, tenant_id)


@pytest.fixture
def other_tenant_headers(
    make_tenant: Callable[..., Awaitable[uuid.UUID]], headers_for: Callable[..., dict[str, str]]
) -> Callable[..., Awaitable[dict[str, str]]]:
    """Admin headers for a brand-new second tenant."""

    async def factory(role: str = "admin") -> dict[str, str]:
        return headers_for(await make_tenant(name="Other Clinic"), role)

    return factory
