"""Every RPC that calls an upstream, against an upstream that fails in each way it can
(docs/design/errors.md): what code, ErrorInfo reason and RetryInfo the caller gets, and what is left behind.

Why: callers decide from these alone whether to retry, wait, restart the flow or page an operator.
The upstream is real and on loopback: ``support.faulty_upstream`` sits in front of the wallet
simulator and answers 500, 503 with Retry-After, 429 with Retry-After, an HTML page, JSON of the wrong
shape, never, or with a reset, or stops listening. The OAuth RPCs use the generic-oauth2 provider;
InvokeOperation uses a two-operation test provider (a read declared safe_to_retry, and a write).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from broker_gateway.config import GatewaySettings, ProviderConfig
from broker_gateway.errors import ProviderResponseInvalid
from broker_gateway.oauth2 import raise_for_resource_error
from broker_gateway.provider import ConnectionCredentials, Grant, Operation, OperationAuth, Provider, hookimpl
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import connection_pb2
from broker_gateway_oauth2.provider import GenericOAuth2Provider
from broker_gateway_oauth2.sandbox import TOKEN_PATH, USERINFO_PATH
from conftest import (
    REDIRECT_URI,
    Failure,
    FakeClock,
    GatewayHarness,
    Wallet,
    connect_wallet,
    expect_failure,
    gateway_config,
    running_gateway,
)
from support.faulty_upstream import (
    BAD_ENCODING,
    GARBAGE,
    HANG,
    RATE_LIMITED,
    RESET,
    SERVER_ERROR,
    UNAVAILABLE_RETRY_AFTER,
    WRONG_SHAPE,
    Fault,
    FaultyUpstream,
    faulty_upstream,
)
from test_refresh_concurrency import live_refresh_token, stored_refresh_token
from test_server import retry_infos

REVOKE_PATH = "/oauth2/revoke"
#: Every call's deadline: longer than a detached refresh or exchange may take (UPSTREAM_BUDGET), even
#: retried once, so those end on their own budget, not on the caller's.
DEADLINE = 3.0
UPSTREAM_BUDGET = 0.8
EXPIRED = {"hours": 2, "minutes": 1}  # past the wallet's 2-hour access token
ACTIVE = connection_pb2.CONNECTION_STATUS_ACTIVE
REVOKED = connection_pb2.CONNECTION_STATUS_REVOKED


# -- a provider with a read and a write ------------------------------------------------------------


class OrdersProvider(Provider):
    """``quote`` reads (safe_to_retry), ``order`` writes; both POST to ``/ops/<name>`` and expect a
    JSON object with an ``id``, mapping HTTP failures with the core's standard helper."""

    type = "test-orders"

    def operations(self) -> Sequence[Operation]:
        return (
            Operation("quote", "A read.", OperationAuth.NONE, safe_to_retry=True),
            Operation("order", "A write.", OperationAuth.NONE),
        )

    async def invoke(
        self, operation: Operation, params: Mapping[str, Any], *, credentials: ConnectionCredentials | None, request_id: str
    ) -> Any:
        response = await self.context.http.request("POST", f"{self.settings['base_url']}/ops/{operation.name}")
        raise_for_resource_error(response, self.context.provider_id)
        body = response.json()
        if not isinstance(body, dict) or "id" not in body:
            raise ProviderResponseInvalid("the answer has no id", metadata={"provider": self.context.provider_id})
        return body


PLANTED = "planted-secret-in-a-bug-7f3a"


class ExplodingExchange(GenericOAuth2Provider):
    """The wallet's provider with a bug in its code exchange, whose text carries a secret; the bug
    surfaces after a second, when a caller with a short deadline has given up."""

    type = "test-exploding-exchange"

    async def exchange_code(self, code: str, **kwargs: Any) -> Grant:
        await asyncio.sleep(1.0)
        raise RuntimeError(PLANTED)


class Plugin:
    @hookimpl
    def broker_gateway_register_providers(self, register: Callable[[type[Provider]], None]) -> None:
        register(OrdersProvider)
        register(ExplodingExchange)


# -- the rig ---------------------------------------------------------------------------------------


@dataclass
class Rig:
    harness: GatewayHarness
    wallet: Wallet
    upstream: FaultyUpstream
    clock: FakeClock

    @property
    def stub(self) -> Any:
        return self.harness.stub

    async def connect(self) -> str:
        return (await connect_wallet(self.harness, self.wallet)).connection_id

    async def status_of(self, connection_id: str) -> int:
        response = await self.stub.GetConnection(api.GetConnectionRequest(connection_id=connection_id), timeout=5)
        return response.connection.status


@asynccontextmanager
async def rigged(
    tmp_path: Path, wallet: Wallet, clock: FakeClock, settings: GatewaySettings, wallet_type: str = "generic-oauth2"
) -> AsyncIterator[Rig]:
    """A gateway whose wallet token, userinfo and revocation endpoints, and ``orders`` provider, are
    behind a faulty upstream; the authorization page is the wallet's own."""
    async with faulty_upstream(wallet.base_url) as upstream:
        entry = wallet.provider_config(
            token_endpoint=upstream.base_url + TOKEN_PATH,
            userinfo_endpoint=upstream.base_url + USERINFO_PATH,
            revocation_endpoint=upstream.base_url + REVOKE_PATH,
        )
        orders = ProviderConfig("orders", OrdersProvider.type, (REDIRECT_URI,), {"base_url": upstream.base_url}, True)
        config = gateway_config(tmp_path, [dataclasses.replace(entry, type=wallet_type), orders], settings=settings)
        async with running_gateway(config, clock, extra_plugins=[Plugin()]) as harness:
            yield Rig(harness, wallet, upstream, clock)


@pytest.fixture
async def rig(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> AsyncIterator[Rig]:
    """Detached refreshes and exchanges get UPSTREAM_BUDGET, so they end before the caller's deadline."""
    async with rigged(tmp_path, wallet, clock, GatewaySettings(upstream_budget=UPSTREAM_BUDGET)) as made:
        yield made


@pytest.fixture
async def patient_rig(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> AsyncIterator[Rig]:
    """The default 15 s budget: a detached refresh or exchange outlives a short caller deadline."""
    async with rigged(tmp_path, wallet, clock, GatewaySettings()) as made:
        yield made


async def arm(upstream: FaultyUpstream, path: str, fault: Fault | None) -> None:
    """Make ``path`` fail with ``fault``; None stops the upstream listening (a refused port)."""
    upstream.received.clear()
    if fault is None:
        await upstream.refuse()
    else:
        upstream.faults[path] = fault


# -- the RPCs, each armed just before the call that meets the fault --------------------------------


@dataclass(frozen=True)
class Call:
    """An RPC run against an armed upstream: its outcome, and the connection it concerns (if any)."""

    outcome: Awaitable[Any]
    connection_id: str | None


async def exchange(rig: Rig, fault: Fault | None) -> Call:
    start = await rig.stub.Authorize(api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI), timeout=5)
    callback = await rig.wallet.approve(start.authorization_url, "alice")
    await arm(rig.upstream, TOKEN_PATH, fault)
    request = api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback)
    return Call(rig.stub.Exchange(request, timeout=DEADLINE), None)


async def refresh(rig: Rig, fault: Fault | None) -> Call:
    connection_id = await rig.connect()
    await arm(rig.upstream, TOKEN_PATH, fault)
    return Call(rig.stub.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=DEADLINE), connection_id)


async def access_token_due_for_refresh(rig: Rig, fault: Fault | None) -> Call:
    connection_id = await rig.connect()
    rig.clock.advance(**EXPIRED)
    await arm(rig.upstream, TOKEN_PATH, fault)
    request = api.GetAccessTokenRequest(connection_id=connection_id)
    return Call(rig.stub.GetAccessToken(request, timeout=DEADLINE), connection_id)


async def user_info(rig: Rig, fault: Fault | None) -> Call:
    connection_id = await rig.connect()
    await arm(rig.upstream, USERINFO_PATH, fault)
    return Call(rig.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection_id), timeout=DEADLINE), connection_id)


async def revoke(rig: Rig, fault: Fault | None) -> Call:
    connection_id = await rig.connect()
    await arm(rig.upstream, REVOKE_PATH, fault)
    return Call(rig.stub.Revoke(api.RevokeRequest(connection_id=connection_id), timeout=DEADLINE), connection_id)


def operation(name: str, request_id: str = "") -> Callable[[Rig, Fault | None], Awaitable[Call]]:
    async def invoke(rig: Rig, fault: Fault | None) -> Call:
        await arm(rig.upstream, f"/ops/{name}", fault)
        request = api.InvokeOperationRequest(provider="orders", operation=name, request_id=request_id)
        return Call(rig.stub.InvokeOperation(request, timeout=DEADLINE), None)

    return invoke


RPCS: dict[str, tuple[Callable[[Rig, Fault | None], Awaitable[Call]], str]] = {
    "Exchange": (exchange, TOKEN_PATH),
    "Refresh": (refresh, TOKEN_PATH),
    "GetAccessToken": (access_token_due_for_refresh, TOKEN_PATH),
    "GetUserInfo": (user_info, USERINFO_PATH),
    "Revoke": (revoke, REVOKE_PATH),
    "InvokeOperation-read": (operation("quote"), "/ops/quote"),
    "InvokeOperation-write": (operation("order", "order-1"), "/ops/order"),
}

FAULTS: dict[str, Fault | None] = {
    "500": SERVER_ERROR,
    "503-retry-after": UNAVAILABLE_RETRY_AFTER,
    "429-retry-after": RATE_LIMITED,
    "not-json": GARBAGE,
    "bad-encoding": BAD_ENCODING,
    "wrong-shape": WRONG_SHAPE,
    "hang": HANG,
    "reset": RESET,
    "refused": None,
}


# -- what each should give -------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """A failure's code and reason, and its RetryInfo delay in seconds: None for no RetryInfo, 0 for
    one of any positive delay."""

    code: grpc.StatusCode
    reason: str
    retry_delay: float | None


UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
SUCCEEDS = None
UNREACHABLE = Expect(UNAVAILABLE, "PROVIDER_UNAVAILABLE", 1.0)
HTTP_FAULTS: dict[str, Expect | None] = {
    "500": Expect(UNAVAILABLE, "PROVIDER_UNAVAILABLE", 1.0),
    "503-retry-after": Expect(UNAVAILABLE, "PROVIDER_UNAVAILABLE", 3.0),
    "429-retry-after": Expect(grpc.StatusCode.RESOURCE_EXHAUSTED, "PROVIDER_RATE_LIMITED", 7.0),
    "not-json": Expect(UNAVAILABLE, "PROVIDER_RESPONSE_INVALID", 1.0),
    "bad-encoding": Expect(UNAVAILABLE, "PROVIDER_RESPONSE_INVALID", 1.0),
    "wrong-shape": Expect(UNAVAILABLE, "PROVIDER_RESPONSE_INVALID", 1.0),
    "refused": UNREACHABLE,
}
#: A request that is safe to repeat and got no answer: just retry it.
LOST_AND_REPEATABLE = {"hang": UNREACHABLE, "reset": UNREACHABLE}
#: A refresh whose answer is lost is repeated once with the stored refresh token, then answers
#: UNAVAILABLE with the connection left ACTIVE.
LOST_REFRESH = {"hang": Expect(UNAVAILABLE, "PROVIDER_UNAVAILABLE", 0), "reset": Expect(UNAVAILABLE, "PROVIDER_UNAVAILABLE", 0)}

EXPECTED: dict[str, dict[str, Expect | None]] = {
    # A code works once: a lost answer means a new Authorize.
    "Exchange": {
        **HTTP_FAULTS,
        "hang": Expect(grpc.StatusCode.ABORTED, "AUTHORIZATION_EXCHANGE_UNKNOWN", None),
        "reset": Expect(grpc.StatusCode.ABORTED, "AUTHORIZATION_EXCHANGE_UNKNOWN", None),
    },
    "Refresh": {**HTTP_FAULTS, **LOST_REFRESH},
    "GetAccessToken": {**HTTP_FAULTS, **LOST_REFRESH},
    "GetUserInfo": {**HTTP_FAULTS, **LOST_AND_REPEATABLE},
    # RFC 7009: the body of a 200 is not read, and revoking again is harmless.
    "Revoke": {**HTTP_FAULTS, "not-json": SUCCEEDS, "wrong-shape": SUCCEEDS, **LOST_AND_REPEATABLE},
    "InvokeOperation-read": {**HTTP_FAULTS, **LOST_AND_REPEATABLE},
    # A write may have happened: check before repeating it.
    "InvokeOperation-write": {
        **HTTP_FAULTS,
        "hang": Expect(grpc.StatusCode.UNKNOWN, "OUTCOME_UNKNOWN", None),
        "reset": Expect(grpc.StatusCode.UNKNOWN, "OUTCOME_UNKNOWN", None),
    },
}


def matrix() -> list[Any]:
    rows = []
    for rpc, expected in EXPECTED.items():
        assert expected.keys() == FAULTS.keys(), rpc
        rows += [pytest.param(rpc, fault, id=f"{rpc}-{fault}") for fault in FAULTS]
    return rows


def assert_retry_delay(failure: Failure, expected: float | None) -> None:
    delays = [info.retry_delay.ToTimedelta().total_seconds() for info in retry_infos(failure)]
    if expected is None:
        assert delays == []
    elif expected == 0:
        assert len(delays) == 1 and delays[0] > 0
    else:
        assert delays == [expected]


@pytest.mark.parametrize(("rpc", "fault"), matrix())
async def test_upstream_fault(rig: Rig, rpc: str, fault: str) -> None:
    start, path = RPCS[rpc]
    call = await start(rig, FAULTS[fault])
    expected = EXPECTED[rpc][fault]
    if expected is SUCCEEDS:
        await call.outcome
    else:
        failure = await expect_failure(call.outcome)
        assert (failure.code, failure.reason) == (expected.code, expected.reason)
        assert_retry_delay(failure, expected.retry_delay)
    if FAULTS[fault] is not None:
        assert path in rig.upstream.received, "the fault was never met"
    if call.connection_id is not None:
        # Nothing but a successful revocation changes the connection: a failed refresh leaves it ACTIVE.
        expected_status = REVOKED if rpc == "Revoke" and expected is SUCCEEDS else ACTIVE
        assert await rig.status_of(call.connection_id) == expected_status


# -- callers that give up while a detached refresh or exchange goes on -----------------------------


SLOW_ANSWER = Fault(delay=2.0)  # the wallet acts at once; its answer arrives 2 s later
SHORT_DEADLINE = 1.0


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(200):
        if await condition():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"never happened: {what}")


async def test_a_caller_whose_deadline_ends_during_its_refresh_is_told_to_retry_and_the_refresh_is_stored(
    patient_rig: Rig,
) -> None:
    rig = patient_rig
    connection_id = await rig.connect()
    before = await stored_refresh_token(rig.harness, connection_id)
    await arm(rig.upstream, TOKEN_PATH, SLOW_ANSWER)

    failure = await expect_failure(rig.stub.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=SHORT_DEADLINE))
    assert (failure.code, failure.reason) == (UNAVAILABLE, "REFRESH_IN_PROGRESS")
    assert_retry_delay(failure, 0)

    async def stored() -> bool:
        return await stored_refresh_token(rig.harness, connection_id) != before

    await wait_for(stored, "the detached refresh stored its answer")
    assert await stored_refresh_token(rig.harness, connection_id) == live_refresh_token(rig.wallet)
    assert await rig.status_of(connection_id) == ACTIVE


async def test_a_caller_whose_deadline_ends_during_its_exchange_is_told_to_retry_and_the_connection_is_stored(
    patient_rig: Rig,
) -> None:
    rig = patient_rig
    start = await rig.stub.Authorize(api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI), timeout=5)
    callback = await rig.wallet.approve(start.authorization_url, "alice")
    await arm(rig.upstream, TOKEN_PATH, SLOW_ANSWER)
    request = api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback)

    failure = await expect_failure(rig.stub.Exchange(request, timeout=SHORT_DEADLINE))
    assert (failure.code, failure.reason) == (UNAVAILABLE, "REFRESH_IN_PROGRESS")
    assert_retry_delay(failure, 0)

    async def stored() -> bool:
        try:
            return await rig.status_of(start.connection_id) == ACTIVE
        except grpc.aio.AioRpcError as error:
            assert error.code() is grpc.StatusCode.NOT_FOUND
            return False

    await wait_for(stored, "the detached exchange stored the connection")
    token = await rig.stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=start.connection_id), timeout=5)
    assert rig.wallet.app.state.grants.lookup_access(token.access_token).ok


# -- detached failures are retrieved and logged ----------------------------------------------------


@pytest.fixture
async def loop_exceptions() -> AsyncIterator[list[dict[str, Any]]]:
    """What reaches the event loop's exception handler, where asyncio reports a task exception
    nobody retrieved."""
    seen: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: seen.append(context))
    yield seen
    loop.set_exception_handler(None)


async def settle(rig: Rig) -> None:
    """Let every detached task end, and collect what is left of them (where an unretrieved
    exception would be reported)."""
    await rig.harness.application.gateway.drain(timeout=10)
    gc.collect()
    await asyncio.sleep(0)


async def test_an_abandoned_exchange_that_fails_is_logged_not_left_unretrieved(
    patient_rig: Rig, loop_exceptions: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    rig = patient_rig
    caplog.set_level(logging.INFO)
    start = await rig.stub.Authorize(api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI), timeout=5)
    callback = await rig.wallet.approve(start.authorization_url, "alice")
    await arm(rig.upstream, TOKEN_PATH, dataclasses.replace(SERVER_ERROR, delay=1.5))
    code = callback.pop("code")
    request = api.ExchangeRequest(state=callback.pop("state"), code=code, callback_params=callback)

    failure = await expect_failure(rig.stub.Exchange(request, timeout=0.5))
    assert failure.reason == "REFRESH_IN_PROGRESS"
    await settle(rig)

    assert loop_exceptions == []
    assert not [record for record in caplog.records if "never retrieved" in record.getMessage()]
    (logged,) = [record for record in caplog.records if record.name == "broker_gateway.detached"]
    assert logged.levelno == logging.INFO and "PROVIDER_UNAVAILABLE" in logged.getMessage()
    assert all(code not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    ("deadline", "reason"), [(DEADLINE, "INTERNAL_ERROR"), (0.5, "REFRESH_IN_PROGRESS")], ids=["waited-for", "abandoned"]
)
async def test_an_unexpected_failure_of_a_detached_exchange_is_logged_once_with_its_traceback(
    tmp_path: Path,
    wallet: Wallet,
    clock: FakeClock,
    loop_exceptions: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    deadline: float,
    reason: str,
) -> None:
    async with rigged(tmp_path, wallet, clock, GatewaySettings(), wallet_type=ExplodingExchange.type) as rig:
        start = await rig.stub.Authorize(api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI), timeout=5)
        callback = await rig.wallet.approve(start.authorization_url, "alice")
        request = api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback)
        failure = await expect_failure(rig.stub.Exchange(request, timeout=deadline))
        await settle(rig)

    assert failure.reason == reason
    assert PLANTED not in failure.message
    assert all(PLANTED.encode() not in detail.value for detail in failure.details)

    assert loop_exceptions == []
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1, [record.getMessage() for record in errors]
    assert errors[0].exc_info is not None and PLANTED in str(errors[0].exc_info[1])
