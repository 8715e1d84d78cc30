"""The gRPC layer of the real server: health, graceful shutdown, reflection, deadlines, the error
model and the connection-management RPCs (docs/design/grpc.md).

Why: these are the promises load balancers, grpcurl and retrying clients rely on. Everything runs for
real on loopback: the gateway, the wallet simulator, and throwaway provider plugins registered through
the same hook a third-party plugin uses.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from broker_gateway import server as server_module
from broker_gateway.config import ProviderConfig
from broker_gateway.provider import ConnectionCredentials, Operation, OperationAuth, Provider, hookimpl
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import connection_pb2
from conftest import (
    REDIRECT_URI,
    Failure,
    FakeClock,
    GatewayHarness,
    Wallet,
    connect_wallet,
    expect_failure,
    failure_of,
    running_gateway,
)
from conftest import gateway_config as make_config
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

SERVICE = "broker_gateway.v1.BrokerGateway"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


# -- helpers ---------------------------------------------------------------------------------------


class _TestProvider(Provider):
    """A provider with one operation that needs no credentials; ``behave`` decides what it does."""

    async def behave(self) -> Any:
        raise NotImplementedError

    def operations(self) -> Sequence[Operation]:
        return (Operation(name="run", description="test operation", auth=OperationAuth.NONE),)

    async def invoke(
        self,
        operation: Operation,
        params: Mapping[str, Any],
        *,
        credentials: ConnectionCredentials | None,
        request_id: str,
    ) -> Any:
        return await self.behave()


class SlowProvider(_TestProvider):
    """Signals ``settings["entered"]`` when a call arrives, then takes ``settings["delay"]`` seconds."""

    type = "test-slow"

    async def behave(self) -> Any:
        self.settings["entered"].set()
        await asyncio.sleep(self.settings["delay"])
        return {"ok": True}


class FailingProvider(_TestProvider):
    """Fails the way a provider bug would, with a secret in the exception text."""

    type = "test-failing"

    async def behave(self) -> Any:
        raise RuntimeError("planted-secret-xyz")


class ProvidersPlugin:
    """A plugin object registering the given provider classes through the ordinary hook."""

    def __init__(self, *classes: type[Provider]) -> None:
        self.classes = classes

    @hookimpl
    def broker_gateway_register_providers(self, register: Callable[[type[Provider]], None]) -> None:
        for provider_class in self.classes:
            register(provider_class)


def provider_entry(provider_id: str, provider_type: str, **settings: Any) -> ProviderConfig:
    return ProviderConfig(id=provider_id, type=provider_type, redirect_uris=(REDIRECT_URI,), settings=settings)


def invoke_request(provider: str) -> api.InvokeOperationRequest:
    return api.InvokeOperationRequest(provider=provider, operation="run")


async def health_of(channel: grpc.aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return (await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)).status


async def wait_for_health(channel: grpc.aio.Channel, status: int, timeout: float = 5.0) -> None:
    """Poll Check for both names until they report ``status``; the watcher sets them asynchronously."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        seen = [await health_of(channel, name) for name in ("", SERVICE)]
        if seen == [status, status]:
            return
        assert loop.time() < give_up, f"health stayed {seen}, expected {status}"
        await asyncio.sleep(0.02)


def retry_infos(failure: Failure) -> list[error_details_pb2.RetryInfo]:
    return failure.details_of(error_details_pb2.RetryInfo)


def bad_request_fields(failure: Failure) -> list[str]:
    return [violation.field for bad in failure.details_of(error_details_pb2.BadRequest) for violation in bad.field_violations]


async def list_services(channel: grpc.aio.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    responses = [response async for response in call]
    assert len(responses) == 1
    return [service.name for service in responses[0].list_services_response.service]


async def connect(harness: GatewayHarness, wallet: Wallet, provider: str, username: str, **authorize: Any) -> connection_pb2.Connection:
    """connect_wallet for any provider entry pointing at the wallet simulator."""
    start = await harness.stub.Authorize(
        api.AuthorizeRequest(provider=provider, redirect_uri=REDIRECT_URI, **authorize), timeout=10
    )
    callback = await wallet.approve(start.authorization_url, username)
    response = await harness.stub.Exchange(
        api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback), timeout=10
    )
    return response.connection


# -- health ----------------------------------------------------------------------------------------


async def test_health_serving_then_not_serving_when_the_store_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readiness follows the store (3.4): SERVING once it answers, NOT_SERVING once it does not."""
    monkeypatch.setattr(server_module, "HEALTH_INTERVAL", 0.05)
    async with running_gateway(make_config(tmp_path, [])) as harness:
        await wait_for_health(harness.channel, SERVING)
        unknown = health_pb2_grpc.HealthStub(harness.channel).Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await unknown
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

        await harness.application.gateway.store.close()
        await wait_for_health(harness.channel, NOT_SERVING, timeout=2.0)


# -- graceful shutdown -----------------------------------------------------------------------------


async def test_graceful_shutdown_goes_not_serving_and_lets_the_in_flight_call_finish(tmp_path: Path) -> None:
    """3.5: NOT_SERVING first, the running call completes, nothing new is accepted."""
    entered = asyncio.Event()
    config = make_config(tmp_path, [provider_entry("slow", SlowProvider.type, entered=entered, delay=1.0)])
    async with running_gateway(config, extra_plugins=[ProvidersPlugin(SlowProvider)]) as harness:
        await wait_for_health(harness.channel, SERVING)
        watch = health_pb2_grpc.HealthStub(harness.channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == SERVING

        in_flight = asyncio.ensure_future(harness.stub.InvokeOperation(invoke_request("slow"), timeout=10))
        await asyncio.wait_for(entered.wait(), timeout=5)
        stopping = asyncio.ensure_future(harness.running.stop(grace=5))

        assert (await asyncio.wait_for(watch.read(), timeout=2)).status == NOT_SERVING
        assert not in_flight.done(), "health must flip before the in-flight call finishes"
        watch.cancel()

        await asyncio.sleep(0.2)  # stop() has reached server.stop(): new calls are refused
        with pytest.raises(grpc.aio.AioRpcError) as during:
            await harness.stub.ListProviders(api.ListProvidersRequest(), timeout=2)
        assert during.value.code() == grpc.StatusCode.UNAVAILABLE
        assert not in_flight.done()

        response = await in_flight
        assert response.result.struct_value["ok"] is True
        await asyncio.wait_for(stopping, timeout=5)

        with pytest.raises(grpc.aio.AioRpcError) as after:
            await harness.stub.ListProviders(api.ListProvidersRequest(), timeout=2)
        assert after.value.code() == grpc.StatusCode.UNAVAILABLE


# -- reflection ------------------------------------------------------------------------------------


async def test_reflection_is_on_by_default(tmp_path: Path) -> None:
    """grpcurl works without proto files (3.8)."""
    async with running_gateway(make_config(tmp_path, [])) as harness:
        services = await list_services(harness.channel)
        assert SERVICE in services
        assert "grpc.health.v1.Health" in services

        stub = reflection_pb2_grpc.ServerReflectionStub(harness.channel)
        call = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE)]), timeout=5
        )
        responses = [response async for response in call]
        assert responses[0].WhichOneof("message_response") == "file_descriptor_response"


async def test_reflection_can_be_switched_off(tmp_path: Path) -> None:
    """With reflection off no ServerReflection service is registered, in either version (3.8)."""
    async with running_gateway(make_config(tmp_path, [], reflection=False)) as harness:
        for version in ("v1alpha", "v1"):
            # Asked as a unary call: the request goes out with the call's first batch, so the answer can
            # only be the server's; a stream's later send can race the server's UNIMPLEMENTED and fail
            # INTERNAL in the client instead.
            probe = harness.channel.unary_unary(
                f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await probe(reflection_pb2.ServerReflectionRequest(list_services=""), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED, version
        # The API itself is unaffected.
        assert (await harness.stub.ListProviders(api.ListProvidersRequest(), timeout=5)).providers == []


# -- deadlines -------------------------------------------------------------------------------------


async def test_a_one_millisecond_deadline_never_reaches_the_upstream(wallet_gateway: GatewayHarness, wallet: Wallet) -> None:
    """4.3 G1: DEADLINE_EXCEEDED and no upstream request."""
    connection = await connect_wallet(wallet_gateway, wallet)
    before = wallet.request_log.count()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await wallet_gateway.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=0.001)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.sleep(0.2)  # anything the server might still send would have arrived by now
    assert wallet.request_log.count() == before


async def test_a_deadline_below_the_minimum_budget_is_refused_before_the_upstream(
    wallet_gateway: GatewayHarness, wallet: Wallet
) -> None:
    """3.1: under 50 ms left, the call is refused without touching the upstream."""
    connection = await connect_wallet(wallet_gateway, wallet)
    before = wallet.request_log.count()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await wallet_gateway.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=0.04)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    if rpc_status.from_call(caught.value) is not None:  # the server answered before the client's own timer
        assert failure_of(caught.value).reason == "DEADLINE_TOO_SHORT"
    await asyncio.sleep(0.2)
    assert wallet.request_log.count() == before


async def test_a_refresh_is_not_started_for_a_caller_with_no_budget_left(
    wallet_gateway: GatewayHarness, wallet: Wallet, clock: FakeClock
) -> None:
    """3.1 and 4.3 G1: a call with under 50 ms left is refused before the AS is touched, and starting a
    refresh touches it. (Once started, a refresh may outlive its caller; it must not start.)"""
    connection = await connect_wallet(wallet_gateway, wallet)
    clock.advance(hours=1, minutes=56)  # the access token now needs a refresh
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await wallet_gateway.stub.GetAccessToken(
            api.GetAccessTokenRequest(connection_id=connection.connection_id), timeout=0.04
        )
    await asyncio.sleep(0.3)
    assert wallet.request_log.count("refresh_token") == 0
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


# -- error model -----------------------------------------------------------------------------------


async def test_unreachable_token_endpoint_is_unavailable_with_retry_info(
    wallet_gateway: GatewayHarness, wallet: Wallet
) -> None:
    """Retryable codes carry RetryInfo (AIP-193, 3.3)."""
    connection = await connect_wallet(wallet_gateway, wallet)
    wallet.server.should_exit = True
    await wallet.task
    failure = await expect_failure(
        wallet_gateway.stub.Refresh(api.RefreshRequest(connection_id=connection.connection_id), timeout=10)
    )
    assert failure.code == grpc.StatusCode.UNAVAILABLE
    assert failure.reason == "PROVIDER_UNAVAILABLE"
    assert failure.metadata["provider"] == "wallet"
    (retry,) = retry_infos(failure)
    assert retry.retry_delay.ToTimedelta().total_seconds() > 0


async def test_non_retryable_errors_carry_no_retry_info(wallet_gateway: GatewayHarness) -> None:
    """NOT_FOUND and INVALID_ARGUMENT: exactly one ErrorInfo, no RetryInfo, BadRequest for bad fields."""
    stub = wallet_gateway.stub
    missing = await expect_failure(stub.GetConnection(api.GetConnectionRequest(connection_id="conn-nope"), timeout=5))
    assert (missing.code, missing.reason) == (grpc.StatusCode.NOT_FOUND, "CONNECTION_NOT_FOUND")
    assert "conn-nope" not in missing.message and "conn-nope" not in missing.metadata.values()  # input is never echoed
    assert retry_infos(missing) == []

    invalid = await expect_failure(stub.GetConnection(api.GetConnectionRequest(connection_id="bad id!"), timeout=5))
    assert invalid.code == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request_fields(invalid) == ["connection_id"]
    assert retry_infos(invalid) == []


async def test_an_unexpected_provider_exception_is_a_generic_internal_error(tmp_path: Path) -> None:
    """Anything unexpected becomes INTERNAL_ERROR and its text stays in the log, not the reply."""
    config = make_config(tmp_path, [provider_entry("broken", FailingProvider.type)])
    async with running_gateway(config, extra_plugins=[ProvidersPlugin(FailingProvider)]) as harness:
        failure = await expect_failure(harness.stub.InvokeOperation(invoke_request("broken"), timeout=5))
    assert (failure.code, failure.reason) == (grpc.StatusCode.INTERNAL, "INTERNAL_ERROR")
    assert "planted-secret-xyz" not in failure.message
    assert all(b"planted-secret-xyz" not in detail.value for detail in failure.details)
    assert retry_infos(failure) == []


# -- connections -----------------------------------------------------------------------------------


@pytest.fixture
async def two_wallets(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> AsyncIterator[GatewayHarness]:
    """Two provider entries, ``wallet`` and ``wallet2``, on the same simulator."""
    config = make_config(tmp_path, [wallet.provider_config("wallet"), wallet.provider_config("wallet2")])
    async with running_gateway(config, clock) as harness:
        yield harness


async def test_get_and_delete_connection(wallet_gateway: GatewayHarness, wallet: Wallet) -> None:
    stub = wallet_gateway.stub
    connection = await connect_wallet(wallet_gateway, wallet)
    got = (await stub.GetConnection(api.GetConnectionRequest(connection_id=connection.connection_id), timeout=5)).connection
    assert got == connection

    await stub.DeleteConnection(api.DeleteConnectionRequest(connection_id=connection.connection_id), timeout=5)
    gone = await expect_failure(stub.GetConnection(api.GetConnectionRequest(connection_id=connection.connection_id), timeout=5))
    assert (gone.code, gone.reason) == (grpc.StatusCode.NOT_FOUND, "CONNECTION_NOT_FOUND")
    again = await expect_failure(
        stub.DeleteConnection(api.DeleteConnectionRequest(connection_id=connection.connection_id), timeout=5)
    )
    assert (again.code, again.reason) == (grpc.StatusCode.NOT_FOUND, "CONNECTION_NOT_FOUND")


async def test_list_connections_pages_and_filters(two_wallets: GatewayHarness, wallet: Wallet) -> None:
    """AIP-158 paging: stable pages, an empty token at the end, tokens bound to their filter."""
    stub = two_wallets.stub
    created = [await connect(two_wallets, wallet, "wallet", f"user{i}") for i in range(5)]
    created += [await connect(two_wallets, wallet, "wallet2", f"other{i}") for i in range(2)]

    pages: list[list[str]] = []
    token = ""
    while True:
        page = await stub.ListConnections(api.ListConnectionsRequest(page_size=3, page_token=token), timeout=5)
        pages.append([c.connection_id for c in page.connections])
        token = page.next_page_token
        if not token:
            break
        assert len(pages) < 5, "paging does not end"
    assert [len(page) for page in pages] == [3, 3, 1]
    assert sorted(itertools.chain.from_iterable(pages)) == sorted(c.connection_id for c in created)

    filtered = await stub.ListConnections(api.ListConnectionsRequest(provider="wallet2"), timeout=5)
    assert {c.connection_id for c in filtered.connections} == {c.connection_id for c in created[5:]}
    assert {c.provider for c in filtered.connections} == {"wallet2"}
    assert filtered.next_page_token == ""

    first = await stub.ListConnections(api.ListConnectionsRequest(page_size=3), timeout=5)
    mismatch = await expect_failure(
        stub.ListConnections(
            api.ListConnectionsRequest(provider="wallet", page_size=3, page_token=first.next_page_token), timeout=5
        )
    )
    assert (mismatch.code, mismatch.metadata.get("field")) == (grpc.StatusCode.INVALID_ARGUMENT, "page_token")
    assert bad_request_fields(mismatch) == ["page_token"]


async def test_authorize_refuses_a_connection_id_of_another_provider(two_wallets: GatewayHarness, wallet: Wallet) -> None:
    await connect(two_wallets, wallet, "wallet", "alice", connection_id="shared-1")
    failure = await expect_failure(
        two_wallets.stub.Authorize(
            api.AuthorizeRequest(provider="wallet2", redirect_uri=REDIRECT_URI, connection_id="shared-1"), timeout=5
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.ALREADY_EXISTS, "CONNECTION_ID_IN_USE")


async def test_exchange_refuses_a_connection_id_taken_meanwhile_by_another_provider(
    two_wallets: GatewayHarness, wallet: Wallet
) -> None:
    """The Authorize-time check is repeated when the connection is written."""
    stub = two_wallets.stub
    start = await stub.Authorize(
        api.AuthorizeRequest(provider="wallet2", redirect_uri=REDIRECT_URI, connection_id="raced-1"), timeout=5
    )
    await connect(two_wallets, wallet, "wallet", "alice", connection_id="raced-1")
    callback = await wallet.approve(start.authorization_url, "bob")
    failure = await expect_failure(
        stub.Exchange(
            api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback), timeout=10
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.ALREADY_EXISTS, "CONNECTION_ID_IN_USE")
    kept = (await stub.GetConnection(api.GetConnectionRequest(connection_id="raced-1"), timeout=5)).connection
    assert kept.provider == "wallet"


async def test_reauthorizing_a_connection_keeps_it_and_replaces_its_tokens(
    wallet_gateway: GatewayHarness, wallet: Wallet, clock: FakeClock
) -> None:
    stub = wallet_gateway.stub
    first = await connect_wallet(wallet_gateway, wallet, "alice", connection_id="acct-1")
    token_before = await stub.GetAccessToken(api.GetAccessTokenRequest(connection_id="acct-1"), timeout=5)
    clock.advance(minutes=1)
    second = await connect_wallet(wallet_gateway, wallet, "alice", connection_id="acct-1", scopes=["profile", "balance"])
    token_after = await stub.GetAccessToken(api.GetAccessTokenRequest(connection_id="acct-1"), timeout=5)

    assert second.connection_id == "acct-1"
    assert second.create_time == first.create_time
    assert second.update_time.ToDatetime() > first.update_time.ToDatetime()
    assert sorted(second.scopes) == ["balance", "profile"]
    assert second.status == connection_pb2.CONNECTION_STATUS_ACTIVE
    assert token_after.access_token != token_before.access_token
    listed = await stub.ListConnections(api.ListConnectionsRequest(), timeout=5)
    assert [c.connection_id for c in listed.connections] == ["acct-1"]


async def test_list_providers_reports_capabilities_and_scopes(two_wallets: GatewayHarness) -> None:
    providers = (await two_wallets.stub.ListProviders(api.ListProvidersRequest(), timeout=5)).providers
    assert [p.id for p in providers] == ["wallet", "wallet2"]
    for provider in providers:
        assert provider.type == "generic-oauth2"
        capabilities = provider.capabilities
        assert (capabilities.pkce, capabilities.refresh, capabilities.user_info, capabilities.revoke) == (
            True,
            True,
            True,
            False,
        )
        assert list(provider.scopes) == ["profile", "balance"]
        assert provider.issuer == ""
        assert list(provider.operations) == []
