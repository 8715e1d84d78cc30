"""Authorize is bounded: beyond a limit of pending authorizations, per tenant and in all, it answers
RESOURCE_EXHAUSTED with a RetryInfo and stores nothing; once rows expire it works again.

Why: Authorize is unauthenticated and leaves a row for ten minutes; unbounded, a flood of calls fills
the disk (issue 11, defect 6). The counts live in memory (pending_budget.py), so these tests also show
they follow the store: after expiry, and when another process changes the rows.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from broker_gateway import server as server_module
from broker_gateway.app import Application, build_application
from broker_gateway.config import Config, GatewaySettings, parse_config
from broker_gateway.errors import ConfigError, TooManyPendingAuthorizations
from broker_gateway.gateway import AuthorizationStart, Gateway
from broker_gateway.pending_budget import MIN_RETRY_AFTER, RECOUNT_INTERVAL
from broker_gateway.store.crypto import generate_key
from broker_gateway.store.sqlite import SQLiteStore
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from conftest import REDIRECT_URI, FakeClock, GatewayHarness, Wallet, expect_failure, gateway_config, running_gateway
from test_server import retry_infos


def limits(total: int, per_tenant: int) -> GatewaySettings:
    return GatewaySettings(max_pending_authorizations=total, max_pending_authorizations_per_tenant=per_tenant)


def stored_rows(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        return db.execute("SELECT count(*) FROM pending_authorizations").fetchone()[0]


async def authorize(gateway: Gateway, tenant: str) -> AuthorizationStart:
    return await gateway.authorize(
        tenant, provider_id="wallet", redirect_uri=REDIRECT_URI, scopes=(), connection_id="", extra_params={}
    )


async def authorize_call(harness: GatewayHarness) -> api.AuthorizeResponse:
    return await harness.stub.Authorize(api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI), timeout=10)


@pytest.fixture
async def bounded(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> AsyncIterator[Application]:
    """A gateway, driven directly, that holds at most 5 pending authorizations, 3 per tenant."""
    config = gateway_config(tmp_path, [wallet.provider_config()], settings=limits(total=5, per_tenant=3))
    application = await build_application(config, clock=clock.now)
    yield application
    await application.close()


async def test_a_tenant_at_its_limit_is_refused_while_the_gateway_has_room(bounded: Application, tmp_path: Path) -> None:
    gateway = bounded.gateway
    for _ in range(3):
        await authorize(gateway, "tenant-a")
    with pytest.raises(TooManyPendingAuthorizations) as refused:
        await authorize(gateway, "tenant-a")
    assert refused.value.metadata == {"limit": "3"}
    assert stored_rows(tmp_path) == 3, "a refused Authorize stores nothing"
    await authorize(gateway, "tenant-b")  # another tenant is not held back by tenant-a's limit


async def test_the_total_limit_holds_across_tenants_below_their_own(bounded: Application, tmp_path: Path) -> None:
    gateway = bounded.gateway
    for tenant in ("tenant-a", "tenant-a", "tenant-b", "tenant-b", "tenant-c"):
        await authorize(gateway, tenant)
    with pytest.raises(TooManyPendingAuthorizations) as refused:
        await authorize(gateway, "tenant-d")  # a tenant with none of its own
    assert refused.value.metadata == {"limit": "5"}
    assert stored_rows(tmp_path) == 5


async def test_authorize_works_again_once_the_pending_rows_expire(
    bounded: Application, clock: FakeClock, tmp_path: Path
) -> None:
    gateway = bounded.gateway
    for _ in range(3):
        await authorize(gateway, "tenant-a")
    with pytest.raises(TooManyPendingAuthorizations):
        await authorize(gateway, "tenant-a")
    clock.advance(seconds=(gateway.settings.state_ttl + RECOUNT_INTERVAL).total_seconds())
    await authorize(gateway, "tenant-a")
    assert stored_rows(tmp_path) == 1, "the expired rows were purged"


async def test_rows_another_process_added_count_from_the_next_recount(
    bounded: Application, tmp_path: Path, wallet: Wallet, clock: FakeClock
) -> None:
    other = await build_application(bounded.config, clock=clock.now)  # the same store and keys: another process
    try:
        await authorize(bounded.gateway, "tenant-a")  # counted here: 1 of 3
        for _ in range(2):
            await authorize(other.gateway, "tenant-a")
        await bounded.gateway.pending_budget.recount()
        with pytest.raises(TooManyPendingAuthorizations):
            await authorize(bounded.gateway, "tenant-a")
    finally:
        await other.close()


async def test_over_grpc_the_refusal_is_resource_exhausted_with_retry_info(
    tmp_path: Path, wallet: Wallet, clock: FakeClock
) -> None:
    config = gateway_config(tmp_path, [wallet.provider_config()], settings=limits(total=100, per_tenant=2))
    async with running_gateway(config, clock) as harness:
        for _ in range(2):
            await authorize_call(harness)
        failure = await expect_failure(authorize_call(harness))
        assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_PENDING_AUTHORIZATIONS")
        assert failure.metadata == {"limit": "2"}
        [retry] = retry_infos(failure)
        delay = retry.retry_delay.ToTimedelta()
        assert timedelta(seconds=MIN_RETRY_AFTER) <= delay <= RECOUNT_INTERVAL
        assert stored_rows(tmp_path) == 2


async def test_the_server_recounts_so_rows_removed_elsewhere_free_the_budget(
    tmp_path: Path, wallet: Wallet, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the server's periodic recount can notice: the clock stands still, so no refused call may
    recount by itself."""
    monkeypatch.setattr(server_module, "PENDING_RECOUNT_INTERVAL", 0.1)
    config = gateway_config(tmp_path, [wallet.provider_config()], settings=limits(total=100, per_tenant=2))
    async with running_gateway(config, clock) as harness:
        for _ in range(2):
            await authorize_call(harness)
        await expect_failure(authorize_call(harness))
        elsewhere = SQLiteStore(tmp_path / "gateway.db")
        try:
            assert await elsewhere.purge_pending(clock.now() + timedelta(days=1)) == 2
        finally:
            await elsewhere.close()
        await until_authorize_succeeds(harness)


async def until_authorize_succeeds(harness: GatewayHarness, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.1)):
        try:
            await authorize_call(harness)
            return
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        await asyncio.sleep(0.1)
    raise AssertionError(f"Authorize was still refused after {timeout} s")


# -- configuration ---------------------------------------------------------------------------------


def config_with(limits_table: dict[str, object]) -> Config:
    return parse_config({"limits": limits_table, "encryption": {"keys": [{"id": "k1", "key": generate_key()}]}})


def test_limits_are_read_from_the_limits_table() -> None:
    config = config_with({"max_pending_authorizations": 50, "max_pending_authorizations_per_tenant": 7})
    assert (config.gateway.max_pending_authorizations, config.gateway.max_pending_authorizations_per_tenant) == (50, 7)


def test_limits_default_to_a_hundred_thousand_and_ten_thousand_per_tenant() -> None:
    settings = config_with({}).gateway
    assert (settings.max_pending_authorizations, settings.max_pending_authorizations_per_tenant) == (100_000, 10_000)


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "100"])
def test_limits_must_be_positive_integers(value: object) -> None:
    with pytest.raises(ConfigError) as refused:
        config_with({"max_pending_authorizations": value, "max_pending_authorizations_per_tenant": value})
    assert refused.value.problems == [
        "limits.max_pending_authorizations: expected a positive integer",
        "limits.max_pending_authorizations_per_tenant: expected a positive integer",
    ]
