"""The `prm` command line, run as a user runs it: a separate process whose stdout a script reads."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import jwt
import psycopg
import pytest

from core.auth import Role, TokenVerifier
from core.embedded_db import to_libpq_url
from core.migrate import scratch_database
from core.settings import Settings
from tests.stack.cli_support import create_tenant, prm


@pytest.fixture(scope="module")
def empty_database_url(database_url: str) -> Iterator[str]:
    """A second migrated database with no tenant at all (seeding only ever fills an empty one)."""
    with scratch_database(database_url, "prm_seed") as url:
        yield url


def test_tenant_create_prints_only_the_new_tenant_id(database_url: str) -> None:
    result = prm(database_url, "tenant", "create", "--name", "Harbor Clinic", "--timezone", "Europe/London")

    assert result.returncode == 0, result.stderr
    tenant_id = uuid.UUID(result.stdout.strip())
    assert result.stdout == f"{tenant_id}\n"
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        row = conn.execute("SELECT name, timezone FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    assert row == ("Harbor Clinic", "Europe/London")


def test_tenant_create_refuses_an_unknown_timezone(database_url: str) -> None:
    result = prm(database_url, "tenant", "create", "--name", "Nowhere Clinic", "--timezone", "Mars/Olympus")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "unknown time zone 'Mars/Olympus'" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_token_verifies_and_carries_the_role_sub_and_lifetime(database_url: str) -> None:
    tenant_id = create_tenant(database_url)

    result = prm(
        database_url, "token", "--tenant-id", str(tenant_id), "--role", "practitioner",
        "--sub", "dr-chen", "--ttl-minutes", "30",
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == f"{token}\n"
    principal = TokenVerifier(Settings(env="test")).verify(token)
    assert principal.tenant_id == tenant_id
    assert principal.roles == frozenset({Role.PRACTITIONER})
    assert principal.sub == "dr-chen"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert timedelta(seconds=claims["exp"] - claims["iat"]) == timedelta(minutes=30)


def test_token_refuses_an_unknown_role(database_url: str) -> None:
    tenant_id = create_tenant(database_url)

    result = prm(database_url, "token", "--tenant-id", str(tenant_id), "--role", "superuser")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "'superuser' is not one of" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_token_refuses_an_unknown_tenant(database_url: str) -> None:
    unknown = uuid.uuid4()

    result = prm(database_url, "token", "--tenant-id", str(unknown), "--role", "admin")

    assert result.returncode == 1
    assert result.stdout == ""
    assert f"no active tenant with id {unknown}" in result.stderr
    assert "Traceback" not in result.stderr


def test_token_refuses_a_tenant_id_that_is_not_a_uuid(database_url: str) -> None:
    result = prm(database_url, "token", "--tenant-id", "clinic-42", "--role", "admin")

    assert result.returncode == 2
    assert result.stdout == ""
    assert "--tenant-id" in result.stderr
    assert "Traceback" not in result.stderr


def test_seed_fills_an_empty_database_once(empty_database_url: str) -> None:
    first = prm(empty_database_url, "seed")
    second = prm(empty_database_url, "seed")

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    tenant_id = uuid.UUID(first.stdout.strip())
    assert second.stdout == first.stdout
    with psycopg.connect(to_libpq_url(empty_database_url)) as conn:
        tenants = conn.execute("SELECT id, name FROM tenants").fetchall()
        practitioners = conn.execute("SELECT count(DISTINCT speciality) FROM practitioners").fetchone()
        mrns = [r[0] for r in conn.execute("SELECT mrn FROM patients ORDER BY mrn").fetchall()]
    assert tenants == [(tenant_id, "Demo Clinic")]
    assert practitioners == (3,)
    assert mrns == [f"MRN-DEMO-{n:04d}" for n in range(1, 6)]


def test_tenant_create_defaults_to_the_configured_time_zone(database_url: str) -> None:
    result = prm(
        database_url, "tenant", "create", "--name", "Lisbon Clinic", PRM_DEFAULT_TIMEZONE="Europe/Lisbon"
    )
    assert result.returncode == 0, result.stderr
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        row = conn.execute("SELECT timezone FROM tenants WHERE id = %s", (result.stdout.strip(),)).fetchone()
    assert row == ("Europe/Lisbon",)


def test_tenant_create_stores_the_default_language_normalised(database_url: str) -> None:
    result = prm(database_url, "tenant", "create", "--name", "Clínica Sol", "--language", "ES-mx")
    assert result.returncode == 0, result.stderr
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        row = conn.execute(
            "SELECT settings->>'default_language' FROM tenants WHERE id = %s", (result.stdout.strip(),)
        ).fetchone()
    assert row == ("es-MX",)
    english = create_tenant(database_url, "Plain Clinic")
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        row = conn.execute(
            "SELECT settings->>'default_language' FROM tenants WHERE id = %s", (english,)
        ).fetchone()
    assert row == ("en",)


def test_tenant_create_refuses_a_bad_language(database_url: str) -> None:
    result = prm(database_url, "tenant", "create", "--name", "Babel Clinic", "--language", "english please")
    assert (result.returncode, result.stdout) == (2, "")
    assert "is not a language tag" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_token_refuses_a_lifetime_the_api_would_refuse(database_url: str) -> None:
    tenant_id = create_tenant(database_url)

    result = prm(
        database_url, "token", "--tenant-id", str(tenant_id), "--role", "viewer", "--ttl-minutes", "1441"
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert "PRM_JWT_MAX_LIFETIME_SECONDS" in result.stderr
    assert "Traceback" not in result.stderr
