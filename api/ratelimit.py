"""Rate limits, as the reference states them: per user and per tenant for the API, per source for the
provider webhooks, with the `limits` library.

Each limit is a moving window (`100/minute` lets exactly 100 requests through in any minute). Counters
live in the process by default; with `REDIS_URL` they live in Redis, so every API replica enforces one
limit (a request waits for two Redis round trips: both windows read together, then counted together).
Over a limit the answer is 429 with `Retry-After` and `X-RateLimit-Limit/Remaining/Reset`; every
limited answer carries the X-RateLimit headers of the limit closest to running out. If Redis cannot be
reached the request goes through (logged): a counter outage must not take the API down with it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from fastapi import Request, Response
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from core.errors import DomainError
from core.settings import Settings

log = logging.getLogger(__name__)


Limited = tuple[RateLimitItem, tuple[str, ...]]  # a limit and the key it counts under


class TooManyRequests(DomainError):
    """The caller (user, tenant or webhook source) is over its rate limit."""

    status_code = 429


@dataclass(frozen=True)
class Verdict:
    """One limit's answer for one key: allowed or not, and its window."""

    allowed: bool
    item: RateLimitItem
    remaining: int
    reset_at: float  # epoch seconds when the window has room again

    def headers(self) -> dict[str, str]:
        """The X-RateLimit headers (and Retry-After when refused)."""
        headers = {
            "X-RateLimit-Limit": str(self.item.amount),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.reset_at - time.time())))
        return headers


class RateLimits:
    """The service's limits over one counter store (the process's memory, or Redis)."""

    def __init__(self, settings: Settings, storage: Storage | None = None) -> None:
        self.storage = storage or _storage_for(settings)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.per_user = parse(settings.rate_limit_per_user)
        self.per_tenant = parse(settings.rate_limit_per_tenant)
        self.per_webhook_source = parse(settings.rate_limit_per_webhook_source)
        self.per_integration_client = parse(settings.rate_limit_per_integration_client)
        self.per_token_source = parse(settings.rate_limit_per_token_source)

    async def _hit(self, item: RateLimitItem, *keys: str) -> Verdict | None:
        try:
            allowed = await self.limiter.hit(item, *keys)
            reset_at, remaining = await self.limiter.get_window_stats(item, *keys)
        except Exception as exc:  # the counters are down: let the request through
            log.warning("rate-limit counters unreachable (%s); not limiting", type(exc).__name__)
            return None
        return Verdict(allowed, item, remaining, reset_at)

    async def check_caller(self, tenant_id: str, user: str) -> Verdict | None:
        """Count one request of `user` of `tenant_id`; the binding verdict (refused first)."""
        limits = ((self.per_user, ("user", tenant_id, user)), (self.per_tenant, ("tenant", tenant_id)))
        if not isinstance(self.storage, MemoryStorage):
            return await self._check_remote(limits)
        verdicts = []
        for item, keys in limits:
            verdict = await self._hit(item, *keys)
            if verdict is None:
                continue
            if not verdict.allowed:
                return verdict  # a refused request is not counted against the wider limit
            verdicts.append(verdict)
        return min(verdicts, key=lambda v: v.remaining, default=None)

    async def _check_remote(self, limits: tuple[Limited, ...]) -> Verdict | None:
        """`check_caller` with the counters in Redis: both windows read together, then the request counted
        in both together, so it waits for two round trips instead of four (`limits` offers no call that
        counts and reports at once). A request refused from the windows it read is counted nowhere; one
        that another request overtook between the two steps is refused by the atomic count itself (and may
        then have counted against the tenant)."""
        try:
            windows = await asyncio.gather(*(self.limiter.get_window_stats(i, *k) for i, k in limits))
            for (item, _), (reset_at, remaining) in zip(limits, windows, strict=True):
                if remaining <= 0:
                    return Verdict(False, item, 0, reset_at)
            counted = await asyncio.gather(*(self.limiter.hit(i, *k) for i, k in limits))
        except Exception as exc:  # the counters are down: let the request through
            log.warning("rate-limit counters unreachable (%s); not limiting", type(exc).__name__)
            return None
        verdicts = [
            Verdict(allowed, item, remaining - 1 if allowed else 0, reset_at)
            for (item, _), (reset_at, remaining), allowed in zip(limits, windows, counted, strict=True)
        ]
        refused = [v for v in verdicts if not v.allowed]
        return refused[0] if refused else min(verdicts, key=lambda v: v.remaining)

    async def check_webhook_source(self, source: str) -> Verdict | None:
        """Count one provider callback from `source` (the client address)."""
        return await self._hit(self.per_webhook_source, "webhook", source)

    async def check_integration_client(self, tenant_id: str, client_id: str) -> Verdict | None:
        """Count one call of an integration client (FHIR, HL7)."""
        return await self._hit(self.per_integration_client, "integration", tenant_id, client_id)

    async def check_token_source(self, source: str) -> Verdict | None:
        """Count one `POST /oauth/token` from `source` (the client address): no fast guessing of secrets."""
        return await self._hit(self.per_token_source, "oauth-token", source)


def _storage_for(settings: Settings) -> Storage:
    if settings.redis_url:
        scheme, rest = settings.redis_url.split("://", 1)
        storage = storage_from_string(f"async+{scheme}://{rest}", implementation="redispy")
        assert isinstance(storage, Storage)  # an async+ scheme gives an async storage
        return storage
    return MemoryStorage()


def enforce(verdict: Verdict | None, response: Response, who: str) -> None:
    """Put the verdict's headers on the response, or refuse with 429 naming what is over its limit."""
    if verdict is None:
        return
    if not verdict.allowed:
        raise TooManyRequests(
            f"Too many requests for this {who}: at most {verdict.item.amount} per "
            f"{verdict.item.get_expiry()} seconds. Retry after the time in Retry-After.",
            headers=verdict.headers(),
        )
    response.headers.update(verdict.headers())


async def limit_webhook_source(request: Request, response: Response) -> None:
    """A dependency of the provider webhooks: each source (client address) has a limit of its own."""
    limits: RateLimits | None = getattr(request.app.state, "rate_limits", None)
    if limits is None:
        return
    source = request.client.host if request.client else "unknown"
    enforce(await limits.check_webhook_source(source), response, "source")
