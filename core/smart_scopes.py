"""SMART Backend Services scopes (`system/Patient.read`, `system/*.rs`, `system/Appointment.cruds`) and what
they let an integration client do on the FHIR API.

A SMART scope names a resource type (or `*`) and permissions: v1's `read` (read and search), `write`
(create, update, delete) and `*`, or v2's letters `c r u d s` in that order. Any of them needs the client
to hold our `fhir` scope; a token that names SMART scopes and not `fhir` itself is limited to what they
grant (`ClientCaller.grants`), one that names `fhir` may do everything the FHIR API does. Only the `system/`
context exists for a backend service (`patient/` and `user/` need a user's launch), and search
restrictions (`system/Appointment.rs?status=booked`) are refused rather than silently widened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

PERMISSION_LETTERS = "cruds"
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}
SCOPE_PATTERN = re.compile(
    r"^system/(?P<type>\*|[A-Z][A-Za-z]{0,63})\.(?P<perms>read|write|\*|[cruds]{1,5})$"
)


class Permission(StrEnum):
    """What a request does to a resource type, in SMART v2's letters."""

    CREATE = "c"
    READ = "r"  # read and vread
    UPDATE = "u"
    DELETE = "d"
    SEARCH = "s"


@dataclass(frozen=True, order=True)
class SmartGrant:
    """One SMART scope as it was asked for, and what it grants."""

    scope: str
    resource_type: str  # a FHIR type, or `*`
    permissions: frozenset[Permission]

    def allows(self, resource_type: str, permission: Permission) -> bool:
        """Whether this scope covers `permission` on `resource_type`."""
        return self.resource_type in ("*", resource_type) and permission in self.permissions


def is_smart_scope(name: str) -> bool:
    """Whether a scope name is in SMART's shape (`context/Type.permissions`) rather than one of ours."""
    return "/" in name


def parse_smart_scope(name: str) -> SmartGrant:
    """The grant of one SMART scope; ValueError says why one is refused."""
    if not name.startswith("system/"):
        raise ValueError("only system/ scopes are available to a backend service")
    if "?" in name:
        raise ValueError("scopes with search restrictions are not supported")
    match = SCOPE_PATTERN.match(name)
    if match is None:
        raise ValueError(f"{name[:64]!r} is not a SMART scope (system/Type.read, system/*.rs, ...)")
    perms = V1_PERMISSIONS.get(match["perms"], match["perms"])
    # v2 letters come in the order c r u d s, each at most once.
    if "".join(p for p in PERMISSION_LETTERS if p in perms) != perms:
        raise ValueError(f"{name[:64]!r}: permissions are written in the order c r u d s, each once")
    return SmartGrant(name, match["type"], frozenset(Permission(p) for p in perms))


def allowed(grants: frozenset[SmartGrant] | None, resource_type: str, permission: Permission) -> bool:
    """Whether `grants` (None: unrestricted) cover `permission` on `resource_type`."""
    return grants is None or any(g.allows(resource_type, permission) for g in grants)
