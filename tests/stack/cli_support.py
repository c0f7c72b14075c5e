"""Running the `prm` command line as a user runs it, for the tests of any directory that drive it."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The run's audit key and anchor file: the suite's app (tests/conftest.py) and every `prm` it drives sign
# and check the trail with the same key, and no run reads another's anchors.
AUDIT_HMAC_KEY = secrets.token_hex(32)
AUDIT_ANCHOR_FILE = Path(tempfile.gettempdir()) / f"prm-test-audit-anchors-{uuid.uuid4().hex}.jsonl"


def prm_command() -> list[str]:
    """The installed `prm` script, or the module when the project is not installed."""
    script = Path(sys.executable).parent / "prm"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def prm(database_url: str, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """Run `prm ARGS` against `database_url`, capturing stdout and stderr apart."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATABASE_URL"] = database_url
    env["PRM_AUDIT_HMAC_KEY"] = AUDIT_HMAC_KEY
    env["PRM_AUDIT_ANCHOR_FILE"] = str(AUDIT_ANCHOR_FILE)
    env.update(extra_env)
    return subprocess.run(  # noqa: S603 - our own command line
        [*prm_command(), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def create_tenant(database_url: str, name: str = "CLI Clinic") -> uuid.UUID:
    """Create a tenant through the CLI and return its id."""
    result = prm(database_url, "tenant", "create", "--name", name)
    assert result.returncode == 0, result.stderr
    return uuid.UUID(result.stdout.strip())
