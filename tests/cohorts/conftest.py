"""Cohort fixtures: the test tenant's clinic population (factories in `tests/cohorts/support.py`)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.cohorts.support import Clinic


@pytest.fixture
def clinic(system_sessionmaker: async_sessionmaker[AsyncSession], tenant_id: uuid.UUID) -> Clinic:
    """Writes patients and their records into this test's tenant."""
    return Clinic(system_sessionmaker, tenant_id)
