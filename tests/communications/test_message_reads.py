"""The message search's reads (`domain.communications.reads`): psycopg statements that filter by tenant
themselves, each read of `communications` in each of them."""

from __future__ import annotations

import itertools
import re

from domain.communications import reads


def test_every_shape_of_the_search_filters_each_read_by_the_callers_tenant() -> None:
    statements = [reads.PAGE, reads.COMMUNICATION]
    for patient, channel, date_to, since in itertools.product((False, True), repeat=4):
        shape = {"patient": patient, "channel": channel, "date_to": date_to, "since": since}
        statements += [reads._scan(**shape), reads._candidates(**shape)]
    for read in statements:
        tables = re.findall(r"\bFROM communications\b", read.sql)
        scoped = re.findall(r"communications\.tenant_id = %\(tenant_id\)s", read.sql)
        assert tables and len(scoped) == len(tables), read.sql
    assert len(statements) == 34
