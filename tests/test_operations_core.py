"""What the core gives every provider's operations: client-side rate limits, at-most-once sending of
side-effecting operations per request_id, and keep-alive refresh of idle connections.

A small provider plugin calls a real HTTP upstream on loopback that counts what it receives.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from broker_gateway.config import ProviderConfig
from broker_gateway.provider import (
    ConnectionCredentials,
    Operation,
    OperationAuth,
    Provider,
    RateLimit,
    RateScope,
    hookimpl,
)
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from conftest import (
    REDIRECT_URI,
    FakeClock,
    GatewayHarness,
    Wallet,
    connect_wallet,
    expect_failure,
    gateway_config,
    running_gateway,
    serve_asgi,
)
from google.protobuf import json_format
from google.rpc import error_details_pb2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

NUMBER = {"type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": False}


@dataclass
class Upstream:
    base_url: str
    received: list[str]
    hang: asyncio.Event


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    received: list[str] = []
    hang = asyncio.Event()

    async def order(request: Request) -> JSONResponse:
        received.append(request.url.path)
        if hang.is_set():
            await asyncio.sleep(1)
        return JSONResponse({"order": len(received)})

    app = Starlette(routes=[Route(f"/{name}", order, methods=["POST"]) for name in ("order", "ticker", "transfer")])
    async with serve_asgi(app) as (base_url, _, _):
        yield Upstream(base_url, received, hang)


class CountingProvider(Provider):
    """One read limited to 3 calls a second, one side-effecting write."""

    type = "counting"

    def operations(self) -> Sequence[Operation]:
        return (
            Operation("ticker", "A read.", OperationAuth.NONE, NUMBER, safe_to_retry=True, rate_limit=RateLimit(3, 1.0)),
            Operation("order", "A write.", OperationAuth.NONE, NUMBER, rate_limit=RateLimit(100, 1.0, RateScope.PROVIDER)),
            Operation("transfer", "A write allowed once a minute.", OperationAuth.NONE, NUMBER, rate_limit=RateLimit(1, 60.0)),
        )

    async def invoke(
        self, operation: Operation, params: Mapping[str, Any], *, credentials: ConnectionCredentials | None, request_id: str
    ) -> Any:
        response = await self.context.http.request("POST", f"{self.settings['base_url']}/{operation.name}", timeout=0.5)
        return {**response.json(), "request_id": request_id}


class Plugin:
    @hookimpl
    def broker_gateway_register_providers(self, register: Callable[[type[Provider]], None]) -> None:
        register(CountingProvider)


@pytest.fixture
async def counting_gateway(tmp_path: Path, upstream: Upstream, clock: FakeClock) -> AsyncIterator[GatewayHarness]:
    entry = ProviderConfig("counting", "counting", (REDIRECT_URI,), {"base_url": upstream.base_url}, allow_insecure_http=True)
    async with running_gateway(gateway_config(tmp_path, [entry]), clock, extra_plugins=[Plugin()]) as harness:
        yield harness


def invoke(operation: str, request_id: str = "") -> api.InvokeOperationRequest:
    return api.InvokeOperationRequest(provider="counting", operation=operation, request_id=request_id)


async def test_a_burst_past_the_rate_limit_is_refused_with_retry_info(
    counting_gateway: GatewayHarness, upstream: Upstream
) -> None:
    results = await asyncio.gather(
        *(counting_gateway.stub.InvokeOperation(invoke("ticker"), timeout=5) for _ in range(5)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 2 and len(upstream.received) == 3
    failure = await expect_failure(counting_gateway.stub.InvokeOperation(invoke("ticker"), timeout=5))
    assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "PROVIDER_RATE_LIMITED")
    retry = [d for d in failure.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(retry) == 1
    info = error_details_pb2.RetryInfo()
    retry[0].Unpack(info)
    assert 0 < info.retry_delay.ToTimedelta().total_seconds() <= 1.0
    assert len(upstream.received) == 3


async def test_a_write_is_sent_once_per_request_id(counting_gateway: GatewayHarness, upstream: Upstream) -> None:
    first = await counting_gateway.stub.InvokeOperation(invoke("order", "req-1"), timeout=5)
    again = await counting_gateway.stub.InvokeOperation(invoke("order", "req-1"), timeout=5)
    assert json_format.MessageToDict(again.result) == json_format.MessageToDict(first.result)
    assert upstream.received == ["/order"]
    other = await counting_gateway.stub.InvokeOperation(invoke("order", "req-2"), timeout=5)
    assert json_format.MessageToDict(other.result)["request_id"] == "req-2"
    assert len(upstream.received) == 2


async def test_a_write_whose_outcome_is_unknown_is_never_sent_again(
    counting_gateway: GatewayHarness, upstream: Upstream
) -> None:
    upstream.hang.set()
    lost = await expect_failure(counting_gateway.stub.InvokeOperation(invoke("order", "req-lost"), timeout=5))
    assert (lost.code, lost.reason) == (grpc.StatusCode.UNKNOWN, "OUTCOME_UNKNOWN")
    upstream.hang.clear()
    repeat = await expect_failure(counting_gateway.stub.InvokeOperation(invoke("order", "req-lost"), timeout=5))
    assert repeat.reason == "OUTCOME_UNKNOWN" and "req-lost" not in repeat.metadata.values()  # the caller knows its id
    assert upstream.received == ["/order"]


async def test_a_write_that_certainly_failed_may_be_sent_again(
    counting_gateway: GatewayHarness, upstream: Upstream, tmp_path: Path
) -> None:
    bad = api.InvokeOperationRequest(provider="counting", operation="order", request_id="req-bad")
    bad.params.update({"n": "not a number"})
    failure = await expect_failure(counting_gateway.stub.InvokeOperation(bad, timeout=5))
    assert failure.reason == "INVALID_FIELD" and failure.metadata["field"] == "params.n"
    await counting_gateway.stub.InvokeOperation(invoke("order", "req-bad"), timeout=5)
    assert upstream.received == ["/order"]


async def test_idle_connections_are_kept_alive_before_their_refresh_token_expires(
    tmp_path: Path, wallet: Wallet, clock: FakeClock
) -> None:
    """The wallet's refresh tokens live 30 days (docs/design/sandbox.md); refreshed two days before that, an
    idle connection never dies. Time is moved by the clock, not by sleeping."""
    entry = wallet.provider_config(refresh_token_ttl_seconds=30 * 86400, keepalive_before_seconds=2 * 86400)
    async with running_gateway(gateway_config(tmp_path, [entry]), clock) as harness:
        connection = await connect_wallet(harness, wallet, "erin")
        gateway = harness.application.gateway
        assert await gateway.token_lifecycle.keep_alive() == 0  # nothing is due yet
        for _ in range(3):  # three idle months
            clock.advance(days=28, hours=12)
            assert await gateway.token_lifecycle.keep_alive() == 1
        assert wallet.request_log.count("refresh_token") == 3
        info = await harness.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=5)
        assert info.user_info.username == "erin"


async def test_a_replayed_write_costs_no_rate_limit(counting_gateway: GatewayHarness, upstream: Upstream) -> None:
    """The replay is answered from the store, so it neither spends the minute's one call nor is refused."""
    first = await counting_gateway.stub.InvokeOperation(invoke("transfer", "t-1"), timeout=5)
    for _ in range(3):
        again = await counting_gateway.stub.InvokeOperation(invoke("transfer", "t-1"), timeout=5)
        assert json_format.MessageToDict(again.result) == json_format.MessageToDict(first.result)
    refused = await expect_failure(counting_gateway.stub.InvokeOperation(invoke("transfer", "t-2"), timeout=5))
    assert refused.reason == "PROVIDER_RATE_LIMITED"
    assert upstream.received == ["/transfer"]
    failed_once = await expect_failure(counting_gateway.stub.InvokeOperation(invoke("transfer", "t-2"), timeout=5))
    assert failed_once.reason == "PROVIDER_RATE_LIMITED"  # the refused claim was released, not kept as unknown
