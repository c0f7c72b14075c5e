"""The message search's reads (`domain.communications.reads`): each read of `communications` in each of
them is filtered by the caller's tenant (the scan reads the table twice, and each statement joins the page's
messages; tests/test_tenancy_core.py checks each table once)."""

from __future__ import annotations

import re

from domain.communications import reads


def test_every_shape_of_the_search_filters_each_read_by_the_callers_tenant() -> None:
    statements = reads.search_reads()
    for read in statements.values():
        tables = re.findall(r"\b(?:FROM|JOIN) communications\b", read.sql)
        scoped = re.findall(r"communications\.tenant_id = %\(tenant_id\)s", read.sql)
        assert tables and len(scoped) == len(tables), read.sql
    assert len(statements) == 32  # a scan and a GIN read per combination of the 4 filters
