"""Record ids in paths: `/appointments/{appointment_id:record_id}`.

A resource's fixed sub-paths (`/appointments/stats`) sit beside its records' (`/appointments/{id}`). Read as
a plain `{appointment_id}`, `stats` would be an id too, so `DELETE /appointments/stats` reached the delete
route and answered 422 (not a UUID). The `record_id` convertor never matches a fixed segment's word: such a
request finds only the fixed route and answers 405 with `Allow`, while any other malformed id still reaches
its route and is 422, naming the parameter. `RESERVED` lists every word a resource uses beside its records'
ids (tests/test_paths.py derives them from the schema).
"""

from __future__ import annotations

import re

from starlette.convertors import Convertor, register_url_convertor

RESERVED = frozenset(
    {
        "conflicts",
        "find-slots",
        "instances",
        "merge",
        "mrn",
        "offers",
        "search",
        "select-slot",
        "simple",
        "specialities",
        "stats",
        "templates",
        "today",
        "upcoming",
    }
)


class RecordId(Convertor[str]):
    """Any path segment but a reserved word; the route's parameter type (a UUID) validates it."""

    regex = rf"(?!(?:{'|'.join(re.escape(word) for word in sorted(RESERVED))})(?:/|$))[^/]+"

    def convert(self, value: str) -> str:
        """The segment as it came: the route's parameter type validates it (422 when malformed)."""
        return value

    def to_string(self, value: str) -> str:
        """The id as it goes into a URL."""
        return str(value)


def register() -> None:
    """Make `{name:record_id}` usable in route paths (before the routers are built)."""
    register_url_convertor("record_id", RecordId())
