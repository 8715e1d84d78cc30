"""The refresh algorithm (docs/design/refresh.md) against the wallet simulator, through gRPC.

The wallet rotates refresh tokens and rejects a spent one, so any duplicate refresh, lost rotation or
retried dead grant shows up as an upstream count or an invalid_grant (4.3 D and G2).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import grpc
import pytest
from broker_gateway.callers import DEFAULT_TENANT
from broker_gateway.config import GatewaySettings
from broker_gateway.sandbox import simkit
from broker_gateway.store.crypto import generate_key
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import connection_pb2
from broker_gateway_oauth2.sandbox import TOKEN_PATH, WalletClient, create_wallet_app
from conftest import (
    REDIRECT_URI,
    FakeClock,
    GatewayHarness,
    Wallet,
    connect_wallet,
    expect_failure,
    failure_of,
    running_gateway,
    serve_asgi,
)
from conftest import gateway_config as make_config
from google.rpc import error_details_pb2
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class TokenTap:
    """ASGI middleware in front of the wallet: records the refresh tokens presented to the token
    endpoint, can hold its answers back (after the wallet has acted, as a slow network would), and
    can lose them: the connection breaks mid-answer, so the gateway cannot tell whether the wallet
    acted."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None
        self.delay = 0.0
        self.refresh_tokens: list[str] = []
        #: Refresh answers to lose, in order: "unsent" (the wallet never saw the request) or "rotated"
        #: (the wallet rotated the token, then the answer was lost).
        self.lose: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != TOKEN_PATH:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        form = dict(parse_qsl(body.decode()))
        refresh = form.get("grant_type") == "refresh_token"
        if refresh:
            self.refresh_tokens.append(form.get("refresh_token", ""))
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def delayed_send(message: Message) -> None:
            if message["type"] == "http.response.start" and self.delay:
                await asyncio.sleep(self.delay)
            await send(message)

        if refresh and self.lose:
            await self._lose_answer(self.lose.pop(0), scope, replay, send)
            return
        await self.app(scope, replay, delayed_send)

    async def _lose_answer(self, how: str, scope: Scope, receive: Receive, send: Send) -> None:
        if how == "rotated":

            async def discard(message: Message) -> None:
                pass

            assert self.app is not None
            await self.app(scope, receive, discard)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"512")]})
        raise ConnectionResetError("the answer is lost")  # uvicorn drops the connection mid-answer


@pytest.fixture
def tap() -> TokenTap:
    return TokenTap()


@pytest.fixture
async def wallet(clock: FakeClock, tap: TokenTap) -> AsyncIterator[Wallet]:
    """The conftest wallet, served behind a TokenTap (overrides conftest's ``wallet`` in this module)."""
    client = WalletClient("wallet-client", "wallet-secret-" + generate_key()[:12], (REDIRECT_URI,))
    app = create_wallet_app([client], clock=clock.epoch)
    tap.app = app
    async with serve_asgi(tap) as (base_url, server, task):
        yield Wallet(base_url=base_url, app=app, server=server, task=task, client=client)


def refresh_records(wallet: Wallet) -> dict[str, simkit.Status | None]:
    """Every refresh token the wallet issued and why it is dead (None while live)."""
    return {token: record.dead for token, record in wallet.app.state.grants._refresh.items()}


def live_refresh_token(wallet: Wallet) -> str:
    (live,) = [token for token, dead in refresh_records(wallet).items() if dead is None]
    return live


def get_token(harness: GatewayHarness, connection_id: str, timeout: float = 10) -> grpc.aio.UnaryUnaryCall:
    return harness.stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection_id), timeout=timeout)


async def stored_refresh_token(harness: GatewayHarness, connection_id: str) -> str | None:
    gateway = harness.application.gateway
    stored = await gateway.store.get_connection(DEFAULT_TENANT, connection_id)
    assert stored is not None
    token: str | None = gateway.vault.open_tokens(stored).refresh_token
    return token


EXPIRED = {"hours": 2, "minutes": 1}  # past the wallet's 2-hour access token


async def test_concurrent_callers_at_expiry_share_one_refresh(
    wallet_gateway: GatewayHarness, wallet: Wallet, tap: TokenTap, clock: FakeClock
) -> None:
    connection_id = (await connect_wallet(wallet_gateway, wallet)).connection_id
    old = (await get_token(wallet_gateway, connection_id)).access_token
    clock.advance(**EXPIRED)
    tap.delay = 0.2  # keeps the refresh in flight while all 50 calls arrive
    responses = await asyncio.gather(*(get_token(wallet_gateway, connection_id) for _ in range(50)))
    tokens = {response.access_token for response in responses}
    assert len(tokens) == 1 and old not in tokens
    assert wallet.request_log.count("refresh_token") == 1
    assert len(tap.refresh_tokens) == 1
    assert await stored_refresh_token(wallet_gateway, connection_id) == live_refresh_token(wallet)


async def test_refresh_outliving_the_callers_deadline_persists(
    wallet_gateway: GatewayHarness, wallet: Wallet, tap: TokenTap, clock: FakeClock
) -> None:
    """4.3 G2: the caller gives up, the wallet has already rotated; the answer must still be stored,
    or the next refresh would present a spent token and kill the grant."""
    stub = wallet_gateway.stub
    connection = await connect_wallet(wallet_gateway, wallet)
    connection_id = connection.connection_id
    old = (await get_token(wallet_gateway, connection_id)).access_token
    clock.advance(**EXPIRED)
    tap.delay = 1.0

    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await get_token(wallet_gateway, connection_id, timeout=0.3)
    assert time.monotonic() - started < 0.9, "the caller was not held past its deadline"
    # Answered just before the deadline, with a reason and a delay, rather than a bare DEADLINE_EXCEEDED.
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert failure_of(caught.value).reason == "REFRESH_IN_PROGRESS"
    assert wallet.request_log.count("refresh_token") == 1

    # Wait, without calling GetAccessToken (which would join the refresh), until the store has it.
    before = connection.access_token_expire_time.ToDatetime()
    for _ in range(100):
        stored = (await stub.GetConnection(api.GetConnectionRequest(connection_id=connection_id), timeout=5)).connection
        if stored.access_token_expire_time.ToDatetime() > before:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the detached refresh never persisted")

    tap.delay = 0.0
    new = (await get_token(wallet_gateway, connection_id)).access_token
    assert new != old
    assert wallet.app.state.grants.lookup_access(new).ok, "the token stored is the one the wallet issued"
    assert wallet.request_log.count("refresh_token") == 1
    assert await stored_refresh_token(wallet_gateway, connection_id) == live_refresh_token(wallet)


@pytest.mark.parametrize("trigger", ["expiry", "refresh"])
async def test_invalid_grant_needs_reauthorization_and_is_not_retried(
    wallet_gateway: GatewayHarness, wallet: Wallet, clock: FakeClock, trigger: str
) -> None:
    stub = wallet_gateway.stub
    connection_id = (await connect_wallet(wallet_gateway, wallet)).connection_id
    assert wallet.app.state.grants.revoke(live_refresh_token(wallet))  # the user revoked the app at the wallet

    if trigger == "expiry":
        clock.advance(**EXPIRED)
        first = await expect_failure(get_token(wallet_gateway, connection_id))
    else:
        first = await expect_failure(stub.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=10))
    assert (first.code, first.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REAUTH_REQUIRED")
    assert first.metadata.get("upstream_code") == "invalid_grant"
    assert connection_id not in first.message and connection_id not in first.metadata.values()  # never echoed
    assert wallet.request_log.count("refresh_token") == 1

    got = (await stub.GetConnection(api.GetConnectionRequest(connection_id=connection_id), timeout=10)).connection
    assert got.status == connection_pb2.CONNECTION_STATUS_REAUTH_REQUIRED
    assert got.status_reason.startswith("REAUTH_REQUIRED") and "invalid_grant" in got.status_reason

    for call in (get_token(wallet_gateway, connection_id), stub.Refresh(api.RefreshRequest(connection_id=connection_id))):
        again = await expect_failure(call)
        assert (again.code, again.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REAUTH_REQUIRED")
    assert wallet.request_log.count("refresh_token") == 1, "a dead grant is never retried upstream"


async def test_rotated_refresh_token_is_never_used_twice(
    wallet_gateway: GatewayHarness, wallet: Wallet, tap: TokenTap, clock: FakeClock
) -> None:
    stub = wallet_gateway.stub
    connection_id = (await connect_wallet(wallet_gateway, wallet)).connection_id
    await stub.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=10)
    await stub.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=10)
    clock.advance(**EXPIRED)
    await get_token(wallet_gateway, connection_id)

    assert len(tap.refresh_tokens) == 3
    assert len(set(tap.refresh_tokens)) == 3, "a spent refresh token was presented again"
    records = refresh_records(wallet)
    assert set(tap.refresh_tokens) <= set(records)
    assert sorted(map(str, records.values())) == sorted(["None", *[str(simkit.Status.USED)] * 3]), "nothing revoked"
    assert await stored_refresh_token(wallet_gateway, connection_id) == live_refresh_token(wallet)


async def test_two_gateways_sharing_a_store_refresh_once(
    tmp_path: Path, wallet: Wallet, tap: TokenTap, clock: FakeClock
) -> None:
    """Two gateway instances on one SQLite file (same keyring): the lease plus the re-read after taking
    it make the second instance use the first one's refresh instead of spending the token again."""
    config = make_config(tmp_path, [wallet.provider_config()])
    async with running_gateway(config, clock) as one, running_gateway(config, clock) as two:
        connection_id = (await connect_wallet(one, wallet)).connection_id
        old = (await get_token(two, connection_id)).access_token
        clock.advance(**EXPIRED)
        tap.delay = 0.2
        responses = await asyncio.gather(
            *(get_token(harness, connection_id) for _ in range(25) for harness in (one, two))
        )
        tokens = {response.access_token for response in responses}
        assert len(responses) == 50
        assert len(tokens) == 1 and old not in tokens
        assert wallet.request_log.count("refresh_token") == 1
        assert len(tap.refresh_tokens) == 1
        assert simkit.Status.REVOKED not in refresh_records(wallet).values()
        assert await stored_refresh_token(two, connection_id) == live_refresh_token(wallet)


def refresh(harness: GatewayHarness, connection_id: str) -> grpc.aio.UnaryUnaryCall:
    return harness.stub.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=10)


async def connection_status(harness: GatewayHarness, connection_id: str) -> int:
    request = api.GetConnectionRequest(connection_id=connection_id)
    return (await harness.stub.GetConnection(request, timeout=10)).connection.status


async def test_refresh_whose_answer_was_lost_is_sent_once_more_with_the_same_token(
    wallet_gateway: GatewayHarness, wallet: Wallet, tap: TokenTap
) -> None:
    """The request may never have reached the wallet: one repeat with the stored token saves the grant."""
    connection_id = (await connect_wallet(wallet_gateway, wallet)).connection_id
    tap.lose = ["unsent"]
    await refresh(wallet_gateway, connection_id)
    first, repeated = tap.refresh_tokens
    assert first == repeated
    assert wallet.request_log.count("refresh_token") == 1
    assert await stored_refresh_token(wallet_gateway, connection_id) == live_refresh_token(wallet)


async def test_refresh_whose_lost_answer_rotated_the_token_needs_reauthorization(
    wallet_gateway: GatewayHarness, wallet: Wallet, tap: TokenTap
) -> None:
    """With strict rotation the repeat gets invalid_grant: the grant is gone, and only then REAUTH_REQUIRED."""
    connection_id = (await connect_wallet(wallet_gateway, wallet)).connection_id
    tap.lose = ["rotated"]
    failure = await expect_failure(refresh(wallet_gateway, connection_id))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REAUTH_REQUIRED")
    first, repeated = tap.refresh_tokens
    assert first == repeated
    assert await connection_status(wallet_gateway, connection_id) == connection_pb2.CONNECTION_STATUS_REAUTH_REQUIRED


async def test_refresh_lost_twice_is_unavailable_and_keeps_the_connection_active(
    wallet_gateway: GatewayHarness, wallet: Wallet, tap: TokenTap
) -> None:
    """No loop and no verdict on an unknown outcome: the caller retries later, and the next refresh
    presents the stored token again."""
    connection_id = (await connect_wallet(wallet_gateway, wallet)).connection_id
    tap.lose = ["unsent", "unsent"]
    failure = await expect_failure(refresh(wallet_gateway, connection_id))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE")
    assert any(detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for detail in failure.details)
    assert len(tap.refresh_tokens) == 2, "one repeat, not a loop"
    assert await connection_status(wallet_gateway, connection_id) == connection_pb2.CONNECTION_STATUS_ACTIVE

    await refresh(wallet_gateway, connection_id)
    assert len(set(tap.refresh_tokens)) == 1, "the stored token was presented again"
    assert await stored_refresh_token(wallet_gateway, connection_id) == live_refresh_token(wallet)


async def test_a_refresh_outlasting_the_lease_ttl_keeps_its_lease(tmp_path: Path, wallet: Wallet, tap: TokenTap) -> None:
    """The lease is renewed while its refresh runs: a second instance waits for it instead of taking a
    lapsed lease and spending the same refresh token (which the wallet would refuse, killing the grant)."""
    settings = GatewaySettings(lease_ttl=timedelta(seconds=0.6))
    config = make_config(tmp_path, [wallet.provider_config()], settings=settings)
    async with running_gateway(config) as one, running_gateway(config) as two:
        connection_id = (await connect_wallet(one, wallet)).connection_id
        tap.delay = 2.0  # over three TTLs
        first = asyncio.ensure_future(refresh(one, connection_id))
        while not tap.refresh_tokens:
            await asyncio.sleep(0.01)
        await refresh(two, connection_id)  # waits for one's lease, then finds the refreshed connection
        await first
        assert len(tap.refresh_tokens) == 1
        assert await connection_status(two, connection_id) == connection_pb2.CONNECTION_STATUS_ACTIVE
        assert await stored_refresh_token(two, connection_id) == live_refresh_token(wallet)
