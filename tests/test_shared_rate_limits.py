"""Rate limits shared through Redis (``[rate_limits]``): one limit across every gateway, the same
sliding-window answers as the in-process limiter, and what happens while Redis is gone.

A real ``redis-server`` (support.redis), real gateways on loopback and the counting upstream of
test_operations_core. Redis stamps calls with the wall clock, which no test can move, so agreement is
checked on the real clock (each acquisition's time is read once and given to the in-process limiter);
the fallback's own timing (its quiet window) runs on an injected clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest
from broker_gateway.config import ProviderConfig, RateLimitsConfig
from broker_gateway.errors import GatewayError, ProviderRateLimited, ProviderUnavailable, RateLimiterUnavailable
from broker_gateway.provider import ConnectionCredentials, Operation, OperationAuth, Provider, RateLimit, RateScope, hookimpl
from broker_gateway.ratelimit import OnUnavailable, RateLimiter, RedisRateLimiter
from conftest import REDIRECT_URI, FakeClock, GatewayHarness, expect_failure, gateway_config, running_gateway
from google.rpc import error_details_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.redis import RedisServer, free_port
from test_cli import check_config, write_config
from test_operations_core import NUMBER, CountingProvider, Upstream, invoke, upstream  # noqa: F401

#: The shared operation's limit: a minute-long window, so no test outruns it on a slow machine.
TICKER_LIMIT = RateLimit(10, 60.0)


class SharedLimitProvider(CountingProvider):
    """The counting provider with one read limited to ten calls a minute, and one operation, allowed
    once a minute, whose provider fails before it sends anything."""

    type = "counting-shared"

    def operations(self) -> Sequence[Operation]:
        return (
            Operation("ticker", "A read.", OperationAuth.NONE, NUMBER, safe_to_retry=True, rate_limit=TICKER_LIMIT),
            Operation("unsendable", "Fails before sending.", OperationAuth.NONE, NUMBER, rate_limit=RateLimit(1, 60.0)),
        )

    async def invoke(
        self, operation: Operation, params: Mapping[str, Any], *, credentials: ConnectionCredentials | None, request_id: str
    ) -> Any:
        if operation.name == "unsendable":
            raise ProviderUnavailable("the provider cannot send this", metadata={"provider": self.context.provider_id})
        return await super().invoke(operation, params, credentials=credentials, request_id=request_id)


class Plugin:
    @hookimpl
    def broker_gateway_register_providers(self, register: Callable[[type[Provider]], None]) -> None:
        register(SharedLimitProvider)


@dataclasses.dataclass
class Replicas:
    gateways: list[GatewayHarness]
    upstream: Upstream


@pytest.fixture
async def replicas(tmp_path: Path, upstream: Upstream, redis_server: RedisServer, clock: FakeClock) -> AsyncIterator[Replicas]:
    """Two gateways (each with its own store and memory) sharing one Redis."""
    entry = ProviderConfig("counting", "counting-shared", (REDIRECT_URI,), {"base_url": upstream.base_url}, allow_insecure_http=True)
    shared = RateLimitsConfig(redis_server.url)
    async with AsyncExitStack() as stack:
        gateways = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            config = dataclasses.replace(gateway_config(tmp_path / name, [entry]), rate_limits=shared)
            gateways.append(await stack.enter_async_context(running_gateway(config, clock, extra_plugins=[Plugin()])))
        yield Replicas(gateways, upstream)


def retry_delay(failure_details: Sequence[object]) -> float:
    infos = [d for d in failure_details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]  # type: ignore[attr-defined]
    assert len(infos) == 1, "expected exactly one RetryInfo"
    info = error_details_pb2.RetryInfo()
    infos[0].Unpack(info)  # type: ignore[attr-defined]
    return info.retry_delay.ToTimedelta().total_seconds()


def flush_windows(redis_server: RedisServer) -> None:
    """A restart empties Redis: windows of earlier tests are gone."""
    redis_server.stop()
    redis_server.start()


# -- shared across replicas ------------------------------------------------------------------------


async def test_two_gateways_driving_three_times_the_limit_send_only_the_limit(replicas: Replicas, redis_server: RedisServer) -> None:
    flush_windows(redis_server)
    calls = [gateway.stub.InvokeOperation(invoke("ticker"), timeout=10) for gateway in replicas.gateways for _ in range(15)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(replicas.upstream.received) == TICKER_LIMIT.requests
    assert len(refused) == 3 * TICKER_LIMIT.requests - TICKER_LIMIT.requests
    for gateway in replicas.gateways:
        failure = await expect_failure(gateway.stub.InvokeOperation(invoke("ticker"), timeout=10))
        assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "PROVIDER_RATE_LIMITED")
        assert 0 < retry_delay(failure.details) <= TICKER_LIMIT.per_seconds
    assert len(replicas.upstream.received) == TICKER_LIMIT.requests


async def test_without_redis_the_default_refuses_and_sends_nothing_then_shares_again(
    replicas: Replicas, redis_server: RedisServer
) -> None:
    first, second = replicas.gateways
    redis_server.stop()
    try:
        failure = await expect_failure(first.stub.InvokeOperation(invoke("ticker"), timeout=10))
        assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, "RATE_LIMITER_UNAVAILABLE")
        assert failure.metadata == {"provider": "counting", "operation": "ticker"}
        assert retry_delay(failure.details) > 0
        assert replicas.upstream.received == []
    finally:
        redis_server.start()
    results = await asyncio.gather(
        *(gateway.stub.InvokeOperation(invoke("ticker"), timeout=10) for gateway in (first, second) for _ in range(15)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == TICKER_LIMIT.requests
    assert len(replicas.upstream.received) == TICKER_LIMIT.requests


async def test_a_spent_limit_is_the_error_even_when_the_provider_fails_before_sending(
    replicas: Replicas, redis_server: RedisServer
) -> None:
    """A call the limiter refused answers RESOURCE_EXHAUSTED, whatever the provider would have done:
    the acquire comes first (it must stay so if it is ever made to overlap the provider's work)."""
    flush_windows(redis_server)
    first, second = replicas.gateways
    failure = await expect_failure(first.stub.InvokeOperation(invoke("unsendable"), timeout=10))
    assert failure.code is grpc.StatusCode.UNAVAILABLE
    for gateway in (first, second):
        failure = await expect_failure(gateway.stub.InvokeOperation(invoke("unsendable"), timeout=10))
        assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "PROVIDER_RATE_LIMITED")
    assert replicas.upstream.received == []


# -- the same answers as the in-process limiter ----------------------------------------------------

#: Two operations: one counted per provider, one per connection (two connections), one second each.
KEYS = [("a", "t/c1"), ("b", "t/c1"), ("b", "t/c2")]
GAPS = [0.0, 0.02, 0.25, 0.5]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    requests_a=st.integers(1, 3),
    requests_b=st.integers(1, 2),
    steps=st.lists(st.tuples(st.integers(0, len(KEYS) - 1), st.sampled_from(GAPS)), min_size=1, max_size=8),
)
async def test_redis_and_in_process_limiters_give_the_same_answers(
    redis_server: RedisServer, requests_a: int, requests_b: int, steps: list[tuple[int, float]]
) -> None:
    """Each acquisition's time is read once and given to the in-process limiter; the Redis limiter
    reads the same clock microseconds later, so the two answer the same question."""
    limits = {"a": RateLimit(requests_a, 1.0), "b": RateLimit(requests_b, 1.0, RateScope.CONNECTION)}
    provider = f"p-{uuid.uuid4().hex}"
    now = 0.0
    local = RateLimiter(clock=lambda: now)
    shared = RedisRateLimiter(redis_server.url)
    try:
        for key, gap in steps:
            name, connection = KEYS[key]
            await asyncio.sleep(gap)
            now = time.time()
            expected = await outcome(local.acquire(provider, name, limits[name], connection))
            got = await outcome(shared.acquire(provider, name, limits[name], connection))
            assert (got is None) == (expected is None), f"step {key, gap}: in process {expected}, Redis {got}"
            if got is not None and expected is not None:
                assert abs(got - expected) < 0.25  # the same wait, give or take the second round trip
    finally:
        await shared.close()


async def outcome(acquisition: Awaitable[None]) -> float | None:
    """None when the call is let through, else the RetryInfo delay of its refusal."""
    try:
        await acquisition
    except ProviderRateLimited as refused:
        assert refused.retry_after is not None
        return refused.retry_after
    return None


# -- Redis unreachable -----------------------------------------------------------------------------


class ManualClock:
    """The fallback's monotonic clock, moved by hand (Redis's own windows use the wall clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def admitted(limiter: RedisRateLimiter, limit: RateLimit, provider: str, calls: int) -> tuple[int, list[GatewayError]]:
    """How many of ``calls`` acquisitions got through, and the refusals."""
    refusals: list[GatewayError] = []
    for _ in range(calls):
        try:
            await limiter.acquire(provider, "ticker", limit, "t/c1")
        except GatewayError as error:
            refusals.append(error)
    return calls - len(refusals), refusals


async def test_local_share_keeps_each_process_to_its_share_while_redis_is_down(redis_server: RedisServer) -> None:
    """Two processes, a limit of 5 a minute: after a quiet window each sends floor(5 / 2) = 2 alone;
    back on Redis, the outage's calls still count for one window, then the limit is shared again."""
    limit, provider, clock = RateLimit(5, 60.0), f"p-{uuid.uuid4().hex}", ManualClock()
    processes = [RedisRateLimiter(redis_server.url, on_unavailable=OnUnavailable.LOCAL_SHARE, processes=2, clock=clock) for _ in range(2)]
    try:
        redis_server.stop()
        try:
            for limiter in processes:  # the quiet window: Redis may have let others' calls through
                sent, refusals = await admitted(limiter, limit, provider, 1)
                assert sent == 0 and isinstance(refusals[0], RateLimiterUnavailable)
                assert refusals[0].retry_after == pytest.approx(limit.per_seconds)
            clock.now += limit.per_seconds
            for limiter in processes:
                sent, refusals = await admitted(limiter, limit, provider, 6)
                assert sent == 2 and all(isinstance(error, ProviderRateLimited) for error in refusals)
        finally:
            redis_server.start()
        for limiter in processes:  # back on Redis, the outage's calls still count locally
            sent, refusals = await admitted(limiter, limit, provider, 1)
            assert sent == 0 and isinstance(refusals[0], ProviderRateLimited)
        clock.now += limit.per_seconds
        # Shared again: the two calls spent on Redis above count, the rest of the limit is one pool.
        totals = [await admitted(limiter, limit, provider, 5) for limiter in processes]
        assert sum(sent for sent, _ in totals) == limit.requests - 2
    finally:
        for limiter in processes:
            await limiter.close()


async def test_a_share_below_one_call_sends_nothing_while_redis_is_down(redis_server: RedisServer) -> None:
    clock = ManualClock()
    limiter = RedisRateLimiter(redis_server.url, on_unavailable=OnUnavailable.LOCAL_SHARE, processes=3, clock=clock)
    redis_server.stop()
    try:
        clock.now += 60.0
        sent, refusals = await admitted(limiter, RateLimit(2, 1.0), f"p-{uuid.uuid4().hex}", 3)
        assert sent == 0 and all(isinstance(error, RateLimiterUnavailable) for error in refusals)
    finally:
        redis_server.start()
        await limiter.close()


async def test_an_unreachable_redis_at_start_is_logged_once_without_its_password(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RedisRateLimiter(f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0")
    with caplog.at_level(logging.WARNING, logger="broker_gateway.ratelimit"):
        await limiter.start()
        for _ in range(3):
            with pytest.raises(RateLimiterUnavailable):
                await limiter.acquire("p", "ticker", RateLimit(1, 1.0), "t/c1")
    await limiter.close()
    warnings = [record for record in caplog.records if record.name == "broker_gateway.ratelimit"]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
    assert "hunter2-secret" not in caplog.text


# -- configuration ---------------------------------------------------------------------------------

RATE_LIMITS_PROBLEMS = {
    '[rate_limits]\nurl = "http://127.0.0.1:6379"\n': "rate_limits.url: expected redis://",
    '[rate_limits]\nurl = "redis://127.0.0.1:6379/zero"\n': "rate_limits.url: expected redis://",
    '[rate_limits]\nurl = "redis://h:6379/0"\nurl_typo = 1\n': "rate_limits.url_typo: unknown setting",
    '[rate_limits]\nurl = "redis://h:6379/0"\non_unavailable = "ignore"\n': "rate_limits.on_unavailable: expected one of",
    '[rate_limits]\nurl = "redis://h:6379/0"\non_unavailable = "local-share"\n': "rate_limits.replicas: required",
    '[rate_limits]\nurl = "redis://h:6379/0"\non_unavailable = "local-share"\nreplicas = "3"\n': "rate_limits.replicas: expected a positive",
    '[rate_limits]\nurl = "redis://h:6379/0"\nreplicas = 3\n': "rate_limits.replicas: only used with",
    '[rate_limits]\non_unavailable = "refuse"\n': "rate_limits.url: required",
    'rate_limits = "redis://h:6379/0"\n': "rate_limits: expected a table",
}


@pytest.mark.parametrize("section", RATE_LIMITS_PROBLEMS)
def test_check_config_reports_a_bad_rate_limits_table_in_one_line(tmp_path: Path, section: str) -> None:
    # A table goes after the base configuration; a bare key must come before its first table.
    path = write_config(tmp_path, section) if section.startswith("[") else _with_top_level(tmp_path, section)
    code, output = check_config(path)
    assert code == 1
    lines = [line for line in output.splitlines() if "rate_limits" in line]
    assert len(lines) == 1 and RATE_LIMITS_PROBLEMS[section] in lines[0], output
    assert "Traceback" not in output


def _with_top_level(tmp_path: Path, line: str) -> Path:
    path = write_config(tmp_path)
    path.write_text(line + path.read_text())
    return path


def test_check_config_accepts_rate_limits_even_when_redis_is_unreachable(tmp_path: Path) -> None:
    section = f'[rate_limits]\nurl = "redis://127.0.0.1:{free_port()}/0"\non_unavailable = "local-share"\nreplicas = 3\n'
    path = write_config(tmp_path, section)
    code, output = check_config(path)
    assert (code, output.strip()) == (0, f"{path}: OK")
