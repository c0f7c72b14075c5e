"""Audit helpers for tests that read the trail straight from the table."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.audit import AuditBuffer


async def chain_waiting(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Chain every audit record committed so far, as the API's appender or the worker's `audit-chain` job
    does within a second."""
    await AuditBuffer(sessionmaker).flush()
