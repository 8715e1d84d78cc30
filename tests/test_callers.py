"""Caller authentication and tenant isolation, over plaintext with API keys, TLS with API keys, and
mutual TLS: every RPC against no credentials, a wrong key, a caller of another tenant, a caller
without the permission, and the right caller.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from broker_gateway.callers import CallerConfig, Permission, key_sha256, new_key
from broker_gateway.devpki import Authority
from broker_gateway.provider import ConnectionCredentials, Operation, OperationAuth, Provider, hookimpl
from broker_gateway.tls import TlsConfig
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import broker_gateway_service_pb2_grpc as api_grpc
from broker_gateway.v1 import connection_event_pb2, connection_pb2
from broker_gateway_oauth2.provider import GenericOAuth2Provider
from conftest import REDIRECT_URI, Failure, FakeClock, GatewayHarness, Wallet, expect_failure, gateway_config, running_gateway
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

ALL = frozenset(Permission)
RPCS = [method.name for method in api.DESCRIPTOR.services_by_name["BrokerGateway"].methods]
STREAMING = {method.name for method in api.DESCRIPTOR.services_by_name["BrokerGateway"].methods if method.server_streaming}


class WalletWithOperations(GenericOAuth2Provider):
    """The wallet with one operation in the user's name, so InvokeOperation has something to call."""

    type = "wallet-with-operations"

    def operations(self) -> Sequence[Operation]:
        return (Operation("whoami", "The user's subject.", OperationAuth.USER_TOKEN, safe_to_retry=True),)

    async def invoke(
        self, operation: Operation, params: Mapping[str, Any], *, credentials: ConnectionCredentials | None, request_id: str
    ) -> Any:
        assert credentials is not None
        return {"subject": (await self.user_info(credentials)).subject}


class Plugin:
    @hookimpl
    def broker_gateway_register_providers(self, register: Callable[[type[Provider]], None]) -> None:
        register(WalletWithOperations)


@dataclass(frozen=True)
class Identity:
    """How a test call presents itself: its channel (TLS, client certificate) and its metadata."""

    channel: grpc.aio.Channel
    metadata: tuple[tuple[str, str], ...] = ()

    async def call(self, rpc: str, request: Any) -> Any:
        method = getattr(api_grpc.BrokerGatewayStub(self.channel), rpc)
        if rpc not in STREAMING:
            return await method(request, metadata=self.metadata, timeout=10)
        stream = method(request, metadata=self.metadata, timeout=10)
        try:
            return await stream.read()  # the opening heartbeat, or the refusal
        finally:
            stream.cancel()


@dataclass
class Deployment:
    harness: GatewayHarness
    wallet: Wallet
    right: Identity  # tenant acme, every permission
    flow_only: Identity  # tenant acme, connections only
    other_tenant: Identity  # tenant globex, every permission
    anonymous: Identity  # no credentials (under mutual TLS: a valid certificate that names no caller)
    wrong_key: Identity


@dataclass(frozen=True)
class Resources:
    """What the RPCs of one matrix row act on."""

    connection_id: str = "conn_absent"
    state: str = "state-absent"
    code: str = "code-absent"


def request_for(rpc: str, resources: Resources) -> Any:
    connection = resources.connection_id
    return {
        "ListProviders": api.ListProvidersRequest(),
        "Authorize": api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI),
        "Exchange": api.ExchangeRequest(state=resources.state, code=resources.code),
        "Refresh": api.RefreshRequest(connection_id=connection),
        "Revoke": api.RevokeRequest(connection_id=connection),
        "GetUserInfo": api.GetUserInfoRequest(connection_id=connection),
        "GetAccessToken": api.GetAccessTokenRequest(connection_id=connection),
        "InvokeOperation": api.InvokeOperationRequest(provider="wallet", operation="whoami", connection_id=connection),
        "GetConnection": api.GetConnectionRequest(connection_id=connection),
        "ListConnections": api.ListConnectionsRequest(),
        "DeleteConnection": api.DeleteConnectionRequest(connection_id=connection),
        "WatchConnections": api.WatchConnectionsRequest(),
    }[rpc]


async def authorize(identity: Identity, wallet: Wallet, username: str) -> dict[str, str]:
    """Authorize as ``identity`` and approve: the callback's parameters, not yet exchanged."""
    start = await identity.call("Authorize", api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI))
    return await wallet.approve(start.authorization_url, username)


async def connect(identity: Identity, wallet: Wallet, username: str = "alice") -> connection_pb2.Connection:
    callback = await authorize(identity, wallet, username)
    response = await identity.call("Exchange", api.ExchangeRequest(state=callback["state"], code=callback["code"]))
    return response.connection


async def fresh_resources(rpc: str, identity: Identity, wallet: Wallet) -> Resources:
    """A connection of the identity's tenant (a new one for each RPC, since some end it), and for
    Exchange an approved authorization waiting for it."""
    if rpc == "Exchange":
        callback = await authorize(identity, wallet, "bob")
        return Resources(state=callback["state"], code=callback["code"])
    return Resources(connection_id=(await connect(identity, wallet)).connection_id)


@pytest.fixture(params=["plaintext+key", "tls+key", "mutual-tls"])
async def deployment(request: pytest.FixtureRequest, tmp_path: Path, wallet: Wallet, clock: FakeClock) -> AsyncIterator[Deployment]:
    transport = request.param
    authority = Authority("test CA")
    provider = dataclasses.replace(wallet.provider_config("wallet"), type=WalletWithOperations.type)
    config = gateway_config(tmp_path, [provider])
    keys = {name: new_key() for name in ("acme", "frontend", "globex")}
    subjects = {"acme": "spiffe://acme.example/billing", "frontend": "acme-frontend", "globex": "spiffe://globex.example/app"}
    tenants = {"acme": "acme", "frontend": "acme", "globex": "globex"}
    permissions = {"acme": ALL, "frontend": frozenset({Permission.CONNECTIONS}), "globex": ALL}
    mutual = transport == "mutual-tls"
    callers = tuple(
        CallerConfig(
            id=name,
            tenant=tenants[name],
            permissions=permissions[name],
            key_sha256=None if mutual else key_sha256(keys[name]),
            tls_subject=subjects[name] if mutual else None,
        )
        for name in keys
    )
    tls = None
    if transport != "plaintext+key":
        cert, key = authority.server().write(tmp_path, "server")
        ca = tmp_path / "ca.crt"
        ca.write_bytes(authority.pem)
        tls = TlsConfig(cert=f"file:{cert}", key=f"file:{key}", client_ca=f"file:{ca}" if mutual else None)
    config = dataclasses.replace(config, server=dataclasses.replace(config.server, tls=tls), callers=callers)
    async with running_gateway(config, clock, extra_plugins=[Plugin()]) as harness:
        channels: list[grpc.aio.Channel] = []

        def identity(name: str | None, key: str | None = None) -> Identity:
            if transport == "plaintext+key":
                channel = grpc.aio.insecure_channel(harness.address)
            elif transport == "tls+key":
                channel = grpc.aio.secure_channel(harness.address, grpc.ssl_channel_credentials(authority.pem))
            else:
                pem = authority.client("stranger", "spiffe://stranger.example/x") if name is None else authority.client(
                    subjects[name], subjects[name] if subjects[name].startswith("spiffe:") else None
                )
                channel = grpc.aio.secure_channel(harness.address, grpc.ssl_channel_credentials(authority.pem, pem.key, pem.cert))
            channels.append(channel)
            presented = key if key is not None else (None if mutual or name is None else keys[name])
            return Identity(channel, () if presented is None else (("authorization", f"Bearer {presented}"),))

        try:
            yield Deployment(
                harness=harness,
                wallet=wallet,
                right=identity("acme"),
                flow_only=identity("frontend"),
                other_tenant=identity("globex"),
                anonymous=identity(None),
                wrong_key=identity(None, new_key()),
            )
        finally:
            for channel in channels:
                await channel.close()


async def test_without_a_known_caller_every_rpc_and_reflection_is_refused_and_health_stays_open(
    deployment: Deployment,
) -> None:
    for identity in (deployment.anonymous, deployment.wrong_key):
        for rpc in RPCS:
            failure = await expect_failure(identity.call(rpc, request_for(rpc, Resources())))
            assert (failure.code, failure.reason, failure.metadata) == (
                grpc.StatusCode.UNAUTHENTICATED, "CALLER_UNAUTHENTICATED", {}
            ), rpc
        reflection = reflection_pb2_grpc.ServerReflectionStub(identity.channel)
        stream = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), metadata=identity.metadata, timeout=10
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async for _ in stream:
                pass
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        health = await health_pb2_grpc.HealthStub(identity.channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_the_right_caller_can_call_every_rpc_and_reflection(deployment: Deployment) -> None:
    for rpc in RPCS:
        resources = await fresh_resources(rpc, deployment.right, deployment.wallet)
        await deployment.right.call(rpc, request_for(rpc, resources))
    stream = reflection_pb2_grpc.ServerReflectionStub(deployment.right.channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), metadata=deployment.right.metadata, timeout=10
    )
    services = [service.name async for answer in stream for service in answer.list_services_response.service]
    assert "broker_gateway.v1.BrokerGateway" in services


async def test_a_caller_without_the_permission_gets_only_what_it_holds(deployment: Deployment) -> None:
    forbidden = {"GetAccessToken": "tokens", "InvokeOperation": "operations"}
    for rpc in RPCS:
        resources = await fresh_resources(rpc, deployment.flow_only, deployment.wallet)
        if rpc in forbidden:
            failure = await expect_failure(deployment.flow_only.call(rpc, request_for(rpc, resources)))
            assert (failure.code, failure.reason, failure.metadata) == (
                grpc.StatusCode.PERMISSION_DENIED, "CALLER_FORBIDDEN", {"permission": forbidden[rpc]}
            )
        else:
            await deployment.flow_only.call(rpc, request_for(rpc, resources))


def same_answer(failure: Failure, expected: Failure, *, replace: tuple[str, str]) -> bool:
    """Whether two failures read the same once one id is written as the other."""
    old, new = replace
    return (failure.code, failure.reason, failure.message.replace(old, new), {
        key: value.replace(old, new) for key, value in failure.metadata.items()
    }) == (expected.code, expected.reason, expected.message, expected.metadata)


async def test_another_tenants_connections_and_states_are_as_if_they_did_not_exist(deployment: Deployment) -> None:
    owner, other = deployment.right, deployment.other_tenant
    absent = "conn_" + "x" * 16
    for rpc in ("Refresh", "Revoke", "GetUserInfo", "GetAccessToken", "InvokeOperation", "GetConnection", "DeleteConnection"):
        connection_id = (await connect(owner, deployment.wallet)).connection_id
        missing = await expect_failure(other.call(rpc, request_for(rpc, Resources(connection_id=absent))))
        foreign = await expect_failure(other.call(rpc, request_for(rpc, Resources(connection_id=connection_id))))
        assert (foreign.code, foreign.reason) == (grpc.StatusCode.NOT_FOUND, "CONNECTION_NOT_FOUND"), rpc
        assert same_answer(foreign, missing, replace=(connection_id, absent)), rpc
        assert (await owner.call("GetConnection", api.GetConnectionRequest(connection_id=connection_id))).connection.status == (
            connection_pb2.CONNECTION_STATUS_ACTIVE
        ), f"{rpc} by another tenant changed the connection"

    listed = await other.call("ListConnections", api.ListConnectionsRequest())
    assert list(listed.connections) == []
    assert len((await owner.call("ListConnections", api.ListConnectionsRequest())).connections) == 7

    callback = await authorize(owner, deployment.wallet, "carol")
    exchange = api.ExchangeRequest(state=callback["state"], code=callback["code"])
    stolen = await expect_failure(other.call("Exchange", exchange))
    assert (stolen.code, stolen.reason, stolen.metadata) == (
        grpc.StatusCode.FAILED_PRECONDITION, "AUTHZ_TRANSACTION_INVALID", {"cause": "unknown"}
    )
    assert (await owner.call("Exchange", exchange)).connection.status == connection_pb2.CONNECTION_STATUS_ACTIVE, (
        "the other tenant's attempt must not consume the state"
    )


async def test_a_sealed_token_moved_to_another_tenant_does_not_open(deployment: Deployment) -> None:
    connection = await connect(deployment.right, deployment.wallet)
    store = deployment.harness.application.gateway.store
    stored = await store.get_connection("acme", connection.connection_id)
    assert stored is not None
    assert await store.insert_connection(dataclasses.replace(stored, tenant="globex"))
    failure = await expect_failure(
        deployment.other_tenant.call("GetAccessToken", api.GetAccessTokenRequest(connection_id=connection.connection_id))
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.DATA_LOSS, "TOKEN_DECRYPT_FAILED")


async def test_a_watcher_sees_its_tenants_events_only_and_another_tenants_cursor_is_refused(deployment: Deployment) -> None:
    owner, other = deployment.right, deployment.other_tenant
    watch = api_grpc.BrokerGatewayStub(other.channel).WatchConnections(api.WatchConnectionsRequest(), metadata=other.metadata)
    opening = await watch.read()
    await connect(owner, deployment.wallet)
    await connect(other, deployment.wallet, "dave")
    created = await watch.read()
    watch.cancel()
    assert created.event.type == connection_event_pb2.CONNECTION_EVENT_TYPE_CREATED
    listed = await other.call("ListConnections", api.ListConnectionsRequest())
    assert [c.connection_id for c in listed.connections] == [created.event.connection.connection_id], "the other tenant's only"
    foreign = await expect_failure(owner.call("WatchConnections", api.WatchConnectionsRequest(after=opening.event.cursor)))
    assert (foreign.code, foreign.reason, foreign.metadata) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", {"field": "after"})
