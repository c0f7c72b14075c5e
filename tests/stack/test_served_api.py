"""The API served as it is really served, in a process of its own: the container image (the Dockerfile's own
environment and command, on every address of this machine), `prm run` and `prm api`."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cli.stack import uvicorn_argv
from core.auth import Role, issue_dev_token
from core.codec import new_key_setting
from core.settings import DEV_JWT_SECRET, Settings
from tests.dedicated_postgres import free_port
from tests.stack.cli_support import AUDIT_HMAC_KEY, prm_command

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
PRACTITIONERS = "/api/v1/prm/practitioners"
REAL_SECRET = "a-secret-of-this-deployment-alone-0123456789"
STARTUP_SECONDS = 30.0


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (keyword, arguments), continuation lines joined, comments dropped."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in joined.splitlines() if ln.strip()]


def image_environment() -> dict[str, str]:
    """Every `ENV key=value` the Dockerfile sets."""
    env: dict[str, str] = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in args.split())
    return env


def image_command(port: int) -> list[str]:
    """The Dockerfile's CMD, run from this venv, on `port` instead of 8000."""
    (argv,) = [json.loads(args) for keyword, args in dockerfile_instructions() if keyword == "CMD"]
    assert argv[0] == "uvicorn", argv
    argv = [sys.executable, "-m", *argv]
    argv[argv.index("--port") + 1] = str(port)
    return argv


@dataclass(frozen=True)
class Exited:
    """A server that stopped before it answered."""

    returncode: int
    output: str


@contextmanager
def serving(argv: list[str], env: dict[str, str]) -> Iterator[str | Exited]:
    """Run `argv` with only `env` (and PATH/HOME) until it answers `/health` (yields its loopback base URL)
    or exits (yields how), then stop it."""
    port = int(argv[argv.index("--port") + 1])
    base = f"http://127.0.0.1:{port}"
    full_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}  # noqa: S108
    proc = subprocess.Popen(  # noqa: S603 - the image's own command
        argv, env=full_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if proc.poll() is not None:
                assert proc.stdout is not None
                yield Exited(proc.returncode, proc.stdout.read())
                return
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API neither answered nor exited"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def network_address() -> str | None:
    """An address of this machine that is not loopback (the one a route to elsewhere would leave from)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("203.0.113.1", 9))  # nothing is sent: connecting a UDP socket only picks a route
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address  # noqa: S104


def minted_admin_token(tenant_id: uuid.UUID, secret: str = DEV_JWT_SECRET) -> str:
    """What anyone who read the code could sign: an admin of `tenant_id`."""
    settings = Settings(env="test", jwt_secret=secret)
    return issue_dev_token(settings, tenant_id=tenant_id, roles=[Role.ADMIN], sub="intruder")


def test_the_image_runs_in_production() -> None:
    assert image_environment().get("PRM_ENV") == "production"


def test_the_image_refuses_to_start_with_the_published_secret(database_url: str) -> None:
    env = {**image_environment(), "DATABASE_URL": database_url}
    with serving(image_command(free_port()), env) as served:
        assert isinstance(served, Exited), f"the image served {served} with the published secret"
    assert served.returncode != 0
    assert "PRM_JWT_SECRET" in served.output
    assert DEV_JWT_SECRET not in served.output


def test_the_image_with_a_real_secret_refuses_a_token_minted_with_the_published_one(
    database_url: str, tenant_id: uuid.UUID
) -> None:
    with serving(image_command(free_port()), image_production_env(database_url)) as served:
        assert isinstance(served, str), served
        minted = httpx.get(
            served + PRACTITIONERS, headers={"Authorization": f"Bearer {minted_admin_token(tenant_id)}"}
        )
        real = httpx.get(
            served + PRACTITIONERS,
            headers={"Authorization": f"Bearer {minted_admin_token(tenant_id, REAL_SECRET)}"},
        )
    assert minted.status_code == 401
    assert real.status_code == 200


def test_development_on_every_address_refuses_published_secret_tokens_from_the_network(
    database_url: str, tenant_id: uuid.UUID
) -> None:
    """The image's command without PRM_ENV (development): the published secret still opens nothing to the
    network, only to this machine."""
    address = network_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    env = {k: v for k, v in image_environment().items() if k != "PRM_ENV"} | {"DATABASE_URL": database_url}
    port = free_port()
    token = {"Authorization": f"Bearer {minted_admin_token(tenant_id)}"}
    with serving(image_command(port), env) as served:
        assert isinstance(served, str), served
        from_network = httpx.get(f"http://{address}:{port}{PRACTITIONERS}", headers=token)
        from_this_machine = httpx.get(served + PRACTITIONERS, headers=token)
    assert from_network.status_code == 401
    assert "PRM_JWT_SECRET" in from_network.json()["detail"]
    assert from_this_machine.status_code == 200


def image_production_env(database_url: str) -> dict[str, str]:
    """The image's environment with what docker-compose.yml adds: a database and real secrets."""
    return {
        **image_environment(),
        "DATABASE_URL": database_url,
        "PRM_JWT_SECRET": REAL_SECRET,
        "PRM_PAYLOAD_ENCRYPTION_KEYS": new_key_setting(),
        "PRM_AUDIT_HMAC_KEY": AUDIT_HMAC_KEY,
    }


def served_by(how: str, port: int, database_url: str) -> tuple[list[str], dict[str, str]]:
    """The command and environment each way of serving the API starts it with, on `port`."""
    development = {"DATABASE_URL": database_url, "PRM_ENV": "development"}
    if how == "the image":
        return image_command(port), image_production_env(database_url)
    if how == "prm run":
        return uvicorn_argv("api.app:create_app_from_env", "127.0.0.1", port, "warning"), development
    assert how == "prm api", how
    return [*prm_command(), "api", "--port", str(port)], development


@pytest.mark.parametrize("how", ["the image", "prm run", "prm api"])
def test_the_served_api_names_no_server_and_sends_the_security_headers(database_url: str, how: str) -> None:
    argv, env = served_by(how, free_port(), database_url)
    with serving(argv, env) as served:
        assert isinstance(served, str), served
        health = httpx.get(served + "/health")

    assert "server" not in health.headers
    assert health.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in health.headers["content-security-policy"]
