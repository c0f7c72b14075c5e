"""Temporal activities: the side effects workflows ask for, each idempotent under retry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.settings import Settings


@dataclass
class ActivityDeps:
    """What activities need from the process that hosts them (built once by worker.py)."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]


def build_activities(deps: ActivityDeps) -> list[Callable[..., Any]]:
    """Every activity the worker registers, bound to `deps`. Filled in by the domains that define activities."""
    return []
