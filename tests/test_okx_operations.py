"""Every documented parameter rule of the OKX operations, and their rate limits, through gRPC.

A rule broken is INVALID_ARGUMENT naming the parameter (``params.<name>``; only ``params`` for a key the
operation does not define, which is never repeated), with a message that never echoes the value, and
nothing reaches the simulator. A burst past an endpoint's documented limit is
RESOURCE_EXHAUSTED with a RetryInfo from the gateway itself: the simulator, which enforces the same
limits, never has to answer 50011.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from broker_gateway.ratelimit import RateLimiter
from conftest import FakeClock, GatewayHarness, expect_failure, failure_of
from google.rpc import error_details_pb2
from test_okx_harness import Okx, connect, invocation, invoke, okx, okx_gateway, okx_gateway_for, serve_okx  # noqa: F401

KEY = {"subAcct": "brokerTest1", "label": "gw", "passphrase": "Passw0rd!"}
ADDRESS = {"subAcct": "brokerTest1", "ccy": "BTC"}
MODIFY = {"subAcct": "brokerTest1", "ccy": "USDT", "addr": "0xabc", "to": "18"}
ORDER = {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit", "sz": "0.01", "px": "30000"}
FAST_KEY = {"label": "bot", "passphrase": "Fast-Api-9x", "perm": "trade"}
TWENTY_ONE_IPS = ",".join(f"10.0.0.{i}" for i in range(1, 22))
TWENTY_IPS = ",".join(f"10.0.0.{i}" for i in range(1, 21))
TWENTY_ONE_CCYS = ",".join(f"C{i}" for i in range(21))


def without(params: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != name}


# (operation, params, the parameter named)
RULES: list[tuple[str, dict[str, Any], str]] = [
    # subAcct: 6-20 letters and digits
    ("dma.list_subaccounts", {"subAcct": "brk01"}, "subAcct"),
    ("dma.list_subaccounts", {"subAcct": "broker_test1"}, "subAcct"),
    ("dma.list_subaccounts", {"subAcct": "broker test1"}, "subAcct"),
    ("dma.list_subaccounts", {"subAcct": "b" * 21}, "subAcct"),
    ("dma.list_subaccounts", {"uid": "12ab"}, "uid"),
    ("dma.list_subaccounts", {"page": "0"}, "page"),
    # limit: at most 100, a string
    ("dma.list_subaccounts", {"limit": "101"}, "limit"),
    ("dma.list_subaccounts", {"limit": "0"}, "limit"),
    ("dma.list_subaccounts", {"limit": 10}, "limit"),
    ("dma.get_subaccount_trade_fee", {"limit": "1000"}, "limit"),
    ("dma.get_subaccount_trade_fee", {"subAcct": "x"}, "subAcct"),
    ("dma.list_subaccounts", {"unknown": "1"}, ""),  # "": a key no schema defines, not repeated
    # create a sub-account API key: required fields, label, passphrase, ip, perm
    ("dma.create_subaccount_api_key", without(KEY, "subAcct"), "subAcct"),
    ("dma.create_subaccount_api_key", without(KEY, "label"), "label"),
    ("dma.create_subaccount_api_key", without(KEY, "passphrase"), "passphrase"),
    ("dma.create_subaccount_api_key", {**KEY, "subAcct": "sub-account-1"}, "subAcct"),
    ("dma.create_subaccount_api_key", {**KEY, "label": "l" * 51}, "label"),
    ("dma.create_subaccount_api_key", {**KEY, "label": "my-label"}, "label"),
    ("dma.create_subaccount_api_key", {**KEY, "passphrase": "Pa0rd!x"}, "passphrase"),  # 7 characters
    ("dma.create_subaccount_api_key", {**KEY, "passphrase": "Passw0rd!" + "x" * 24}, "passphrase"),  # 33
    ("dma.create_subaccount_api_key", {**KEY, "passphrase": "Password!"}, "passphrase"),  # no digit
    ("dma.create_subaccount_api_key", {**KEY, "passphrase": "passw0rd!"}, "passphrase"),  # no upper case
    ("dma.create_subaccount_api_key", {**KEY, "passphrase": "PASSW0RD!"}, "passphrase"),  # no lower case
    ("dma.create_subaccount_api_key", {**KEY, "passphrase": "Passw0rd1"}, "passphrase"),  # no special
    ("dma.create_subaccount_api_key", {**KEY, "passphrase": "Pass w0rd!"}, "passphrase"),  # a space
    ("dma.create_subaccount_api_key", {**KEY, "ip": TWENTY_ONE_IPS}, "ip"),
    ("dma.create_subaccount_api_key", {**KEY, "ip": "10.0.0.256"}, "ip"),
    ("dma.create_subaccount_api_key", {**KEY, "ip": "10.0.0.1;10.0.0.2"}, "ip"),
    ("dma.create_subaccount_api_key", {**KEY, "perm": "read_only,admin"}, "perm"),
    ("dma.create_subaccount_api_key", {**KEY, "perm": "Trade"}, "perm"),
    ("dma.get_subaccount_api_key", {}, "subAcct"),
    ("dma.get_subaccount_api_key", {"subAcct": "brokerTest1", "apiKey": "not a key!"}, "apiKey"),
    # account level 1-4
    ("dma.set_subaccount_level", {"subAcct": "brokerTest1", "acctLv": "5"}, "acctLv"),
    ("dma.set_subaccount_level", {"subAcct": "brokerTest1", "acctLv": "0"}, "acctLv"),
    ("dma.set_subaccount_level", {"subAcct": "brokerTest1", "acctLv": 3}, "acctLv"),
    ("dma.set_subaccount_level", {"subAcct": "brokerTest1"}, "acctLv"),
    # deposit addresses: upper-case ccy, to 6 or 18, addrType 1 or 2 (2 only for BTC and LTC)
    ("dma.create_deposit_address", without(ADDRESS, "ccy"), "ccy"),
    ("dma.create_deposit_address", {**ADDRESS, "ccy": "btc"}, "ccy"),
    ("dma.create_deposit_address", {**ADDRESS, "to": "7"}, "to"),
    ("dma.create_deposit_address", {**ADDRESS, "addrType": "3"}, "addrType"),
    ("dma.create_deposit_address", {**ADDRESS, "ccy": "USDT", "addrType": "2"}, "addrType"),
    ("dma.create_deposit_address", {**ADDRESS, "chain": "USDT ERC20 ###"}, "chain"),
    ("dma.modify_deposit_address", without(MODIFY, "addr"), "addr"),
    ("dma.modify_deposit_address", without(MODIFY, "to"), "to"),
    ("dma.modify_deposit_address", {**MODIFY, "to": "12"}, "to"),
    ("dma.modify_deposit_address", {**MODIFY, "ccy": "Usdt"}, "ccy"),
    ("dma.get_deposit_address", {"subAcct": "brokerTest1"}, "ccy"),
    ("dma.get_deposit_address", {"subAcct": "brokerTest1", "ccy": "eth"}, "ccy"),
    # deposit history
    ("dma.get_deposit_history", {"type": "5"}, "type"),
    ("dma.get_deposit_history", {"state": "3"}, "state"),
    ("dma.get_deposit_history", {"limit": "200"}, "limit"),
    ("dma.get_deposit_history", {"after": "yesterday"}, "after"),
    ("dma.get_deposit_history", {"before": "16000000000000"}, "before"),
    ("dma.get_deposit_history", {"ccy": "usdt"}, "ccy"),
    # link dates: type true/false, YYYYMMDD, begin and end required when type is false
    ("dma.get_rebate_download_link", {}, "type"),
    ("dma.get_rebate_download_link", {"type": "yes"}, "type"),
    ("dma.get_rebate_download_link", {"type": True}, "type"),
    ("dma.get_rebate_download_link", {"type": "false", "end": "20240131"}, "begin"),
    ("dma.get_rebate_download_link", {"type": "false", "begin": "2024-01-01", "end": "20240131"}, "begin"),
    ("dma.get_rebate_download_link", {"type": "false", "begin": "20241301", "end": "20241231"}, "begin"),
    ("dma.create_trades_link", {"begin": "20240101"}, "end"),
    ("dma.create_trades_link", {"begin": "20240101", "end": "2024011"}, "end"),
    ("fd.get_rebate_download_link", {"type": "false", "begin": "20240101"}, "end"),
    ("fd.get_rebate_download_link", {"type": "true", "brokerType": "both"}, "brokerType"),
    ("fd.create_rebate_download_link", {"end": "20240131"}, "begin"),
    ("fd.create_rebate_download_link", {"begin": "20240101", "end": "20240131", "brokerType": "API"}, "brokerType"),
    ("fd.get_rebate_info", {}, "apiKey"),
    ("fd.get_rebate_info", {"apiKey": "key with spaces"}, "apiKey"),
    # Fast API
    ("fastapi.create_api_key", without(FAST_KEY, "label"), "label"),
    ("fastapi.create_api_key", without(FAST_KEY, "perm"), "perm"),
    ("fastapi.create_api_key", {**FAST_KEY, "perm": "withdraw"}, "perm"),
    ("fastapi.create_api_key", {**FAST_KEY, "passphrase": "weakpass"}, "passphrase"),
    ("fastapi.create_api_key", {**FAST_KEY, "bindApp": "true"}, "bindApp"),
    ("fastapi.create_api_key", {**FAST_KEY, "ip": TWENTY_ONE_IPS}, "ip"),
    ("fastapi.delete_api_key", {"apiKey": "k"}, ""),
    # balance and orders
    ("account.get_balance", {"ccy": "btc"}, "ccy"),
    ("account.get_balance", {"ccy": TWENTY_ONE_CCYS}, "ccy"),
    ("trade.place_order", without(ORDER, "instId"), "instId"),
    ("trade.place_order", without(ORDER, "sz"), "sz"),
    ("trade.place_order", without(ORDER, "px"), "px"),  # a limit order needs a price
    ("trade.place_order", {**ORDER, "instId": "btc-usdt"}, "instId"),
    ("trade.place_order", {**ORDER, "side": "hold"}, "side"),
    ("trade.place_order", {**ORDER, "ordType": "stop"}, "ordType"),
    ("trade.place_order", {**ORDER, "tdMode": "margin"}, "tdMode"),
    ("trade.place_order", {**ORDER, "sz": "1e3"}, "sz"),
    ("trade.place_order", {**ORDER, "sz": 1}, "sz"),
    ("trade.place_order", {**ORDER, "tag": "SomeoneElse"}, "tag"),
    ("trade.place_order", {**ORDER, "clOrdId": "mine"}, ""),  # the request_id is the clOrdId
]


def rule_id(rule: tuple[str, dict[str, Any], str]) -> str:
    return f"{rule[0]}-{rule[2]}-{RULES.index(rule)}"


@pytest.fixture(scope="module")
async def rules_gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[GatewayHarness, Okx]]:
    """One gateway for every rule: none of them may send anything, so they cannot disturb each other."""
    clock = FakeClock()
    async with serve_okx(clock) as upstream, okx_gateway_for(tmp_path_factory.mktemp("okx-rules"), upstream, clock) as harness:
        yield harness, upstream


@pytest.mark.parametrize(("operation", "params", "name"), RULES, ids=[rule_id(r) for r in RULES])
async def test_a_broken_rule_is_invalid_argument_naming_the_parameter(
    rules_gateway: tuple[GatewayHarness, Okx], operation: str, params: dict[str, Any], name: str
) -> None:
    harness, okx = rules_gateway
    request = invocation(operation, params, connection_id="conn_any", request_id="r-1")
    failure = await expect_failure(harness.stub.InvokeOperation(request, timeout=10))
    field = f"params.{name}" if name else "params"
    assert (failure.code, failure.reason, failure.metadata["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", field)
    value = params.get(name)
    if isinstance(value, str) and len(value) > 3:
        assert value not in failure.message
    assert okx.request_log.count() == 0


async def test_the_valid_edges_pass(okx_gateway: GatewayHarness, okx: Okx) -> None:
    """The limits themselves are allowed: 20 IPs, a 50-character label, 8- and 32-character passphrases."""
    for index, (label, passphrase) in enumerate([("l" * 50, "Pa0rd!xy"), ("gw", "Passw0rd!" + "x" * 23)]):
        result = await invoke(
            okx_gateway, "dma.create_subaccount_api_key",
            {"subAcct": "brokerTest1", "label": label, "passphrase": passphrase, "ip": TWENTY_IPS, "perm": "read_only,trade,withdraw"},
            request_id=f"edge-{index}",
        )
        assert result[0]["label"] == label
    assert okx.request_log.count("dma.create_subaccount_api_key") == 2


@pytest.mark.parametrize(
    ("operation", "params", "name"),
    [
        ("dma.create_trades_link", {"begin": "20230229", "end": "20230301"}, "begin"),  # no such day
        ("dma.create_trades_link", {"begin": "20240301", "end": "20240229"}, "end"),  # end before begin
        ("dma.create_trades_link", {"begin": "20240101", "end": "20240630"}, "end"),  # 181 days
        ("fd.create_rebate_download_link", {"begin": "20230101", "end": "20231231"}, "end"),
        ("fd.get_rebate_download_link", {"type": "false", "begin": "20240131", "end": "20240101"}, "end"),
        ("dma.get_rebate_download_link", {"type": "false", "begin": "20240101", "end": "20240231"}, "end"),
    ],
)
async def test_date_rules_json_schema_cannot_express(
    okx_gateway: GatewayHarness, okx: Okx, operation: str, params: dict[str, Any], name: str
) -> None:
    failure = await expect_failure(okx_gateway.stub.InvokeOperation(invocation(operation, params, request_id="d-1"), timeout=10))
    assert (failure.code, failure.metadata["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, f"params.{name}")
    assert okx.request_log.count() == 0


async def test_a_refused_date_range_spends_no_rate_limit(frozen: tuple[GatewayHarness, Okx]) -> None:
    """The date rules run before the rate limit: the hourly create-link budget is still there after."""
    harness, okx = frozen
    for _ in range(3):
        failure = await expect_failure(
            harness.stub.InvokeOperation(invocation("fd.create_rebate_download_link", {"begin": "20240301", "end": "20240101"}), timeout=10)
        )
        assert failure.metadata["field"] == "params.end"
    created = await invoke(harness, "fd.create_rebate_download_link", {"begin": "20240101", "end": "20240301"}, request_id="ok")
    assert created[0]["result"] == "false" and okx.request_log.count() == 1


async def test_a_180_day_range_is_allowed(okx_gateway: GatewayHarness, okx: Okx) -> None:
    result = await invoke(okx_gateway, "dma.create_trades_link", {"begin": "20240101", "end": "20240629"}, request_id="ok")
    assert result[0]["result"] == "false"


# -- rate limits ---------------------------------------------------------------------------------------


@pytest.fixture
async def frozen(tmp_path: Path, clock: FakeClock) -> AsyncIterator[tuple[GatewayHarness, Okx]]:
    """The gateway and the simulator with their rate clocks stopped: no bucket refills during a burst,
    so the counts are exact however slow the machine is."""
    async with serve_okx(clock, rate_clock=lambda: 1000.0) as upstream, okx_gateway_for(tmp_path, upstream, clock) as harness:
        harness.application.gateway.rate_limiter = RateLimiter(clock=lambda: 1000.0)
        yield harness, upstream


def retry_delay(failure: Any) -> float:
    infos = [d for d in failure.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(infos) == 1
    info = error_details_pb2.RetryInfo()
    infos[0].Unpack(info)
    return info.retry_delay.ToTimedelta().total_seconds()


BURSTS = [
    # (operation, params, documented requests per window, window seconds, burst size)
    ("dma.get_subaccount_api_key", {"subAcct": "brokerTest1"}, 1, 1.0, 4),
    ("dma.list_subaccounts", {}, 10, 1.0, 12),
    ("dma.set_subaccount_level", {"subAcct": "brokerTest5", "acctLv": "2"}, 5, 2.0, 8),
    ("dma.get_deposit_history", {}, 5, 2.0, 8),
    ("fd.get_rebate_info", {"apiKey": "k1"}, 2, 1.0, 4),
    ("fd.get_rebate_download_link", {"type": "true"}, 2, 60.0, 4),
    ("fd.create_rebate_download_link", {"begin": "20240101", "end": "20240102"}, 1, 3600.0, 3),
]


@pytest.mark.parametrize(("operation", "params", "requests", "window", "burst"), BURSTS, ids=[b[0] for b in BURSTS])
async def test_a_burst_past_the_documented_limit_is_stopped_by_the_gateway(
    frozen: tuple[GatewayHarness, Okx], operation: str, params: dict[str, Any], requests: int, window: float, burst: int
) -> None:
    okx_gateway, okx = frozen
    okx.sim.issued_keys.add("k1")  # an API key fd.get_rebate_info knows
    calls = [
        okx_gateway.stub.InvokeOperation(invocation(operation, params, request_id=f"burst-{i}"), timeout=10) for i in range(burst)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    limited = [failure_of(r) for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(limited) == burst - requests
    for failure in limited:
        assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "PROVIDER_RATE_LIMITED")
        assert "upstream_code" not in failure.metadata  # refused by the gateway, not by OKX
        assert retry_delay(failure) == pytest.approx(window)  # time stands still: the whole window
    entries = okx.request_log.snapshot()
    assert len(entries) == requests
    assert all(entry["status"] != 429 for entry in entries)  # the simulator never answered 50011


async def test_user_limits_count_per_connection(frozen: tuple[GatewayHarness, Okx]) -> None:
    """account.get_balance: 10 requests per 2 seconds per user."""
    okx_gateway, okx = frozen
    first = await connect(okx_gateway, okx, username="ann")
    second = await connect(okx_gateway, okx, username="ben")
    okx.request_log.clear()
    calls = [
        okx_gateway.stub.InvokeOperation(invocation("account.get_balance", connection_id=first.connection_id), timeout=10)
        for _ in range(12)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    refused = [failure_of(r) for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 2 and all(f.code == grpc.StatusCode.RESOURCE_EXHAUSTED for f in refused)
    assert retry_delay(refused[0]) == pytest.approx(2.0)
    await invoke(okx_gateway, "account.get_balance", connection_id=second.connection_id)  # its own budget
    assert okx.request_log.count("account.get_balance") == 11
    assert all(entry["status"] == 200 for entry in okx.request_log.snapshot())


async def test_an_hourly_limit_says_when_to_come_back(frozen: tuple[GatewayHarness, Okx]) -> None:
    okx_gateway, okx = frozen
    await invoke(okx_gateway, "dma.create_trades_link", {"begin": "20240101", "end": "20240102"}, request_id="t1")
    failure = await expect_failure(
        okx_gateway.stub.InvokeOperation(
            invocation("dma.create_trades_link", {"begin": "20240103", "end": "20240104"}, request_id="t2"), timeout=10
        )
    )
    assert failure.code == grpc.StatusCode.RESOURCE_EXHAUSTED and retry_delay(failure) == 3600
    assert okx.request_log.count() == 1


async def test_upstream_50011_still_maps_to_resource_exhausted(frozen: tuple[GatewayHarness, Okx]) -> None:
    """Should OKX throttle anyway (another client of the same key), the caller gets the same answer."""
    okx_gateway, okx = frozen
    okx.sim._buckets.take(("dma.get_subaccount_api_key", okx.sim.broker_key.api_key), 1, 1.0)  # spent elsewhere
    failure = await expect_failure(
        okx_gateway.stub.InvokeOperation(invocation("dma.get_subaccount_api_key", {"subAcct": "brokerTest1"}), timeout=10)
    )
    assert (failure.code, failure.metadata["upstream_code"]) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "50011")
    assert retry_delay(failure) > 0

