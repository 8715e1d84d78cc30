"""The bybit provider's broker operations: every documented parameter rule refused before anything is
sent, Bybit's codes mapped to gRPC statuses, and Bybit's rate limits honoured client-side.

Why: a parameter Bybit would refuse costs a request of the broker's budget and surfaces as an opaque
upstream error; a limit overrun gets the broker's key throttled for everyone. The gateway must refuse
both itself, naming the parameter or saying when to retry.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from broker_gateway.errors import (
    AccessTokenRejected,
    GatewayError,
    InsufficientScope,
    InvalidGrant,
    ProviderClientAuthFailed,
    ProviderRateLimited,
    ProviderRequestRejected,
    ProviderResponseInvalid,
    ProviderUnavailable,
)
from broker_gateway.upstream import UpstreamResponse
from broker_gateway_bybit import envelope
from broker_gateway_bybit.sandbox import broker_id_of
from conftest import Failure, FakeClock, GatewayHarness, expect_failure
from google.protobuf import json_format
from google.rpc import error_details_pb2
from test_bybit_support import (
    BROKER,
    RETAIL,
    BybitSim,
    bybit,
    bybit_gateway,
    bybit_gateway_for,
    connect_bybit,
    freeze_rate_limiter,
    invoke_request,
    serve_bybit,
)

__all__ = ["bybit", "bybit_gateway"]  # fixtures

SUB = BROKER.sub_uids[0]
DAY_MS = 86_400_000


def retry_delay(failure: Failure) -> float:
    infos = [d for d in failure.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(infos) == 1, "expected one RetryInfo"
    info = error_details_pb2.RetryInfo()
    infos[0].Unpack(info)
    return info.retry_delay.ToTimedelta().total_seconds()


# -- parameter rules -------------------------------------------------------------------------------

RULES: list[tuple[str, dict[str, Any], str]] = [
    # earnings-info: bizType enumeration, YYYYMMDD dates given together, limit 1-1000, sub UID, cursor
    ("broker.get_earnings", {"bizType": "FUTURES"}, "params.bizType"),
    ("broker.get_earnings", {"bizType": "spot"}, "params.bizType"),
    ("broker.get_earnings", {"begin": "2024-01-01", "end": "20240102"}, "params.begin"),
    ("broker.get_earnings", {"begin": "20240101", "end": "202401"}, "params.end"),
    ("broker.get_earnings", {"begin": "20241301", "end": "20241302"}, "params.begin"),
    ("broker.get_earnings", {"begin": "20230229", "end": "20230301"}, "params.begin"),  # not a calendar day
    ("broker.get_earnings", {"begin": "20240101"}, "params.end"),
    ("broker.get_earnings", {"end": "20240101"}, "params.begin"),
    ("broker.get_earnings", {"begin": "20240105", "end": "20240101"}, "params.end"),
    ("broker.get_earnings", {"uid": "abc"}, "params.uid"),
    ("broker.get_earnings", {"uid": 117894077}, "params.uid"),
    ("broker.get_earnings", {"uid": "123\n"}, "params.uid"),
    ("broker.get_earnings", {"limit": 0}, "params.limit"),
    ("broker.get_earnings", {"limit": 1001}, "params.limit"),
    ("broker.get_earnings", {"limit": 1.5}, "params.limit"),
    ("broker.get_earnings", {"limit": "10"}, "params.limit"),
    ("broker.get_earnings", {"cursor": "a b"}, "params.cursor"),
    ("broker.get_earnings", {"cursor": "x&uid=1"}, "params.cursor"),
    ("broker.get_earnings", {"cursor": ""}, "params.cursor"),
    ("broker.get_earnings", {"category": "spot"}, "params"),  # a key no schema defines is not repeated
    # account-info and query-cap take no parameters
    ("broker.get_account_info", {"uid": SUB}, "params"),
    ("broker.get_rate_limit_cap", {"bizType": "SPOT"}, "params"),
    # deposit records: coin upper case, ms timestamps under a 30-day span, limit 1-50
    ("broker.get_sub_member_deposit_records", {"coin": "usdt"}, "params.coin"),
    ("broker.get_sub_member_deposit_records", {"subMemberId": "sub-1"}, "params.subMemberId"),
    ("broker.get_sub_member_deposit_records", {"txID": "0xab cd"}, "params.txID"),
    ("broker.get_sub_member_deposit_records", {"id": "1&2"}, "params.id"),
    ("broker.get_sub_member_deposit_records", {"startTime": -1}, "params.startTime"),
    ("broker.get_sub_member_deposit_records", {"endTime": "1700000000000"}, "params.endTime"),
    ("broker.get_sub_member_deposit_records", {"startTime": 2 * DAY_MS, "endTime": DAY_MS}, "params.endTime"),
    ("broker.get_sub_member_deposit_records", {"startTime": 0, "endTime": 30 * DAY_MS}, "params.endTime"),
    ("broker.get_sub_member_deposit_records", {"limit": 0}, "params.limit"),
    ("broker.get_sub_member_deposit_records", {"limit": 51}, "params.limit"),
    # query-all: limit 1-1000, comma-separated UIDs
    ("broker.get_rate_limits", {"limit": 0}, "params.limit"),
    ("broker.get_rate_limits", {"limit": 1001}, "params.limit"),
    ("broker.get_rate_limits", {"uids": "1,,2"}, "params.uids"),
    ("broker.get_rate_limits", {"uids": "1, 2"}, "params.uids"),
    ("broker.get_rate_limits", {"cursor": "#"}, "params.cursor"),
    # set: list of {uids, bizType (SPOT, DERIVATIVES, OPTIONS), rate}, all required
    ("broker.set_rate_limit", {}, "params.list"),
    ("broker.set_rate_limit", {"list": []}, "params.list"),
    ("broker.set_rate_limit", {"list": {"uids": SUB}}, "params.list"),
    ("broker.set_rate_limit", {"list": [{"bizType": "SPOT", "rate": 10}]}, "params.list.0.uids"),
    ("broker.set_rate_limit", {"list": [{"uids": SUB, "rate": 10}]}, "params.list.0.bizType"),
    ("broker.set_rate_limit", {"list": [{"uids": SUB, "bizType": "SPOT"}]}, "params.list.0.rate"),
    ("broker.set_rate_limit", {"list": [{"uids": SUB, "bizType": "CONVERT", "rate": 10}]}, "params.list.0.bizType"),
    ("broker.set_rate_limit", {"list": [{"uids": SUB, "bizType": "SPOT", "rate": 0}]}, "params.list.0.rate"),
    ("broker.set_rate_limit", {"list": [{"uids": SUB, "bizType": "SPOT", "rate": 2.5}]}, "params.list.0.rate"),
    ("broker.set_rate_limit", {"list": [{"uids": "a,b", "bizType": "SPOT", "rate": 10}]}, "params.list.0.uids"),
    (
        "broker.set_rate_limit",
        {"list": [{"uids": SUB, "bizType": "SPOT", "rate": 10}, {"uids": SUB, "bizType": "SPOT", "rate": 10, "note": "x"}]},
        "params.list.1",
    ),
    # the user's key takes no parameters
    ("oauth.get_openapi_key", {"scope": "openapi"}, "params"),
]


@pytest.fixture(scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[GatewayHarness, BybitSim]]:
    """One simulator and gateway for the many rule cases (none of which reaches either upstream)."""
    clock = FakeClock()
    async with serve_bybit(clock) as sim, bybit_gateway_for(
        tmp_path_factory.mktemp("rules"), clock, sim.provider_config()
    ) as harness:
        yield harness, sim


@pytest.mark.parametrize(("operation", "params", "field"), RULES, ids=[f"{o}:{f}:{i}" for i, (o, _, f) in enumerate(RULES)])
async def test_each_documented_parameter_rule_is_refused_before_sending(
    shared: tuple[GatewayHarness, BybitSim], operation: str, params: dict[str, Any], field: str
) -> None:
    harness, bybit = shared
    before = bybit.request_log.count()
    request = invoke_request(operation, request_id="rule-1", connection_id="conn_missing")
    request.params.update(params)
    failure = await expect_failure(harness.stub.InvokeOperation(request, timeout=10))
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    assert failure.metadata["field"] == field
    bad_request = [d for d in failure.details if d.Is(error_details_pb2.BadRequest.DESCRIPTOR)]
    assert bad_request, "a BadRequest names the field"
    assert bybit.request_log.count() == before


async def test_valid_edge_values_are_sent(bybit_gateway: GatewayHarness, bybit: BybitSim, clock: FakeClock) -> None:
    """The other side of each boundary reaches Bybit."""
    now_ms = int(clock.epoch() * 1000)
    calls = [
        ("broker.get_earnings", {"bizType": "FIAT_CONVERT", "begin": "20240229", "end": "20240229", "limit": 1000, "uid": SUB}),
        ("broker.get_earnings", {"limit": 1, "cursor": "o%3A0"}),
        ("broker.get_sub_member_deposit_records", {"startTime": now_ms - 30 * DAY_MS + 1, "endTime": now_ms, "limit": 50, "coin": "USDT"}),
        ("broker.get_sub_member_deposit_records", {"limit": 1, "subMemberId": SUB}),
    ]
    for operation, params in calls:
        await bybit_gateway.stub.InvokeOperation(invoke_request(operation, params), timeout=10)
    assert bybit.v5_errors == [] and bybit.request_log.count() == len(calls)


# -- error mapping ---------------------------------------------------------------------------------


def answer(status: int, body: Any, **headers: str) -> UpstreamResponse:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return UpstreamResponse(status, httpx.Headers(headers), content)


MAPPINGS: list[tuple[str, UpstreamResponse, type[GatewayError], str]] = [
    # V5 with the broker's key
    ("v5", answer(200, {"retCode": 10001, "retMsg": "params error"}), ProviderRequestRejected, "10001"),
    ("v5", answer(200, {"retCode": 10002, "retMsg": "invalid request"}), ProviderUnavailable, "10002"),
    ("v5", answer(401, {"retCode": 10003, "retMsg": "API key is invalid."}), ProviderClientAuthFailed, "10003"),
    ("v5", answer(200, {"retCode": 10004, "retMsg": "error sign!"}), ProviderClientAuthFailed, "10004"),
    ("v5", answer(200, {"retCode": 10005, "retMsg": "Permission denied"}), InsufficientScope, "10005"),
    ("v5", answer(200, {"retCode": 10006, "retMsg": "Too many visits!"}), ProviderRateLimited, "10006"),
    ("v5", answer(200, {"retCode": 10007, "retMsg": "auth failed"}), ProviderClientAuthFailed, "10007"),
    ("v5", answer(200, {"retCode": 10008, "retMsg": "?"}), ProviderRequestRejected, "10008"),
    ("v5", answer(200, {"retCode": 10009, "retMsg": "?"}), ProviderRequestRejected, "10009"),
    ("v5", answer(200, {"retCode": 10010, "retMsg": "Unmatched IP"}), ProviderClientAuthFailed, "10010"),
    ("v5", answer(200, {"retCode": 33004, "retMsg": "api key expired"}), ProviderClientAuthFailed, "33004"),
    ("v5", answer(200, {"retCode": -2015, "retMsg": "key expired"}), ProviderClientAuthFailed, "-2015"),
    ("v5", answer(401, b""), ProviderClientAuthFailed, ""),
    ("v5", answer(403, b"access too frequent"), ProviderRateLimited, ""),
    ("v5", answer(429, b""), ProviderRateLimited, ""),
    ("v5", answer(502, b"bad gateway"), ProviderUnavailable, ""),
    ("v5", answer(200, b"<html>"), ProviderResponseInvalid, ""),
    ("v5", answer(200, {"result": {}}), ProviderResponseInvalid, ""),
    ("v5", answer(200, ["not", "an", "envelope"]), ProviderResponseInvalid, ""),
    ("token", answer(200, ["not", "an", "envelope"]), ProviderResponseInvalid, ""),
    ("resource", answer(200, "not an envelope"), ProviderResponseInvalid, ""),
    ("v5", answer(200, {"retCode": "10004\r\nX: y", "retMsg": "x"}), ProviderRequestRejected, "invalid"),
    # the token endpoint (code exchange and refresh)
    ("token", answer(200, {"retCode": 10001, "retMsg": "code expired"}), InvalidGrant, "10001"),
    ("token", answer(200, {"ret_code": 10004, "ret_msg": "refresh token invalid"}), InvalidGrant, "10004"),
    ("token", answer(200, {"retCode": 33004, "retMsg": "token expired"}), InvalidGrant, "33004"),
    ("token", answer(200, {"retCode": 10003, "retMsg": "invalid client_id"}), ProviderClientAuthFailed, "10003"),
    ("token", answer(200, {"retCode": 20039, "retMsg": "bind 2FA"}), ProviderRequestRejected, "20039"),
    ("token", answer(200, {"retCode": 10006, "retMsg": "slow down"}), ProviderRateLimited, "10006"),
    ("token", answer(401, b""), ProviderClientAuthFailed, ""),
    ("token", answer(429, b""), ProviderRateLimited, ""),
    ("token", answer(503, b""), ProviderUnavailable, ""),
    # OAuth resources with the user's token
    ("resource", answer(200, {"ret_code": 33004, "ret_msg": "token expired"}), AccessTokenRejected, "33004"),
    ("resource", answer(200, {"ret_code": 50000, "ret_msg": "Token verify fail"}), AccessTokenRejected, "50000"),
    ("resource", answer(401, {"ret_code": 10001, "ret_msg": "unauthorised"}), AccessTokenRejected, "10001"),
    ("resource", answer(401, b""), AccessTokenRejected, ""),
    ("resource", answer(200, {"retCode": 10005, "retMsg": "permission denied"}), InsufficientScope, "10005"),
    ("resource", answer(200, {"ret_code": 10003, "ret_msg": "invalid client"}), ProviderClientAuthFailed, "10003"),
    ("resource", answer(200, {"ret_code": 20039, "ret_msg": "bind 2FA"}), ProviderRequestRejected, "20039"),
    ("resource", answer(403, b""), ProviderRateLimited, ""),
    ("resource", answer(500, b""), ProviderUnavailable, ""),
]


@pytest.mark.parametrize(("surface", "response", "expected", "code"), MAPPINGS, ids=[f"{s}-{i}" for i, (s, *_) in enumerate(MAPPINGS)])
def test_bybit_codes_map_to_gateway_errors(
    surface: str, response: UpstreamResponse, expected: type[GatewayError], code: str, clock: FakeClock
) -> None:
    check = {
        "v5": lambda r: envelope.check_v5_response(r, "bybit", clock.now),
        "token": lambda r: envelope.check_token_response(r, "bybit"),
        "resource": lambda r: envelope.check_resource_response(r, "bybit"),
    }[surface]
    with pytest.raises(GatewayError) as caught:
        check(response)
    error = caught.value
    assert type(error) is expected
    assert error.metadata["provider"] == "bybit"
    assert error.metadata["upstream_http_status"] == str(response.status_code)
    assert error.metadata.get("upstream_code", "") == code
    assert "retMsg" not in error.message and "ret_msg" not in error.message
    if expected in (ProviderRateLimited, ProviderUnavailable, ProviderResponseInvalid):
        assert error.retry_after and error.retry_after > 0


def test_success_envelopes(clock: FakeClock) -> None:
    assert envelope.check_v5_response(answer(200, {"retCode": 0, "retMsg": "OK", "result": {"a": 1}}), "bybit", clock.now) == {"a": 1}
    wrapped = envelope.check_token_response(answer(200, {"retCode": 0, "result": {"access_token": "t"}}), "bybit")
    assert wrapped == {"access_token": "t"}  # Bybit's own client reads both the flat and the wrapped form
    assert envelope.check_resource_response(answer(200, {"ret_code": 0, "result": {}}), "bybit") == {"ret_code": 0, "result": {}}


def test_the_rate_limit_reset_header_becomes_the_retry_delay(clock: FakeClock) -> None:
    reset = str(int(clock.epoch() * 1000) + 750)
    limited = answer(200, {"retCode": 10006, "retMsg": "Too many visits!"}, **{"X-Bapi-Limit-Reset-Timestamp": reset})
    with pytest.raises(ProviderRateLimited) as caught:
        envelope.check_v5_response(limited, "bybit", clock.now)
    assert caught.value.retry_after == pytest.approx(0.75, abs=0.01)
    with pytest.raises(ProviderRateLimited) as banned:
        envelope.check_v5_response(answer(403, b""), "bybit", clock.now)
    assert banned.value.retry_after == envelope.IP_BAN_SECONDS


async def test_a_wrong_broker_secret_is_provider_client_auth_failed(tmp_path: Path, bybit: BybitSim, clock: FakeClock) -> None:
    entry = bybit.provider_config(broker_api_secret="Wrong0123456789abcdefABCDEFghijklmn")
    async with bybit_gateway_for(tmp_path, clock, entry) as harness:
        failure = await expect_failure(harness.stub.InvokeOperation(invoke_request("broker.get_account_info"), timeout=10))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_CLIENT_AUTH_FAILED")
    assert (failure.metadata["upstream_code"], failure.metadata["upstream_http_status"]) == ("10004", "200")
    assert bybit.v5_errors == [{"operation": "v5.account-info", "retCode": 10004}]
    # Bybit's 10004 message shows origin_string[...] (the broker's API key in it): never passed on.
    assert "origin_string" not in failure.message and bybit.key.api_key not in failure.message
    assert all(bybit.key.api_key not in value for value in failure.metadata.values())


async def test_an_unknown_key_and_a_non_broker_key(tmp_path: Path, bybit: BybitSim, clock: FakeClock) -> None:
    entries = (
        bybit.provider_config("unknown", broker_api_key="NOBODY000000000000"),
        bybit.provider_config("retail", broker_api_key=RETAIL.api_key, broker_api_secret=RETAIL.api_secret),
    )
    async with bybit_gateway_for(tmp_path, clock, *entries) as harness:
        unknown = await expect_failure(
            harness.stub.InvokeOperation(invoke_request("broker.get_rate_limit_cap", provider="unknown"), timeout=10)
        )
        retail = await expect_failure(
            harness.stub.InvokeOperation(invoke_request("broker.get_rate_limit_cap", provider="retail"), timeout=10)
        )
    assert (unknown.reason, unknown.metadata["upstream_code"], unknown.metadata["upstream_http_status"]) == (
        "PROVIDER_CLIENT_AUTH_FAILED",
        "10003",
        "200",  # as Bybit answers an unknown key (SDK logs); the code decides, as it did at 401
    )
    assert (retail.code, retail.reason, retail.metadata["upstream_code"]) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "INSUFFICIENT_SCOPE",
        "10005",
    )


async def test_a_stale_timestamp_is_unavailable_with_retry_info(tmp_path: Path, clock: FakeClock) -> None:
    """The simulator's clock runs 6 s ahead of the gateway's: the gateway's timestamps fall outside
    the 5 s recv_window (10002). A retry, with a fresh timestamp, is safe: nothing was executed."""
    async with serve_bybit(clock, sim_clock=lambda: clock.epoch() + 6) as sim, bybit_gateway_for(
        tmp_path, clock, sim.provider_config()
    ) as harness:
        failure = await expect_failure(harness.stub.InvokeOperation(invoke_request("broker.get_earnings"), timeout=10))
        assert (failure.code, failure.reason, failure.metadata["upstream_code"]) == (
            grpc.StatusCode.UNAVAILABLE,
            "PROVIDER_UNAVAILABLE",
            "10002",
        )
        assert retry_delay(failure) > 0
    async with serve_bybit(clock, sim_clock=lambda: clock.epoch() + 6) as sim, bybit_gateway_for(
        tmp_path / "wide", clock, sim.provider_config(recv_window_ms=10000)
    ) as harness:  # a wider configured window absorbs the skew
        await harness.stub.InvokeOperation(invoke_request("broker.get_earnings"), timeout=10)


async def test_bybits_own_rate_limit_answer_is_resource_exhausted(tmp_path: Path, clock: FakeClock) -> None:
    """Were the gateway's limit configured above Bybit's, Bybit's 10006 still reaches the caller as
    RESOURCE_EXHAUSTED with a RetryInfo from X-Bapi-Limit-Reset-Timestamp."""
    async with serve_bybit(clock) as sim, bybit_gateway_for(
        tmp_path, clock, sim.provider_config(rate_limits={"broker.get_rate_limits": {"requests": 5, "per_seconds": 1}})
    ) as harness:
        await harness.stub.InvokeOperation(invoke_request("broker.get_rate_limits"), timeout=10)
        failure = await expect_failure(harness.stub.InvokeOperation(invoke_request("broker.get_rate_limits"), timeout=10))
    assert (failure.code, failure.reason, failure.metadata["upstream_code"]) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "PROVIDER_RATE_LIMITED",
        "10006",
    )
    assert 0 < retry_delay(failure) <= 1.0


async def test_without_a_broker_key_broker_operations_are_unsupported(tmp_path: Path, bybit: BybitSim, clock: FakeClock) -> None:
    entry = bybit.provider_config(broker_api_key=None, broker_api_secret=None)
    async with bybit_gateway_for(tmp_path, clock, entry) as harness:
        failure = await expect_failure(harness.stub.InvokeOperation(invoke_request("broker.get_account_info"), timeout=10))
        assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CAPABILITY_UNSUPPORTED")
        # The user-token operation still works.
        connection = await connect_bybit(harness, bybit)
        await harness.stub.InvokeOperation(
            invoke_request("oauth.get_openapi_key", connection_id=connection.connection_id), timeout=10
        )
    assert bybit.request_log.count("v5.account-info") == 0


# -- client-side rate limits -----------------------------------------------------------------------

LIMITS = [
    ("broker.get_earnings", 10, 1.0, "v5.earnings-info", {}),
    ("broker.get_account_info", 10, 1.0, "v5.account-info", {}),
    ("broker.get_sub_member_deposit_records", 300, 60.0, "v5.query-sub-member-deposit-record", {}),
    ("broker.get_rate_limits", 1, 1.0, "v5.apilimit.query-all", {}),
    ("broker.get_rate_limit_cap", 5, 1.0, "v5.apilimit.query-cap", {}),
    ("broker.set_rate_limit", 1, 1.0, "v5.apilimit.set", {"list": [{"uids": SUB, "bizType": "SPOT", "rate": 30}]}),
]


@pytest.mark.parametrize(("operation", "requests", "per_seconds", "tag", "params"), LIMITS, ids=[op for op, *_ in LIMITS])
async def test_a_burst_past_a_documented_limit_is_refused_by_the_gateway(
    bybit_gateway: GatewayHarness,
    bybit: BybitSim,
    operation: str,
    requests: int,
    per_seconds: float,
    tag: str,
    params: dict[str, Any],
) -> None:
    """Bybit's documented limit passes; the next call is RESOURCE_EXHAUSTED with a RetryInfo, and the
    simulator never had to answer 10006. (The gateway's limiter clock is frozen so the machine's speed
    does not matter; the simulator's clock is frozen too, so all calls fall in one Bybit window.)"""
    freeze_rate_limiter(bybit_gateway)
    stub = bybit_gateway.stub
    sent = min(requests, 10)
    if sent < requests:
        # 300 a minute: all but the last ten of the budget are spent in the gateway's own limiter,
        # rather than through 290 loopback round trips.
        gateway = bybit_gateway.application.gateway
        declared = next(op for op in gateway.providers["bybit"].provider.operations() if op.name == operation)
        for _ in range(requests - sent):
            await gateway.rate_limiter.acquire("bybit", declared.name, declared.rate_limit, "default/")
    await asyncio.gather(
        *(stub.InvokeOperation(invoke_request(operation, params, request_id=f"burst-{n}"), timeout=10) for n in range(sent))
    )
    failure = await expect_failure(stub.InvokeOperation(invoke_request(operation, params, request_id="burst-over"), timeout=10))
    assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "PROVIDER_RATE_LIMITED")
    assert failure.metadata["limit"] == f"{requests}/{per_seconds:g}s" and "upstream_code" not in failure.metadata
    assert retry_delay(failure) == pytest.approx(per_seconds, rel=0.01)  # the whole window: the oldest call frees it
    assert bybit.request_log.count(tag) == sent
    assert [e for e in bybit.v5_errors if e["retCode"] == 10006] == []


async def test_a_concurrent_burst_is_cut_at_the_limit(bybit_gateway: GatewayHarness, bybit: BybitSim) -> None:
    freeze_rate_limiter(bybit_gateway)
    results = await asyncio.gather(
        *(bybit_gateway.stub.InvokeOperation(invoke_request("broker.get_rate_limit_cap"), timeout=10) for _ in range(8)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 3 and all(r.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for r in refused)
    assert bybit.request_log.count("v5.apilimit.query-cap") == 5 and bybit.v5_errors == []


async def test_the_openapi_key_is_limited_per_connection(bybit_gateway: GatewayHarness, bybit: BybitSim) -> None:
    freeze_rate_limiter(bybit_gateway)
    first, second = await connect_bybit(bybit_gateway, bybit, "wendy"), await connect_bybit(bybit_gateway, bybit, "xavier")
    for connection in (first, second):
        for _ in range(5):
            await bybit_gateway.stub.InvokeOperation(
                invoke_request("oauth.get_openapi_key", connection_id=connection.connection_id), timeout=10
            )
    failure = await expect_failure(
        bybit_gateway.stub.InvokeOperation(invoke_request("oauth.get_openapi_key", connection_id=first.connection_id), timeout=10)
    )
    assert failure.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert bybit.request_log.count("openapi") == 10


# -- vouchers and the deprecated earnings (issue 17) -----------------------------------------------


def result_dict(response: Any) -> dict[str, Any]:
    return dict(json_format.MessageToDict(response.result))


async def test_vouchers_spec_issue_and_record(bybit_gateway: GatewayHarness, bybit: BybitSim) -> None:
    """pybit's get_voucher_spec / issue_voucher / get_issued_voucher through the gateway: the issue is a
    write, so a repeated request_id gets the first result back and Bybit sees it once."""
    stub = bybit_gateway.stub
    spec = result_dict(await stub.InvokeOperation(invoke_request("broker.get_voucher_spec", {"id": "80209"}), timeout=10))
    assert spec == {
        "id": "80209", "coin": "USDT", "amountUnit": "AWARD_AMOUNT_UNIT_USD", "productLine": "PRODUCT_LINE_CONTRACT",
        "subProductLine": "SUB_PRODUCT_LINE_CONTRACT_DEFAULT", "totalAmount": "10000", "usedAmount": "0",
    }
    user = BROKER.sub_uids[0]
    issue = {"accountId": user, "awardId": "80209", "specCode": "gw-001", "amount": "100", "brokerId": broker_id_of(BROKER)}
    first = await stub.InvokeOperation(invoke_request("broker.issue_voucher", issue, request_id="voucher-1"), timeout=10)
    again = await stub.InvokeOperation(invoke_request("broker.issue_voucher", issue, request_id="voucher-1"), timeout=10)
    assert result_dict(first) == result_dict(again) == {}
    assert len(bybit.app.state.awards.issued) == 1 and bybit.request_log.count("v5.award.distribute-award") == 1
    record = {"accountId": user, "awardId": "80209", "specCode": "gw-001"}
    found = result_dict(await stub.InvokeOperation(invoke_request("broker.get_issued_voucher", {**record, "withUsedAmount": True}), timeout=10))
    assert (found["amount"], found["isClaimed"], found["usedAmount"]) == ("100", False, "0")
    without = result_dict(await stub.InvokeOperation(invoke_request("broker.get_issued_voucher", record), timeout=10))
    assert "usedAmount" not in without
    used = result_dict(await stub.InvokeOperation(invoke_request("broker.get_voucher_spec", {"id": "80209"}), timeout=10))
    assert used["usedAmount"] == "100"
    # The same specCode under a new request_id is Bybit's refusal, not a second issue.
    other = await expect_failure(stub.InvokeOperation(invoke_request("broker.issue_voucher", issue, request_id="voucher-2"), timeout=10))
    assert (other.reason, other.metadata["upstream_code"]) == ("PROVIDER_REQUEST_REJECTED", "10001")
    assert len(bybit.app.state.awards.issued) == 1


@pytest.mark.parametrize(
    ("operation", "params", "field"),
    [
        ("broker.get_voucher_spec", {}, "params.id"),
        ("broker.get_voucher_spec", {"id": "80x"}, "params.id"),
        ("broker.issue_voucher", {"accountId": "1", "awardId": "1", "specCode": "123456789", "amount": "1", "brokerId": "b"}, "params.specCode"),
        ("broker.issue_voucher", {"accountId": "1", "awardId": "1", "specCode": "a", "amount": "1e3", "brokerId": "b"}, "params.amount"),
        ("broker.issue_voucher", {"accountId": "1", "awardId": "1", "specCode": "a", "amount": "1"}, "params.brokerId"),
        ("broker.get_issued_voucher", {"accountId": "1", "awardId": "1", "specCode": "a", "withUsedAmount": "yes"}, "params.withUsedAmount"),
        ("broker.get_earning_record", {"bizType": "CONVERT"}, "params.bizType"),
        ("broker.get_earning_record", {"startTime": 5}, "params.endTime"),
        ("broker.get_earning_record", {"startTime": 5, "endTime": 4}, "params.endTime"),
    ],
)
async def test_voucher_and_earning_record_params_are_checked_before_sending(
    bybit_gateway: GatewayHarness, bybit: BybitSim, operation: str, params: dict[str, Any], field: str
) -> None:
    failure = await expect_failure(bybit_gateway.stub.InvokeOperation(invoke_request(operation, params, request_id="bad-1"), timeout=10))
    assert (failure.code, failure.metadata["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, field)
    assert bybit.request_log.snapshot() == []


async def test_the_deprecated_earning_record_is_served(bybit_gateway: GatewayHarness, bybit: BybitSim, clock: FakeClock) -> None:
    """pybit's get_broker_earnings (deprecated, still called): a flat list of earnings."""
    now_ms = int(clock.epoch() * 1000)
    params = {"bizType": "SPOT", "startTime": now_ms - 30 * 86_400_000, "endTime": now_ms, "limit": 10}
    result = result_dict(await bybit_gateway.stub.InvokeOperation(invoke_request("broker.get_earning_record", params), timeout=10))
    assert result["list"] and all(row["bizType"] == "SPOT" for row in result["list"])
    assert set(result["list"][0]) == {"userId", "bizType", "symbol", "coin", "earning", "orderId", "execTime"}
    assert "nextPageCursor" in result
