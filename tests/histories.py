"""Recorded workflow histories: save a fresh one when asked, load the committed ones, and read what they hold.

A replay test records its scenarios on every run (real workflow, real activities, time-skipping server) and
replays the fresh history; with `PRM_RECORD_HISTORIES=<version>` set it also writes each one to
`histories/<scenario>_<version>.json`. The committed files are replayed against the current code, so a
workflow change that would break a running instance fails CI. Record new files when a change is intended
and made safe with `workflow.patched(...)`, and keep the old ones: instances started under every recorded
version must still replay.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

RECORD_ENV = "PRM_RECORD_HISTORIES"

# What a payload of these workflows may hold: ids, ISO times (a schedule's own end in Z), status words and
# patch ids (lower case, never a name), and keys made of those.
_TOKEN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9:.TZ+\-]+|[a-z][a-z0-9_\-]*"
_NO_PHI = re.compile(rf"(?:(?:{_TOKEN})(?::(?:{_TOKEN}))*)?")


async def replay_fresh(history: WorkflowHistory, workflow: type, directory: Path, scenario: str) -> None:
    """Replay a history just recorded; with PRM_RECORD_HISTORIES=<version> first write it to
    `directory/<scenario>_<version>.json`."""
    if version := os.environ.get(RECORD_ENV):
        await asyncio.to_thread(_write, directory / f"{scenario}_{version}.json", history.to_json())
    await Replayer(workflows=[workflow]).replay_workflow(history)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)


async def replay(path: Path, workflow: type) -> None:
    """Replay a committed history against the current code of `workflow` (raises on nondeterminism)."""
    await Replayer(workflows=[workflow]).replay_workflow(await load(path))


def recorded(directory: Path, scenario: str) -> list[Path]:
    """The committed histories of one scenario (`<scenario>_<version>.json`), oldest version first."""
    return sorted(directory.glob(f"{scenario}_*.json"))


async def load(path: Path) -> WorkflowHistory:
    """A committed history, named after its file."""
    return WorkflowHistory.from_json(f"recorded-{path.stem}", await asyncio.to_thread(path.read_text))


@dataclass(frozen=True)
class Scenario:
    """What every recorded history of one scenario holds, so a truncated or mislabelled file cannot pass."""

    activities: list[str]  # the activity types scheduled, in order
    signals: list[str]  # the signals received, in order
    result: Any  # the workflow's result
    timers_fired: int = 0  # at least this many sleeps ran to their end
    # The activities of histories recorded by earlier versions that scheduled others ({"v1": [...]}).
    earlier: dict[str, list[str]] = field(default_factory=dict)

    def activities_of(self, version: str) -> list[str]:
        """The activity types a history recorded by `version` scheduled, in order."""
        return self.earlier.get(version, self.activities)


def scenario_of(path: Path, scenarios: dict[str, Scenario]) -> tuple[Scenario, str]:
    """The scenario a history file records and the version that recorded it, from its name
    (`<scenario>_<version>.json`)."""
    [name] = [name for name in scenarios if path.stem.startswith(f"{name}_")]
    return scenarios[name], path.stem.removeprefix(f"{name}_")


def assert_whole(
    history: WorkflowHistory, workflow_type: str, scenario: Scenario, version: str | None = None
) -> None:
    """The history is one run of `workflow_type`, from its start to its completion, doing what it should
    (as `version` did it, when it was recorded by an earlier one)."""
    first = history.events[0]
    assert first.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    assert first.workflow_execution_started_event_attributes.workflow_type.name == workflow_type
    assert activity_types(history) == (
        scenario.activities if version is None else scenario.activities_of(version)
    )
    assert signal_names(history) == scenario.signals
    assert timers_fired(history) >= scenario.timers_fired
    assert result(history) == scenario.result


def activity_types(history: WorkflowHistory) -> list[str]:
    """The activity types the workflow scheduled, in order."""
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


def signal_names(history: WorkflowHistory) -> list[str]:
    """The signals the workflow received, in order."""
    return [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]


def timers_fired(history: WorkflowHistory) -> int:
    """How many timers fired (sleeps that ran to their end rather than being cut short by a signal)."""
    return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED)


def result(history: WorkflowHistory) -> Any:
    """The workflow's result (decoded JSON); AssertionError unless the history ends with its completion."""
    last = history.events[-1]
    assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, (
        f"{history.workflow_id} does not end with the workflow's completion"
    )
    [payload] = last.workflow_execution_completed_event_attributes.result.payloads
    return json.loads(payload.data)


def strings_in_payloads(path: Path) -> list[str]:
    """Every string inside every payload of a history file (inputs, signals, results, search attributes)."""
    found: list[str] = []

    def strings(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                strings(v)
        elif isinstance(value, list):
            for v in value:
                strings(v)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "metadata" in node:  # a payload: JSON, or anything else read as text
                data = base64.b64decode(node.get("data", ""))
                encoding = base64.b64decode(node["metadata"].get("encoding", ""))
                strings(json.loads(data) if encoding == b"json/plain" else data.decode(errors="replace"))
                return
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(path.read_text()))
    return found


def phi_suspects(path: Path, fixture_values: tuple[str, ...]) -> list[str]:
    """What in a history file could be PHI: payload strings that are not ids, times or status words, and
    any of the test fixtures' names, phones or texts found anywhere in the file."""
    suspects = [s for s in strings_in_payloads(path) if not _NO_PHI.fullmatch(s)]
    text = path.read_text()
    return suspects + [value for value in fixture_values if value in text]


def recorded_history_checks(
    workflow: type, workflow_name: str, directory: Path, prefix: str, scenarios: Any, fixture_phi: Any
) -> tuple[Callable[..., Any], ...]:
    """The four checks every workflow's recorded histories get, as test functions for a test module to
    bind at module level: each replays against the current code, each scenario has one, each is the whole
    scenario (so a truncated file cannot pass), and none holds the fixtures' PHI."""
    recorded_paths = sorted(directory.glob(f"{prefix}_*.json"))

    @pytest.mark.parametrize("path", recorded_paths, ids=lambda p: p.stem)
    async def replays_against_current_code(path: Path) -> None:
        await replay(path, workflow)

    @pytest.mark.parametrize("scenario", sorted(scenarios))
    def every_scenario_has_a_recorded_history(scenario: str) -> None:
        assert recorded(directory, scenario), f"no recorded history of {scenario}"

    @pytest.mark.parametrize("path", recorded_paths, ids=lambda p: p.stem)
    async def is_the_whole_scenario(path: Path) -> None:
        assert_whole(await load(path), workflow_name, *scenario_of(path, scenarios))

    @pytest.mark.parametrize("path", recorded_paths, ids=lambda p: p.stem)
    def holds_no_phi(path: Path) -> None:
        assert phi_suspects(path, fixture_phi) == []

    return (
        replays_against_current_code,
        every_scenario_has_a_recorded_history,
        is_the_whole_scenario,
        holds_no_phi,
    )
