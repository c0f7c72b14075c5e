"""An insider cannot rewrite the trail unnoticed: someone with the database's owner role switches the
trigger off, edits a record and recomputes the chain, and `prm audit verify` still names the record, because
the chain is keyed with a secret the database never holds; a rewrite by someone who has the key contradicts
a head anchored outside the database before it; the app's own role cannot change the trail at all; records
written before the key still verify."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from activities import ActivityDeps
from core.audit import GENESIS_HASH, AuditRecord, HashVersion, canonical_content, chain_hash
from core.audit_key import AuditKey
from core.database import make_engine, make_sessionmaker
from core.embedded_db import to_libpq_url
from core.periodic import PeriodicRunner
from core.settings import Settings
from domain.audit.anchor import Anchor, ForgedAnchor, append_anchors, read_anchors
from tests.audit.conftest import API, Trail
from tests.outbox import unreachable_gateway
from tests.patients.support import patient_body
from tests.stack.cli_support import AUDIT_HMAC_KEY, prm
from worker import periodic_jobs

Hasher = Callable[[bytes, str], str]
THE_KEY = AuditKey(AUDIT_HMAC_KEY.encode())


def plain_sha256(content: bytes, prev_hash: str) -> str:
    """What an insider computes without the key: the unkeyed hash of the records before the key."""
    return chain_hash(content, prev_hash, version=HashVersion.SHA256, key=None)


def hmac_under(key: AuditKey) -> Hasher:
    """What an insider computes with `key` (a guess, or the real one stolen)."""
    return lambda content, prev_hash: chain_hash(content, prev_hash, version=HashVersion.HMAC_SHA256, key=key)


def rewrite_as_owner(
    database_url: str,
    records: list[AuditRecord],
    *,
    victim_seq: int,
    hasher: Hasher,
    version: int | None = None,
) -> None:
    """As the table's owner: trigger off, the victim's user changed, every hash from it on recomputed with
    `hasher` (and `version` stamped, when given), trigger on again: a chain consistent in the database."""
    prev_hash = GENESIS_HASH
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        conn.execute("ALTER TABLE audit_records DISABLE TRIGGER trg_audit_records_append_only")
        for record in records:
            if record.seq < victim_seq:
                prev_hash = record.hash
                continue
            row = {c.key: getattr(record, c.key) for c in AuditRecord.__table__.columns}
            if record.seq == victim_seq:
                row["user_sub"] = "nobody"
            row["prev_hash"] = prev_hash
            row["hash"] = prev_hash = hasher(canonical_content(row), prev_hash)
            conn.execute(
                "UPDATE audit_records SET user_sub = %s, prev_hash = %s, hash = %s, hash_version = %s "
                "WHERE id = %s",
                (row["user_sub"], row["prev_hash"], row["hash"], version or record.hash_version, record.id),
            )
        conn.execute("ALTER TABLE audit_records ENABLE TRIGGER trg_audit_records_append_only")


@pytest.fixture
async def four_records(client: httpx.AsyncClient, auth: dict[str, str], trail: Trail) -> list[AuditRecord]:
    """Four keyed records of the test's tenant (four patients registered)."""
    for _ in range(4):
        await client.post(f"{API}/patients", json=patient_body(), headers=auth)
    records = await trail()
    assert [r.hash_version for r in records] == [HashVersion.HMAC_SHA256] * 4
    return records


@pytest.fixture
async def engine(database_url: str, settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine of the suite's settings (its audit key)."""
    engine = make_engine(database_url, settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def anchor_file(tmp_path: Path) -> Path:
    """A fresh anchor file for this test."""
    return tmp_path / "audit-anchors.jsonl"


Anchoring = Callable[[], Awaitable[None]]


@pytest.fixture
def anchor_now(engine: AsyncEngine, settings: Settings, anchor_file: Path) -> Anchoring:
    """One more round of the worker's own anchor job (one job for the test, as in one worker process),
    under the periodic runner as the worker runs it."""
    deps = ActivityDeps(
        settings=settings.model_copy(update={"audit_anchor_file": anchor_file}),
        sessionmaker=make_sessionmaker(engine),
    )
    (job,) = [j for j in periodic_jobs(deps, unreachable_gateway()) if j.name == "audit-anchors"]
    assert job.interval == settings.audit_anchor_interval_seconds
    runner = PeriodicRunner(engine, [job])

    async def round_() -> None:
        assert await runner.run_once(job) is False

    return round_


def lines_of(path: Path) -> list[str]:
    """The lines of a file."""
    return path.read_text().splitlines()


def owner_only(path: Path) -> bool:
    """Whether only the file's owner may read or write it."""
    return path.stat().st_mode & 0o077 == 0


def verify(database_url: str, tenant_id: uuid.UUID, anchor_file: Path | None = None) -> Any:
    """`prm audit verify --tenant-id`, with the suite's key (and `anchor_file` when given)."""
    extra = {"PRM_AUDIT_ANCHOR_FILE": str(anchor_file)} if anchor_file else {}
    return prm(database_url, "audit", "verify", "--tenant-id", str(tenant_id), **extra)


@pytest.mark.parametrize(
    "version", [None, HashVersion.SHA256], ids=["keeping-the-version", "marking-them-unkeyed"]
)
async def test_a_chain_recomputed_with_plain_sha256_fails_at_the_edited_record(
    four_records: list[AuditRecord], database_url: str, tenant_id: uuid.UUID, version: int | None
) -> None:
    victim = four_records[2]
    rewrite_as_owner(database_url, four_records, victim_seq=3, hasher=plain_sha256, version=version)

    result = verify(database_url, tenant_id)

    assert result.returncode == 1 and result.stdout == ""
    assert f"tenant {tenant_id}, record id {victim.id} (seq 3)" in result.stderr
    expected = (
        "does not match its hash" if version is None else "an unkeyed (SHA-256) record after keyed ones"
    )
    assert expected in result.stderr


async def test_a_chain_recomputed_with_hmac_under_another_key_fails_at_the_edited_record(
    four_records: list[AuditRecord], database_url: str, tenant_id: uuid.UUID
) -> None:
    victim = four_records[1]
    guessed = AuditKey(b"an insider's guess at the key, 32+ bytes")
    rewrite_as_owner(database_url, four_records, victim_seq=2, hasher=hmac_under(guessed))

    result = verify(database_url, tenant_id)

    assert result.returncode == 1
    assert f"record id {victim.id} (seq 2)" in result.stderr and "does not match its hash" in result.stderr


async def test_a_rewrite_with_the_stolen_key_contradicts_the_anchored_head(
    four_records: list[AuditRecord],
    anchor_now: Anchoring,
    anchor_file: Path,
    database_url: str,
    tenant_id: uuid.UUID,
) -> None:
    await anchor_now()
    assert verify(database_url, tenant_id, anchor_file).returncode == 0

    rewrite_as_owner(database_url, four_records, victim_seq=2, hasher=hmac_under(THE_KEY))
    assert verify(database_url, tenant_id).returncode == 0  # the chain alone cannot tell: the key was used
    result = verify(database_url, tenant_id, anchor_file)

    assert result.returncode == 1
    assert f"record id {four_records[3].id} (seq 4)" in result.stderr
    assert "differs from the head anchored at" in result.stderr


async def test_a_trail_cut_short_after_its_head_was_anchored_fails(
    four_records: list[AuditRecord],
    anchor_now: Anchoring,
    anchor_file: Path,
    database_url: str,
    tenant_id: uuid.UUID,
) -> None:
    await anchor_now()
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        conn.execute("ALTER TABLE audit_records DISABLE TRIGGER trg_audit_records_append_only")
        conn.execute("DELETE FROM audit_records WHERE id = %s", (four_records[3].id,))
        conn.execute("ALTER TABLE audit_records ENABLE TRIGGER trg_audit_records_append_only")

    result = verify(database_url, tenant_id, anchor_file)

    assert result.returncode == 1
    assert "the trail ends at seq 3 but seq 4 was anchored" in result.stderr


async def test_an_anchor_line_not_signed_with_the_key_fails_verify(
    four_records: list[AuditRecord], anchor_file: Path, database_url: str, tenant_id: uuid.UUID
) -> None:
    head = four_records[-1]
    forged = Anchor(tenant_id, head.seq, head.hash, datetime.now(UTC)).line(AuditKey(b"not the key" * 3))
    append_anchors(anchor_file, [forged])

    result = verify(database_url, tenant_id, anchor_file)

    assert result.returncode == 1 and f"{anchor_file}, line 1" in result.stderr
    assert "does not verify with PRM_AUDIT_HMAC_KEY" in result.stderr


async def test_the_anchor_job_appends_a_signed_line_per_moved_head_under_the_periodic_runner(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    trail: Trail,
    anchor_now: Anchoring,
    anchor_file: Path,
    tenant_id: uuid.UUID,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await client.post(f"{API}/patients", json=patient_body(), headers=auth)
    await trail()
    await anchor_now()
    first = lines_of(anchor_file)
    await anchor_now()  # nothing moved: nothing appended
    assert lines_of(anchor_file) == first

    await client.post(f"{API}/patients", json=patient_body(), headers=auth)
    head = (await trail())[-1]
    with caplog.at_level("INFO", logger="prm.audit.anchor"):
        await anchor_now()
    lines = lines_of(anchor_file)

    assert lines[: len(first)] == first  # appended, never rewritten
    assert [Anchor.parse(line, THE_KEY) for line in lines[len(first) :]] == [
        Anchor(tenant_id, head.seq, head.hash, Anchor.parse(lines[-1], THE_KEY).anchored_at)
    ]
    assert read_anchors(anchor_file, THE_KEY)[tenant_id][head.seq].hash == head.hash
    assert f"audit anchor {lines[-1]}" in caplog.text  # the same line in the log, for a log pipeline
    with pytest.raises(ForgedAnchor):
        Anchor.parse(lines[-1], AuditKey(b"another key, long enough to be one"))
    assert owner_only(anchor_file)


async def test_records_written_before_the_key_still_verify_and_the_first_keyed_record_pins_them(
    system_sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
    auth: dict[str, str],
    trail: Trail,
    database_url: str,
    tenant_id: uuid.UUID,
) -> None:
    # Two records as the code before migration 0024 wrote them: plain SHA-256, version 1.
    prev_hash, legacy = GENESIS_HASH, []
    for seq in (1, 2):
        row: dict[str, Any] = {
            "tenant_id": tenant_id, "seq": seq, "occurred_at": datetime.now(UTC), "user_sub": "legacy",
            "user_roles": ["admin"], "action": "createPatient", "resource_type": "patient",
            "resource_id": None, "patient_id": None, "outcome": "allowed", "status_code": None,
            "request_id": None, "client_address": None, "prev_hash": prev_hash, "hash_version": 1,
        }  # fmt: skip
        row["hash"] = prev_hash = plain_sha256(canonical_content(row), prev_hash)
        legacy.append(row)
    async with system_sessionmaker() as session:
        await session.execute(insert(AuditRecord), legacy)
        await session.commit()
    await client.post(f"{API}/patients", json=patient_body(), headers=auth)
    records = await trail()
    assert [r.hash_version for r in records] == [1, 1, 2]

    intact = verify(database_url, tenant_id)
    assert intact.returncode == 0, intact.stderr
    assert "3 record(s) intact" in intact.stderr

    # Rewriting the unkeyed records consistently still breaks the keyed record after them.
    rewrite_as_owner(database_url, records[:2], victim_seq=1, hasher=plain_sha256)
    result = verify(database_url, tenant_id)
    assert result.returncode == 1
    assert f"record id {records[2].id} (seq 3)" in result.stderr and "prev_hash" in result.stderr


@pytest.fixture
def as_app_role(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection whose privileges are `prm_app`'s (the owner switched to it, as the API's login is)."""
    with psycopg.connect(to_libpq_url(database_url), autocommit=True) as conn:
        conn.execute("SET ROLE prm_app")
        yield conn


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET user_sub = 'someone-else'",
        "DELETE FROM audit_records",
        "TRUNCATE audit_records",
        "ALTER TABLE audit_records DISABLE TRIGGER trg_audit_records_append_only",
        "ALTER TABLE audit_records DISABLE TRIGGER ALL",
        "DROP TRIGGER trg_audit_records_append_only ON audit_records",
        "UPDATE alembic_version SET version_num = 'x'",
        "UPDATE audit_pending SET user_sub = 'someone-else'",
        "TRUNCATE audit_pending",
    ],
    ids=[
        "update",
        "delete",
        "truncate",
        "disable-trigger",
        "disable-all-triggers",
        "drop-trigger",
        "alembic",
        "update-waiting",
        "truncate-waiting",
    ],
)
async def test_the_app_role_cannot_change_the_trail_nor_its_guard(
    four_records: list[AuditRecord], as_app_role: psycopg.Connection[Any], statement: str
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_app_role.execute(statement)


async def test_the_app_role_reads_and_appends_the_trail_and_writes_ordinary_tables(
    four_records: list[AuditRecord], as_app_role: psycopg.Connection[Any], tenant_id: uuid.UUID
) -> None:
    count = as_app_role.execute("SELECT count(*) FROM audit_records WHERE tenant_id = %s", (tenant_id,))
    assert count.fetchone() == (4,)
    as_app_role.execute("BEGIN")
    head = as_app_role.execute("SELECT seq, hash FROM prm_audit_chain_head(%s)", (tenant_id,)).fetchone()
    assert head == (4, four_records[-1].hash)
    as_app_role.execute("UPDATE tenants SET name = name WHERE id = %s", (tenant_id,))
    # A record waits in audit_pending until an appender takes it (deletes it) and chains it.
    as_app_role.execute(
        "INSERT INTO audit_pending (tenant_id, occurred_at, user_sub, user_roles, action, resource_type,"
        " outcome) VALUES (%s, now(), 'u', '{}', 'patients.get', 'patients', 'allowed')",
        (tenant_id,),
    )
    taken = as_app_role.execute(
        "DELETE FROM audit_pending WHERE tenant_id = %s RETURNING action", (tenant_id,)
    )
    assert taken.fetchall() == [("patients.get",)]
    as_app_role.execute("ROLLBACK")
    attributes = as_app_role.execute(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles WHERE rolname = 'prm_app'"
    ).fetchone()
    owned = as_app_role.execute(
        "SELECT count(*) FROM pg_class WHERE relowner = 'prm_app'::regrole"
    ).fetchone()
    assert attributes == (False, False, False, False) and owned == (0,)
