"""Anchors: each tenant's chain head, signed with the audit key and written outside the database.

The worker appends one line per tenant whose head moved (tenant id, seq, hash, time, and an HMAC of them
under PRM_AUDIT_HMAC_KEY) to PRM_AUDIT_ANCHOR_FILE, and logs the same line, every
PRM_AUDIT_ANCHOR_INTERVAL_SECONDS (`AnchorJob`, a periodic job of the worker). `prm audit verify` reads the
file back: every anchored head must still be in the chain with the same hash. A rewrite that recomputes the
chain, even by someone holding the key, changes the hash of every record after the first one it touches,
so it contradicts each head anchored after that record; cutting the trail short leaves an anchored seq that
no longer exists. The file is worth only what the database's insiders cannot reach: ship it (or the log
lines) off the box, to a store they cannot write, and keep it as long as the trail.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.audit_key import AuditKey
from core.database import mark_system
from domain.audit.repository import ChainHead, chain_heads

log = logging.getLogger("prm.audit.anchor")

DOMAIN = b"prm-audit-anchor\n"  # what an anchor's HMAC covers starts so: never mistaken for a record's


class ForgedAnchor(ValueError):
    """A line of the anchor file that is not an anchor signed with the audit key."""


@dataclass(frozen=True)
class Anchor:
    """A tenant's chain head as it was at `anchored_at`."""

    tenant_id: uuid.UUID
    seq: int
    hash: str
    anchored_at: datetime

    def _content(self) -> dict[str, object]:
        return {
            "tenant_id": str(self.tenant_id),
            "seq": self.seq,
            "hash": self.hash,
            "anchored_at": self.anchored_at.astimezone(UTC).isoformat(timespec="microseconds"),
        }

    def _signed_bytes(self) -> bytes:
        return DOMAIN + json.dumps(self._content(), sort_keys=True, separators=(",", ":")).encode()

    def line(self, key: AuditKey) -> str:
        """The anchor as one JSON line, signed with `key`."""
        signed = {**self._content(), "mac": key.mac(self._signed_bytes())}
        return json.dumps(signed, sort_keys=True, separators=(",", ":"))

    @classmethod
    def parse(cls, line: str, key: AuditKey) -> Anchor:
        """The anchor a line holds; ForgedAnchor when it is malformed or not signed with `key`."""
        try:
            fields = json.loads(line)
            anchor = cls(
                tenant_id=uuid.UUID(fields["tenant_id"]),
                seq=int(fields["seq"]),
                hash=str(fields["hash"]),
                anchored_at=datetime.fromisoformat(fields["anchored_at"]),
            )
            mac = str(fields["mac"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ForgedAnchor("not an anchor") from exc
        if not key.verifies(anchor._signed_bytes(), mac):
            raise ForgedAnchor("its signature does not verify with PRM_AUDIT_HMAC_KEY")
        return anchor


def read_anchors(path: Path, key: AuditKey) -> dict[uuid.UUID, dict[int, Anchor]]:
    """Every anchor of the file, by tenant and seq; ForgedAnchor names the first line that does not verify.
    A missing file holds no anchor."""
    anchors: dict[uuid.UUID, dict[int, Anchor]] = {}
    if not path.exists():
        return anchors
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                anchor = Anchor.parse(line, key)
            except ForgedAnchor as exc:
                raise ForgedAnchor(f"{path}, line {number}: {exc}") from exc
            anchors.setdefault(anchor.tenant_id, {})[anchor.seq] = anchor
    return anchors


def append_anchors(path: Path, lines: Iterable[str]) -> None:
    """Append `lines` to the anchor file (made owner-only when new) and sync them to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as out:
        out.writelines(f"{line}\n" for line in lines)
        out.flush()
        os.fsync(out.fileno())


class AnchorJob:
    """One round anchors the head of every tenant whose head moved since this process last anchored it
    (every tenant on the first round): a line in the file and the same line in the log."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], key: AuditKey, path: Path) -> None:
        self.sessionmaker, self.key, self.path = sessionmaker, key, path
        self._anchored: dict[uuid.UUID, ChainHead] = {}

    async def __call__(self) -> bool:
        """Anchor the heads that moved; never more waiting (False)."""
        async with self.sessionmaker() as session:
            mark_system(session)
            heads = await chain_heads(session)
        moved = [head for head in heads if self._anchored.get(head.tenant_id) != head]
        if not moved:
            return False
        now = datetime.now(UTC)
        lines = [Anchor(h.tenant_id, h.seq, h.hash, now).line(self.key) for h in moved]
        await asyncio.to_thread(append_anchors, self.path, lines)
        for line in lines:
            log.info("audit anchor %s", line)
        self._anchored.update((head.tenant_id, head) for head in moved)
        return False
