"""The workflow modules, read as source: no non-deterministic call, no mutable state shared between runs.

The worker runs workflows outside Temporal's sandbox (`worker.WORKFLOW_RUNNER`), so nothing refuses such
calls in production. The test suite runs every workflow in the strict sandbox; this test covers the code
paths no test happens to run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"

# Fully qualified callables a workflow must not call: the clock, randomness, fresh ids, the environment,
# files (`workflow.now()`, `workflow.random()` and `workflow.uuid4()` are the deterministic ones).
BANNED = frozenset(
    {
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
        "datetime.date.today",
        "time.time",
        "time.time_ns",
        "time.monotonic",
        "time.perf_counter",
        "time.sleep",
        "uuid.uuid1",
        "uuid.uuid4",
        "open",
        "io.open",
        "builtins.open",
        "input",
    }
)
BANNED_MODULES = ("random", "secrets", "socket", "threading", "subprocess", "os", "shutil", "pathlib")
MUTABLE_CALLS = frozenset(
    {"list", "dict", "set", "bytearray", "defaultdict", "deque", "OrderedDict", "Counter"}
)


def _imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> fully qualified name, for every import of the module (at any depth)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:  # `import a.b` binds `a`; `import a.b as c` binds `c` to `a.b`
                top = alias.name.split(".")[0]
                names[alias.asname or top] = alias.name if alias.asname else top
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := _dotted(node.value)) is not None:
        return f"{base}.{node.attr}"
    return None


def defects(source: str) -> list[str]:
    """What a workflow module must not hold: each as `line: what`."""
    tree = ast.parse(source)
    imported = _imports(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (name := _dotted(node.func)) is not None:
            head, _, rest = name.partition(".")
            qualified = ".".join(filter(None, (imported.get(head, head), rest)))
            if qualified in BANNED or qualified.startswith(tuple(f"{m}." for m in BANNED_MODULES)):
                found.append(f"{node.lineno}: calls {qualified}")
        elif isinstance(node, ast.Attribute) and _dotted(node) == "os.environ":
            found.append(f"{node.lineno}: reads os.environ")
        elif isinstance(node, ast.Global | ast.Nonlocal):
            found.append(f"{node.lineno}: declares {', '.join(node.names)} {type(node).__name__.lower()}")
    # The module's and its classes' attributes are shared by every run of its workflows (in one process).
    shared = [(s, "module-level") for s in tree.body] + [
        (s, f"class-level ({c.name})") for c in tree.body if isinstance(c, ast.ClassDef) for s in c.body
    ]
    for statement, where in shared:
        value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
        if isinstance(value, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.DictComp | ast.SetComp) or (
            isinstance(value, ast.Call) and _dotted(value.func) in MUTABLE_CALLS
        ):
            found.append(f"{statement.lineno}: {where} mutable value")
    return found


@pytest.mark.parametrize("module", sorted(p.name for p in WORKFLOWS.glob("*.py")))
def test_a_workflow_module_makes_no_non_deterministic_call_and_keeps_no_mutable_state(module: str) -> None:
    assert defects((WORKFLOWS / module).read_text()) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "from datetime import datetime\ndef f():\n    return datetime.now()\n",
            "3: calls datetime.datetime.now",
        ),
        ("import datetime\ndef f():\n    return datetime.date.today()\n", "3: calls datetime.date.today"),
        ("import random\ndef f():\n    return random.choice([1, 2])\n", "3: calls random.choice"),
        ("from uuid import uuid4 as new_id\nx = 1\ndef f():\n    return new_id()\n", "4: calls uuid.uuid4"),
        ("import time as t\ndef f():\n    t.sleep(1)\n", "3: calls time.sleep"),
        ("def f(path):\n    return open(path).read()\n", "2: calls open"),
        ("import os\ndef f():\n    return os.getenv('X')\n", "3: calls os.getenv"),
        ("from pathlib import Path\ndef f():\n    return Path('x').read_text()\n", "3: calls pathlib.Path"),
        ("import os\ndef f():\n    return os.environ['X']\n", "3: reads os.environ"),
        ("SEEN = {}\n", "1: module-level mutable value"),
        ("SEEN: list[str] = list()\n", "1: module-level mutable value"),
        ("n = 0\ndef f():\n    global n\n", "3: declares n global"),
        ("class W:\n    seen: dict[str, int] = {}\n", "2: class-level (W) mutable value"),
    ],
)
def test_the_reader_finds_what_it_looks_for(source: str, expected: str) -> None:
    assert defects(source) == [expected]


def test_the_reader_lets_constants_and_the_workflow_apis_be() -> None:
    source = (
        "from datetime import timedelta\nfrom temporalio import workflow\n"
        "TIMEOUT = timedelta(seconds=30)\nNAMES = ('a', 'b')\n"
        "def f():\n    return workflow.now(), workflow.uuid4(), workflow.random().random()\n"
    )
    assert defects(source) == []
