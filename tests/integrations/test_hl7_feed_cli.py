"""`prm integration create/configure/list`: an operator sets a feed's zone, code maps and whether unsupported
message types are ignored from the command line, as the admin API does."""

from __future__ import annotations

import json

from tests.stack.cli_support import create_tenant, prm


def test_an_operator_configures_a_feed_from_the_cli(database_url: str) -> None:
    tenant = str(create_tenant(database_url, "Feed Clinic"))
    created = prm(
        database_url,
        *("integration", "create", "--tenant-id", tenant, "--name", "Epic", "--scope", "hl7"),
        *("--timezone", "America/New_York", "--map", "language:SPANISH=es"),
    )
    assert created.returncode == 0, created.stderr
    client_id = json.loads(created.stdout)["client_id"]

    def configure(*options: str) -> dict:  # type: ignore[type-arg]
        result = prm(
            database_url,
            "integration",
            "configure",
            "--tenant-id",
            tenant,
            "--client-id",
            client_id,
            *options,
        )
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout)["hl7_feed"])

    mapped = configure(
        "--map", "sex:X=other", "--map", "language:portuguese=pt_BR", "--ignore-unsupported-messages"
    )
    unmapped = configure("--unmap", "language:SPANISH", "--tenant-timezone")

    assert mapped == {
        "timezone": "America/New_York",
        "ignore_unsupported_messages": True,
        "code_maps": {"language": {"SPANISH": "es", "PORTUGUESE": "pt-BR"}, "sex": {"X": "other"}},
    }
    assert unmapped["timezone"] is None
    assert unmapped["code_maps"] == {"language": {"PORTUGUESE": "pt-BR"}, "sex": {"X": "other"}}
    listed = prm(database_url, "integration", "list", "--tenant-id", tenant)
    assert json.loads(listed.stdout)["hl7_feed"] == unmapped

    bad_zone = prm(
        database_url, "integration", "configure", "--tenant-id", tenant, "--client-id", client_id,
        "--timezone", "Mars/Olympus",
    )  # fmt: skip
    bad_map = prm(
        database_url, "integration", "configure", "--tenant-id", tenant, "--client-id", client_id,
        "--map", "sex:X=nonbinary",
    )  # fmt: skip
    assert bad_zone.returncode == bad_map.returncode == 2
    assert "timezone" in bad_zone.stderr and "sex code 'X'" in bad_map.stderr
