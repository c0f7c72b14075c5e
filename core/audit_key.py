"""The audit trail's key: the HMAC secret its chain and its anchors are signed with, which the database
never holds.

An unkeyed hash chain only shows a record changed by someone who cannot recompute the hashes after it;
anyone with the table's owner role can. With HMAC-SHA256 under `PRM_AUDIT_HMAC_KEY`, kept in the API's and
the worker's environment and never in the database, a chain rewritten in the database no longer verifies
unless the key was taken too, and the anchors (`domain.audit.anchor`) catch even that for every head
anchored before the rewrite.

`PRM_AUDIT_HMAC_KEY` is required in production. In development and the test suite an unset key is a
random one kept in `<PRM_DATA_DIR>/audit-hmac-key` (owner-only, made on first use): never a constant
published in the code. The key rides on every engine `core.database.make_engine` makes (an execution
option), so whatever session appends records signs them with it, without passing it through every caller.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.keyfile import key_file
from core.settings import Settings

ENGINE_OPTION = "prm_audit_key"
KEY_FILE = "audit-hmac-key"


class AuditKeyMissing(RuntimeError):
    """A session appended audit records on an engine that carries no audit key."""


@dataclass(frozen=True)
class AuditKey:
    """The HMAC-SHA256 key of the audit trail (its repr never shows it)."""

    secret: bytes = field(repr=False)

    def mac(self, data: bytes) -> str:
        """HMAC-SHA256 of `data`, in hex."""
        return hmac.new(self.secret, data, hashlib.sha256).hexdigest()

    def verifies(self, data: bytes, mac: str) -> bool:
        """Whether `mac` is this key's HMAC of `data` (compared in constant time)."""
        return hmac.compare_digest(self.mac(data), mac)


def audit_key_file(settings: Settings) -> Path:
    """Where development keeps its generated audit key: `<PRM_DATA_DIR>/audit-hmac-key`."""
    return settings.data_dir.expanduser().resolve() / KEY_FILE


def audit_key(settings: Settings) -> AuditKey:
    """The configured key, or (outside production) the data directory's generated one."""
    if settings.audit_hmac_key:
        return AuditKey(settings.audit_hmac_key.encode())
    if settings.env == "production":  # the settings refuse this already; a second lock on the door
        raise AuditKeyMissing("PRM_AUDIT_HMAC_KEY must be set when PRM_ENV=production")
    return AuditKey(key_file(audit_key_file(settings), lambda: secrets.token_hex(32)).encode())


def audit_key_of(options: dict[str, Any]) -> AuditKey:
    """The key a connection's execution options carry (`make_engine` puts it there)."""
    key = options.get(ENGINE_OPTION)
    if not isinstance(key, AuditKey):
        raise AuditKeyMissing("this engine carries no audit key: make it with core.database.make_engine")
    return key
