"""Rate limits as the reference states them: per user, per tenant, per webhook source; shared through
Redis by every API process. Against the real PostgreSQL (and the machine's Redis for the shared test)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
import redis.asyncio as aioredis

from api.app import create_app
from api.deps import CurrentPrincipal, TenantReadsDep
from api.ratelimit import Limit, ProcessCounters, RateLimits, RedisCounters
from core.settings import Settings

API = "/api/v1/prm"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def limited(settings: Settings, **limits: str | None) -> Settings:
    """The test settings with rate limits on (and the given limits; `redis_url=None` keeps counters in
    the process)."""
    return settings.model_copy(update={"rate_limits_enabled": True, "redis_url": None, **limits})


@pytest.fixture
def serve(database_url: str) -> Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]:
    """An httpx client on a fresh, started app built from the given settings (each app: its own process
    state, so its own counters unless they live in Redis)."""

    @asynccontextmanager
    async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(settings, database_url=database_url)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield client

    return client_for


@pytest.fixture
async def redis_available() -> AsyncIterator[str]:
    """The machine's Redis: required under CI, else the test says why it skips."""
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Redis at {REDIS_URL} is unreachable: {exc}")
        pytest.skip(f"no Redis at {REDIS_URL} (set REDIS_URL, or start redis-server): {exc}")
    finally:
        await client.aclose()
    yield REDIS_URL


async def _statuses(clients: list[httpx.AsyncClient], headers: dict, count: int) -> list[httpx.Response]:
    """`count` quick requests, spread over `clients` in turn."""
    return [
        await clients[i % len(clients)].get(f"{API}/practitioners", headers=headers) for i in range(count)
    ]


async def test_150_quick_requests_from_one_user_let_exactly_100_through(
    serve, settings, tenant_id, headers_for
) -> None:
    async with serve(limited(settings)) as client:
        answers = await _statuses([client], headers_for(tenant_id), 150)
    assert [r.status_code for r in answers].count(200) == 100
    assert [r.status_code for r in answers[100:]] == [429] * 50
    first, refused = answers[0], answers[100]
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == ("100", "99")
    assert refused.headers["X-RateLimit-Limit"] == "100" and refused.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert int(refused.headers["X-RateLimit-Reset"]) > 0
    assert "user" in refused.json()["detail"]


async def test_the_tenant_limit_counts_every_user_of_the_tenant(
    serve, settings, tenant_id, token_for, make_tenant
) -> None:
    limits = limited(settings, rate_limit_per_user="3/minute", rate_limit_per_tenant="5/minute")
    other_tenant = await make_tenant("Other Clinic")
    async with serve(limits) as client:

        async def as_user(tenant: uuid.UUID, sub: str) -> int:
            token = token_for(tenant, sub=sub)
            resp = await client.get(f"{API}/practitioners", headers={"Authorization": f"Bearer {token}"})
            return resp.status_code

        ann = [await as_user(tenant_id, "ann") for _ in range(4)]
        bob = [await as_user(tenant_id, "bob") for _ in range(3)]
        elsewhere = await as_user(other_tenant, "ann")  # another tenant's counters are its own
    assert ann == [200, 200, 200, 429]  # ann's own limit
    assert bob == [200, 200, 429]  # the tenant's fifth request was bob's second
    assert elsewhere == 200


async def test_provider_webhooks_are_limited_per_source_apart_from_users(
    serve, settings, tenant_id, headers_for
) -> None:
    limits = limited(settings, rate_limit_per_webhook_source="2/minute", rate_limit_per_user="5/minute")
    async with serve(limits) as client:
        hooks = [(await client.post(f"{API}/webhooks/twilio/status", data={})).status_code for _ in range(3)]
        user = (await client.get(f"{API}/practitioners", headers=headers_for(tenant_id))).status_code
    assert hooks[2] == 429  # the unsigned callbacks before it were refused by their signature check
    assert hooks[:2] == [403, 403]
    assert user == 200


async def test_two_api_processes_sharing_redis_enforce_one_limit(
    serve, settings, tenant_id, headers_for, redis_available
) -> None:
    shared = limited(settings, redis_url=redis_available)
    async with serve(shared) as first, serve(shared) as second:
        answers = await _statuses([first, second], headers_for(tenant_id), 150)
    assert [r.status_code for r in answers].count(200) == 100
    assert [r.status_code for r in answers[100:]] == [429] * 50


async def test_an_unreachable_redis_does_not_take_the_api_down(
    serve, settings, tenant_id, headers_for
) -> None:
    down = limited(settings, redis_url="redis://127.0.0.1:1/0")
    async with serve(down) as client:
        resp = await client.get(f"{API}/practitioners", headers=headers_for(tenant_id))
    assert resp.status_code == 200
    assert "X-RateLimit-Limit" not in resp.headers


def test_a_malformed_limit_is_refused_when_the_settings_load() -> None:
    with pytest.raises(ValueError, match="not a rate limit"):
        Settings(rate_limit_per_user="lots")


async def test_with_redis_counters_the_headers_and_the_tenant_limit_hold_as_in_the_process(
    serve, settings, tenant_id, token_for, redis_available
) -> None:
    """With Redis both limits are checked and counted in one script call: the user limit, the tenant
    limit over all its users and the headers answer as with in-process counters."""
    limits = limited(
        settings, redis_url=redis_available, rate_limit_per_user="3/minute", rate_limit_per_tenant="5/minute"
    )
    async with serve(limits) as client:

        async def as_user(sub: str) -> httpx.Response:
            token = token_for(tenant_id, sub=sub)
            return await client.get(f"{API}/practitioners", headers={"Authorization": f"Bearer {token}"})

        ann = [await as_user("ann") for _ in range(4)]
        bob = [await as_user("bob") for _ in range(3)]
    assert [r.status_code for r in ann] == [200, 200, 200, 429]  # ann's 4th is refused: counted nowhere
    assert [r.status_code for r in bob] == [200, 200, 429]  # the tenant's fifth request was bob's second
    assert [r.headers["X-RateLimit-Remaining"] for r in ann[:3]] == ["2", "1", "0"]
    assert ann[3].headers["X-RateLimit-Limit"] == "3" and "user" in ann[3].json()["detail"]
    assert bob[2].headers["X-RateLimit-Limit"] == "5" and "tenant" in bob[2].json()["detail"]
    assert 1 <= int(bob[2].headers["Retry-After"]) <= 60


class Clock:
    """A settable clock for the in-process counters."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_the_window_slides_the_previous_minutes_requests_weigh_by_what_it_covers(settings) -> None:
    """A full minute, then a quarter into the next: three quarters of the 100 still count, so 25 more pass."""
    clock = Clock(6_000_000.0)  # the start of a minute
    limits = RateLimits(limited(settings), ProcessCounters(clock))
    key = Limit(limits.per_user, "user/t/ann")

    async def allowed(count: int) -> int:
        verdicts = [await limits._check(key) for _ in range(count)]
        return sum(v.allowed for v in verdicts if v is not None)

    assert await allowed(120) == 100
    clock.now += 60 + 15
    assert await allowed(40) == 25
    clock.now += 60  # the full minute is two windows back: only the 25 weigh, by three quarters
    assert await allowed(120) == 100 - round(25 * 0.75)


async def test_a_refused_request_names_when_there_is_room_again_within_the_window(settings) -> None:
    clock = Clock(6_000_030.0)  # half a minute into one
    limits = RateLimits(limited(settings, rate_limit_per_user="2/minute"), ProcessCounters(clock))
    verdicts = [await limits.check_caller("t", "ann") for _ in range(3)]
    assert [v.allowed for v in verdicts if v] == [True, True, False]
    refused = verdicts[2]
    assert refused is not None and refused.item is limits.per_user and refused.remaining == 0
    assert clock.now < refused.reset_at <= clock.now + 60


async def test_with_redis_a_request_is_checked_and_counted_in_one_round_trip(
    settings, redis_available
) -> None:
    counters = RedisCounters(redis_available)
    calls: list[str] = []
    send = counters.client.execute_command

    async def counted(*args, **kwargs):  # every command the client sends to Redis
        calls.append(str(args[0]))
        return await send(*args, **kwargs)

    counters.client.execute_command = counted  # type: ignore[method-assign]
    await limits_warmed(counters)
    calls.clear()
    limits = RateLimits(limited(settings, redis_url=redis_available), counters)
    tenant = uuid.uuid4().hex
    verdict = await limits.check_caller(tenant, "ann")
    assert calls == ["EVALSHA"]
    assert verdict is not None and verdict.allowed and verdict.remaining == 99
    await counters.client.aclose()


async def limits_warmed(counters: RedisCounters) -> None:
    """Load the script once (a fresh Redis answers the first EVALSHA with NOSCRIPT, then EVAL)."""
    await counters.count((Limit(RateLimits(Settings()).per_user, f"warm/{uuid.uuid4().hex}"),))


async def test_with_redis_requests_asking_at_once_share_a_call_and_the_limit_stays_exact(
    settings, redis_available
) -> None:
    """Requests that ask at the same moment go in fewer script calls than there are requests (those that ask
    while a call is on its way go in the next one), and the limits hold exactly: each request is counted in
    both of its limits or in none, in the order they asked."""
    counters = RedisCounters(redis_available)
    await limits_warmed(counters)
    calls: list[str] = []
    send = counters.client.execute_command

    async def counted(*args, **kwargs):
        calls.append(str(args[0]))
        return await send(*args, **kwargs)

    counters.client.execute_command = counted  # type: ignore[method-assign]
    settings = limited(
        settings,
        redis_url=redis_available,
        rate_limit_per_user="100/minute",
        rate_limit_per_tenant="120/minute",
    )
    limits = RateLimits(settings, counters)
    one_user = uuid.uuid4().hex
    verdicts = await asyncio.gather(*(limits.check_caller(one_user, "ann") for _ in range(110)))
    assert set(calls) == {"EVALSHA"} and len(calls) < 10
    assert [v.allowed for v in verdicts if v is not None] == [True] * 100 + [False] * 10
    assert {v.item.amount for v in verdicts[100:] if v is not None} == {100}  # ann's own limit

    tenant = uuid.uuid4().hex  # three users asking 50 times each: the tenant's 120 binds
    verdicts = await asyncio.gather(*(limits.check_caller(tenant, f"user-{i % 3}") for i in range(150)))
    assert [v.allowed for v in verdicts if v is not None] == [True] * 120 + [False] * 30
    assert {v.item.amount for v in verdicts[120:] if v is not None} == {120}

    async def stored(key: str) -> int:  # this window's count and the previous one's (a minute may turn)
        index = int(time.time() // 60)
        values = await counters.client.mget([f"prm-rate:{key}:{index}", f"prm-rate:{key}:{index - 1}"])
        return sum(int(v or 0) for v in values)

    assert await stored(f"tenant/{tenant}") == 120
    users = [await stored(f"user/{tenant}/user-{i}") for i in range(3)]
    assert sum(users) == 120  # a refused request was counted in neither limit
    await counters.client.aclose()


async def test_with_redis_an_outage_during_a_shared_call_lets_every_request_of_it_through(
    settings,
) -> None:
    counters = RedisCounters("redis://127.0.0.1:1/0")
    limits = RateLimits(limited(settings, redis_url="redis://127.0.0.1:1/0"), counters)
    verdicts = await asyncio.gather(*(limits.check_caller("t", "ann") for _ in range(20)))
    assert verdicts == [None] * 20
    await counters.client.aclose()


async def test_a_hot_read_is_counted_once_even_beside_the_callers_own_dependency(
    database_url, settings, tenant_id, headers_for
) -> None:
    """`TenantReadsDep` authenticates the caller itself (one dependency fewer on the most frequent reads);
    a route that also takes `CurrentPrincipal` must still count the request once, not twice."""
    app = create_app(limited(settings, rate_limit_per_user="3/minute"), database_url=database_url)

    @app.get("/test/principal-and-reads")
    async def both(principal: CurrentPrincipal, reads: TenantReadsDep) -> dict[str, str]:
        return {"tenant": str(principal.tenant_id)}

    headers = headers_for(tenant_id)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            hot = [(await client.get(f"{API}/patients", headers=headers)).status_code for _ in range(2)]
            both_deps = await client.get("/test/principal-and-reads", headers=headers)
            over = await client.get(f"{API}/patients", headers=headers)
    assert hot == [200, 200]
    assert both_deps.status_code == 200 and both_deps.json() == {"tenant": str(tenant_id)}
    assert both_deps.headers["X-RateLimit-Remaining"] == "0"  # its third request of three, counted once
    assert over.status_code == 429
