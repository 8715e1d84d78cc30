"""The cache of opened token sets (token_cache.py) never serves a token that a refresh, revoke or delete
superseded: in one process, across two ``broker-gateway serve`` processes sharing one SQLite file, and
across two on one PostgreSQL database, whichever of them made the change.

Why: the cache keeps a connection's opened tokens between calls and trusts them only while the store
confirms the row's stamp (seq, version). A stamp check that missed a write would hand callers a
refreshed-away or revoked token, and a connection deleted and made again under the same id starts at
version 1 again, so only its new seq tells it apart.

Each scenario reads through ``reader`` (whose cache is under test) and changes the connection through
``writer`` (the same gateway, or the other process), checking after each change that ``reader`` answers
what the store now holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from broker_gateway.store.base import Stamp, Store
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import broker_gateway_service_pb2_grpc as api_grpc
from broker_gateway_oauth2.sandbox import WalletClient, create_wallet_app
from conftest import REDIRECT_URI, GatewayHarness, Wallet, connect_wallet, expect_failure, serve_asgi
from support.postgres import PostgresServer
from test_refresh_crash import Served, serve, write_config


class Via:
    """What ``connect_wallet`` needs of a gateway: a stub."""

    def __init__(self, stub: api_grpc.BrokerGatewayStub) -> None:
        self.stub = stub


async def token(stub: api_grpc.BrokerGatewayStub, connection_id: str) -> str:
    return (await stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection_id), timeout=30)).access_token


async def connect(stub: api_grpc.BrokerGatewayStub, wallet: Wallet, user: str, connection_id: str = "") -> str:
    connection = await connect_wallet(Via(stub), wallet, user, connection_id=connection_id)  # type: ignore[arg-type]
    return connection.connection_id


async def refresh_revoke_delete(reader: api_grpc.BrokerGatewayStub, writer: api_grpc.BrokerGatewayStub, wallet: Wallet) -> None:
    """Every change ``writer`` makes is what ``reader`` serves next, with ``reader`` having the
    connection's tokens cached before each change."""
    connection_id = await connect(writer, wallet, "alice")
    first = await token(reader, connection_id)
    assert await token(reader, connection_id) == first  # served again from the cache
    assert wallet.app.state.grants.lookup_access(first).ok

    await writer.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=30)
    refreshed = await token(writer, connection_id)
    assert refreshed != first
    assert await token(reader, connection_id) == refreshed, "the reader served a token the refresh superseded"

    await reader.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=30)
    again = await token(reader, connection_id)
    assert again not in (first, refreshed)
    assert await token(writer, connection_id) == again, "the writer served a token the reader's refresh superseded"

    await writer.Revoke(api.RevokeRequest(connection_id=connection_id), timeout=30)
    revoked = await expect_failure(reader.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection_id), timeout=30))
    assert revoked.code is grpc.StatusCode.FAILED_PRECONDITION, "the reader served a revoked connection's token"
    assert revoked == await expect_failure(writer.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection_id), timeout=30))

    await connect(writer, wallet, "alice", connection_id)  # authorized again: the same row, a new version
    renewed = await token(writer, connection_id)
    assert await token(reader, connection_id) == renewed

    await writer.DeleteConnection(api.DeleteConnectionRequest(connection_id=connection_id), timeout=30)
    deleted = await expect_failure(reader.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection_id), timeout=30))
    assert deleted.code is grpc.StatusCode.NOT_FOUND, "the reader served a deleted connection's token"


async def delete_then_make_again(reader: api_grpc.BrokerGatewayStub, writer: api_grpc.BrokerGatewayStub, wallet: Wallet) -> None:
    """A connection deleted and made again under its id starts at version 1 again, as the cached one
    was: the reader still serves the new connection's token, not the deleted one's."""
    connection_id = await connect(writer, wallet, "bob")
    old = await token(reader, connection_id)
    await writer.DeleteConnection(api.DeleteConnectionRequest(connection_id=connection_id), timeout=30)
    await connect(writer, wallet, "carol", connection_id)
    new = await token(writer, connection_id)
    assert new != old
    assert await token(reader, connection_id) == new, "the reader served the deleted connection's token"


class CountingStore:
    """The gateway's real store, counting the full reads and the stamp reads made through it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.full_reads = 0
        self.stamp_reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def get_connection(self, tenant: str, connection_id: str) -> Any:
        self.full_reads += 1
        return await self.store.get_connection(tenant, connection_id)

    async def connection_stamp(self, tenant: str, connection_id: str) -> Stamp | None:
        self.stamp_reads += 1
        return await self.store.connection_stamp(tenant, connection_id)


async def test_in_one_process_a_cached_token_is_checked_against_the_store_and_never_superseded(
    wallet_gateway: GatewayHarness, wallet: Wallet
) -> None:
    gateway = wallet_gateway.application.gateway
    counting = CountingStore(gateway.store)
    gateway.store = counting
    stub = wallet_gateway.stub
    connection_id = await connect(stub, wallet, "dave")
    first = await token(stub, connection_id)
    full_reads, stamp_reads = counting.full_reads, counting.stamp_reads
    for _ in range(5):
        assert await token(stub, connection_id) == first
    assert (counting.full_reads - full_reads, counting.stamp_reads - stamp_reads) == (0, 5), (
        "a cached token is served after a stamp read, without reading the row again"
    )
    await refresh_revoke_delete(stub, stub, wallet)
    await delete_then_make_again(stub, stub, wallet)


@pytest.fixture
async def real_clock_wallet() -> AsyncIterator[Wallet]:
    """The wallet on the real clock, which ``serve`` processes read."""
    client = WalletClient("wallet-client", "wallet-secret", (REDIRECT_URI,))
    app = create_wallet_app([client])
    async with serve_asgi(app) as (base_url, server, task):
        yield Wallet(base_url=base_url, app=app, server=server, task=task, client=client)


async def two_processes(tmp_path: Path, wallet: Wallet, store: str) -> list[Served]:
    config = write_config(tmp_path, wallet, store)
    return [await serve(config, tmp_path / f"serve-{index}.log") for index in range(2)]


async def check_across_processes(processes: list[Served], wallet: Wallet) -> None:
    try:
        one, two = (process.stub for process in processes)
        await refresh_revoke_delete(one, two, wallet)
        await refresh_revoke_delete(two, one, wallet)
        await delete_then_make_again(one, two, wallet)
    finally:
        for process in processes:
            process.process.kill()
            process.process.wait()
            await process.channel.close()


async def test_two_processes_on_one_sqlite_file_never_serve_a_token_the_other_superseded(
    tmp_path: Path, real_clock_wallet: Wallet
) -> None:
    await check_across_processes(await two_processes(tmp_path, real_clock_wallet, 'path = "gateway.db"'), real_clock_wallet)


async def test_two_processes_on_one_postgresql_never_serve_a_token_the_other_superseded(
    tmp_path: Path, real_clock_wallet: Wallet, postgres_server: PostgresServer
) -> None:
    store = f'url = "{await postgres_server.migrated_database()}"'
    await check_across_processes(await two_processes(tmp_path, real_clock_wallet, store), real_clock_wallet)
