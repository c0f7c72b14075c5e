"""Phone numbers for tests that need one no other test holds."""

from __future__ import annotations

import secrets


def unique_phone() -> str:
    """A valid San Francisco number (E.164) drawn from 3.55 million: exchanges 200-554, so never one of the
    fixed `+1415555....` numbers tests write out. Inbound webhooks find their patient by number across
    tenants, and tests share one database; with the 10,000 numbers of one exchange, two tests' patients
    came to share a number often enough that a reply went to neither."""
    exchange = 200 + secrets.randbelow(355)
    return f"+1415{exchange}{secrets.randbelow(10_000):04d}"
