"""Rate limits, as the reference states them: per user and per tenant for the API, per source for the
provider webhooks, per integration client and per token source.

Each limit is a sliding window counter (`100/minute`: the count of the current minute plus the previous
minute's count weighted by how much of it the sliding minute still covers), so a burst of 100 from a quiet
start goes through and the 101st is refused, and a window's edge lets through at most what the weighting
allows. A request is counted in every limit that applies or in none: one refused by the user limit is not
counted against the tenant's.

The counters live in the process by default (a dictionary: no lock, no task, no thread); with `REDIS_URL`
they live in Redis, so every API replica enforces one limit, and a request's limits are checked and
counted in **one** round trip (one Lua script over all its keys, on Redis's clock), shared with the other
requests that ask at the same moment (`RedisCounters`). `limits` parses the
notation; its strategies are not used on the request path: its moving window in the process cost 0.5 ms
of a 1.9 ms request (a timestamp per hit, an expiry task), and every strategy needs one call to count
and another to report the window, per limit (bench/request_ladder.py). Over a limit the answer is 429
with `Retry-After` and `X-RateLimit-Limit/Remaining/Reset`; every limited answer carries the
X-RateLimit headers of the limit closest to running out. If Redis cannot be reached the request goes
through (logged): a counter outage must not take the API down with it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from fastapi import Request, Response
from limits import RateLimitItem, parse

from core.errors import DomainError
from core.settings import Settings

log = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 0.5  # a slow counter store lets requests through rather than holding them


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


@dataclass(frozen=True)
class Limit:
    """One limit counted under one key."""

    item: RateLimitItem
    key: str


@dataclass(frozen=True)
class Window:
    """What a limit's counters say at one instant: the weighted count and when there is room again."""

    weighted: float  # after this request, when it was counted
    reset_at: float


def weigh(amount: int, period: float, now: float, previous: int, current: int) -> tuple[float, float]:
    """The sliding window's count before this request (the previous window's count weighted by the part
    of it the sliding window still covers, plus the current one's) and when one more request will fit.
    The one formula of both counter stores (Redis runs it in Lua, `_COUNT_SCRIPT`)."""
    start = now - now % period
    elapsed = (now - start) / period
    weighted = previous * (1 - elapsed) + current
    if current + 1 > amount:  # room only once the current window is the previous one, weighted down
        reset_at = start + period + period * max(0.0, 1 - (amount - 1) / max(current, 1))
    elif previous:
        reset_at = start + period * min(1.0, max(elapsed, 1 - (amount - 1 - current) / previous))
    else:
        reset_at = now
    return weighted, min(reset_at, now + period)


class Counters(Protocol):
    """Where the counters live: `count` checks `limits` together and counts the request in all of them,
    or (the first refusing limit's index) in none."""

    async def count(self, limits: tuple[Limit, ...]) -> tuple[int | None, list[Window]]: ...


class ProcessCounters:
    """The counters in this process's memory: per key its window, the previous and current counts, and
    when the key can be forgotten."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.windows: dict[str, tuple[int, int, int, float]] = {}
        self.next_sweep = 0.0

    def _read(self, key: str, index: int) -> tuple[int, int]:
        seen = self.windows.get(key)
        if seen is None:
            return 0, 0
        at, previous, current, _ = seen
        if at == index:
            return previous, current
        return (current if at == index - 1 else 0), 0

    async def count(self, limits: tuple[Limit, ...]) -> tuple[int | None, list[Window]]:
        """Check and count, with no await in between: atomic in the event loop."""
        now = self.clock()
        if now >= self.next_sweep:  # forget the keys whose windows are over (once a minute)
            self.next_sweep = now + 60
            self.windows = {k: w for k, w in self.windows.items() if w[3] > now}
        windows, reads = [], []
        for position, limit in enumerate(limits):
            period = limit.item.get_expiry()
            index = int(now // period)
            previous, current = self._read(limit.key, index)
            weighted, reset_at = weigh(limit.item.amount, period, now, previous, current)
            if weighted + 1 > limit.item.amount:
                return position, [Window(weighted, reset_at)]
            reads.append((limit.key, index, previous, current + 1, (index + 2) * period))
            windows.append(Window(weighted + 1, reset_at))
        for key, index, previous, current, forget_at in reads:
            self.windows[key] = (index, previous, current, forget_at)
        return None, windows


# KEYS: the counter key prefix of every limit of every request, in order. ARGV: per request its number of
# limits, then per limit its amount and period (seconds). The requests are checked and counted one after
# the other, each in all of its limits or in none, as if each had made its own call.
# Returns, per request: the refused limit's index or -1, then per limit (only the refusing one when
# refused) the weighted count (thousandths) and when there is room again (milliseconds).
_COUNT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out, k, a = {}, 0, 1
while a <= #ARGV do
  local n = tonumber(ARGV[a])
  local answer, counted, refused = {-1}, {}, false
  for i = 1, n do
    local amount, period = tonumber(ARGV[a + 2 * i - 1]), tonumber(ARGV[a + 2 * i])
    local prefix = KEYS[k + i]
    local index = math.floor(now / period)
    local current_key = prefix .. ':' .. index
    local previous = tonumber(redis.call('GET', prefix .. ':' .. (index - 1)) or '0')
    local current = tonumber(redis.call('GET', current_key) or '0')
    local start = index * period
    local elapsed = (now - start) / period
    local weighted = previous * (1 - elapsed) + current
    local reset_at = now
    if current + 1 > amount then
      reset_at = start + period + period * math.max(0, 1 - (amount - 1) / math.max(current, 1))
    elseif previous > 0 then
      reset_at = start + period * math.min(1, math.max(elapsed, 1 - (amount - 1 - current) / previous))
    end
    reset_at = math.min(reset_at, now + period)
    if weighted + 1 > amount then
      answer = {i - 1, math.floor(weighted * 1000), math.floor(reset_at * 1000)}
      refused = true
      break
    end
    answer[#answer + 1] = math.floor((weighted + 1) * 1000)
    answer[#answer + 1] = math.floor(reset_at * 1000)
    counted[#counted + 1] = {current_key, period}
  end
  if not refused then
    for _, c in ipairs(counted) do
      redis.call('INCR', c[1])
      redis.call('EXPIRE', c[1], 2 * c[2])
    end
  end
  out[#out + 1] = answer
  k, a = k + n, a + 2 * n + 1
end
return out
"""

_Answer = tuple[int | None, list[Window]]


class RedisCounters:
    """The counters in Redis, shared by every API process: one script call per request, or fewer.

    Requests that ask while a call is on its way wait for the next one, which carries all of them: under
    load one round trip answers many requests (the client's work per call, not Redis's, was most of a
    counted request's cost), and alone a request still takes exactly one. The script counts them one by
    one, in the order they asked, so the limits hold exactly as with a call each."""

    def __init__(self, url: str) -> None:
        self.client = aioredis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
        )
        self.script = self.client.register_script(_COUNT_SCRIPT)
        self._waiting: list[tuple[tuple[Limit, ...], asyncio.Future[_Answer]]] = []
        self._caller: asyncio.Task[None] | None = None

    async def count(self, limits: tuple[Limit, ...]) -> _Answer:
        """Check and count with the other requests of the next script call (atomic in Redis)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[_Answer] = loop.create_future()
        self._waiting.append((limits, answer))
        if self._caller is None:
            self._caller = loop.create_task(self._call())
        return await answer

    async def _call(self) -> None:
        """Send what waits, one call at a time, until nothing does."""
        batch: list[tuple[tuple[Limit, ...], asyncio.Future[_Answer]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    replies = await self.script(keys=_keys(batch), args=_args(batch))
                except Exception as exc:  # every request of the call hears of it (and goes through)
                    _fail(batch, exc)
                    continue
                for (_, answer), reply in zip(batch, replies, strict=True):
                    if not answer.done():  # its request may have been cancelled meanwhile
                        answer.set_result(_answer(reply))
        except BaseException as exc:  # cancelled (the loop is closing): no request waits forever
            _fail(batch + self._waiting, exc)
            self._waiting = []
            raise
        finally:
            self._caller = None


def _fail(batch: list[tuple[tuple[Limit, ...], asyncio.Future[_Answer]]], exc: BaseException) -> None:
    for _, answer in batch:
        if not answer.done():
            answer.set_exception(exc if isinstance(exc, Exception) else ConnectionError("cancelled"))


def _keys(batch: list[tuple[tuple[Limit, ...], Any]]) -> list[str]:
    return [f"prm-rate:{limit.key}" for limits, _ in batch for limit in limits]


def _args(batch: list[tuple[tuple[Limit, ...], Any]]) -> list[int]:
    args: list[int] = []
    for limits, _ in batch:
        args.append(len(limits))
        for limit in limits:
            args += [limit.item.amount, limit.item.get_expiry()]
    return args


def _answer(reply: list[Any]) -> _Answer:
    first = int(reply[0])
    values = [int(v) for v in reply[1:]]
    windows = [Window(values[i] / 1000, values[i + 1] / 1000) for i in range(0, len(values), 2)]
    return (None if first < 0 else first), windows


class RateLimits:
    """The service's limits over one counter store (the process's memory, or Redis)."""

    def __init__(self, settings: Settings, counters: Counters | None = None) -> None:
        self.counters: Counters = counters or (
            RedisCounters(settings.redis_url) if settings.redis_url else ProcessCounters()
        )
        self.per_user = parse(settings.rate_limit_per_user)
        self.per_tenant = parse(settings.rate_limit_per_tenant)
        self.per_webhook_source = parse(settings.rate_limit_per_webhook_source)
        self.per_integration_client = parse(settings.rate_limit_per_integration_client)
        self.per_token_source = parse(settings.rate_limit_per_token_source)

    async def _check(self, *limits: Limit) -> Verdict | None:
        """Count one request in every limit, or in none when one refuses it: the binding verdict (the
        refusal, else the limit closest to running out)."""
        try:
            refused, windows = await self.counters.count(limits)
        except Exception as exc:  # the counters are down: let the request through
            log.warning("rate-limit counters unreachable (%s); not limiting", type(exc).__name__)
            return None
        if refused is not None:
            item = limits[refused].item
            return Verdict(False, item, 0, windows[0].reset_at)
        verdicts = [
            Verdict(True, limit.item, math.floor(limit.item.amount - window.weighted), window.reset_at)
            for limit, window in zip(limits, windows, strict=True)
        ]
        return min(verdicts, key=lambda v: v.remaining)

    async def check_caller(self, tenant_id: str, user: str) -> Verdict | None:
        """Count one request of `user` of `tenant_id` against the user's and the tenant's limits."""
        return await self._check(
            Limit(self.per_user, f"user/{tenant_id}/{user}"), Limit(self.per_tenant, f"tenant/{tenant_id}")
        )

    async def check_webhook_source(self, source: str) -> Verdict | None:
        """Count one provider callback from `source` (the client address)."""
        return await self._check(Limit(self.per_webhook_source, f"webhook/{source}"))

    async def check_integration_client(self, tenant_id: str, client_id: str) -> Verdict | None:
        """Count one call of an integration client (FHIR, HL7)."""
        return await self._check(Limit(self.per_integration_client, f"integration/{tenant_id}/{client_id}"))

    async def check_token_source(self, source: str) -> Verdict | None:
        """Count one `POST /oauth/token` from `source` (the client address): no fast guessing of secrets."""
        return await self._check(Limit(self.per_token_source, f"oauth-token/{source}"))


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
