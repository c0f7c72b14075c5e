"""Temporal workflows: deterministic decisions over dataclass inputs of ids; no I/O, no PHI."""

from __future__ import annotations

# Every workflow class the worker registers. Filled in by the domains that define workflows.
ALL_WORKFLOWS: list[type] = []
