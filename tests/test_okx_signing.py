"""OKX request signing against the published test vectors (docs/design/exchanges.md), and proof that
the provider signs exactly the bytes it sends, in the documented parameter order.

V3 and V4 are reproduced twice: by the signing function from the vector's prehash parts, and by the
provider building the real request from operation parameters (captured by a mock transport), so the
body serialisation, the query layout and the header set are pinned down too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from broker_gateway.testing import provider_context
from broker_gateway_okx import signing
from broker_gateway_okx.provider import OKXProvider, client_order_id

SECRET = "22582BD0CFF14C41EDBF1AB98506286D"
TIMESTAMP = "2020-12-08T09:08:57.715Z"
MOMENT = datetime(2020, 12, 8, 9, 8, 57, 715000, tzinfo=UTC)

VECTORS = [
    ("V1", "GET", "/api/v5/account/balance?ccy=BTC", "", "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY="),
    (
        "V2",
        "POST",
        "/api/v5/account/set-leverage",
        '{"instId":"BTC-USDT","lever":"5","mgnMode":"isolated"}',
        "eCnnCgWLjlQ9XnpUkrcny3qNq3WW/81KNrDr/XR6Xv8=",
    ),
    (
        "V3",
        "POST",
        "/api/v5/broker/dma/subaccount/apikey",
        '{"subAcct":"broker01sub","label":"gw","passphrase":"Passw0rd!","perm":"read_only,trade","ip":"10.0.0.1"}',
        "3nJpT7Sm424jzdZTCxeMnZpPobYKG5Ujagr/TTSfiq4=",
    ),
    (
        "V4",
        "GET",
        "/api/v5/broker/dma/subaccount-info?subAcct=broker01sub&page=1&limit=10",
        "",
        "S6Ydo5qRtf+NOZz6JA/kf1JqeLcKZoNGBRq3NxpBG74=",
    ),
]


@pytest.mark.parametrize(("name", "method", "path", "body", "expected"), VECTORS, ids=[v[0] for v in VECTORS])
def test_reference_vectors(name: str, method: str, path: str, body: str, expected: str) -> None:
    assert signing.sign(SECRET, TIMESTAMP, method, path, body) == expected
    assert signing.sign(SECRET, TIMESTAMP, method, path, body.encode()) == expected
    assert signing.prehash(TIMESTAMP, method, path, body) == (TIMESTAMP + method + path + body).encode()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/v5/account/balance", "tpQYvXdaAfU8ae6zI1rJ2xVcyMIk9BKWK/fysaanweQ="),
        ("/api/v5/account/balance?ccy=BTC", "pS6nHuBl6Qc9S0h+soCkCVHaVHZzS19KqFpeI/doTlE="),
    ],
)
def test_the_builder_demo_vectors(path: str, expected: str) -> None:
    assert signing.sign("mock-secret", TIMESTAMP, "GET", path) == expected


def test_timestamps_have_three_millisecond_digits_and_a_z() -> None:
    assert signing.timestamp(MOMENT) == TIMESTAMP
    assert signing.timestamp(datetime(2021, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2021-01-02T03:04:05.000Z"
    assert signing.parse_timestamp(TIMESTAMP) == MOMENT
    for bad in ("2020-12-08T09:08:57Z", "2020-12-08 09:08:57.715Z", "1607418537715", "2020-13-08T09:08:57.715Z"):
        assert signing.parse_timestamp(bad) is None


def test_query_and_body_layout() -> None:
    assert signing.query_string([("subAcct", "broker01sub"), ("uid", ""), ("page", "1"), ("limit", "10")]) == (
        "subAcct=broker01sub&page=1&limit=10"
    )
    assert signing.query_string([("ccy", "BTC,ETH"), ("chain", "USDC-Avalanche C-Chain")]) == "ccy=BTC,ETH&chain=USDC-Avalanche%20C-Chain"
    assert signing.canonical_body({"a": "1", "b": True}) == b'{"a":"1","b":true}'


def test_client_order_ids_are_okx_shaped_and_stable() -> None:
    assert client_order_id("order42") == "order42"
    derived = client_order_id("req-2026/01/01#7")
    assert derived == client_order_id("req-2026/01/01#7") and len(derived) == 32 and derived.isalnum()
    assert client_order_id("x" * 33) != "x" * 32


class Captured:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"code": "0", "msg": "", "data": [{}]})


def provider_with(captured: Captured, **settings: Any) -> OKXProvider:
    return OKXProvider(
        provider_context("okx", handler=captured.handler, clock=lambda: MOMENT),
        {
            "client_id": "c", "client_secret": "s", "broker_code": "Broker1", "api_key": "key-1", "secret_key": SECRET,
            "passphrase": "Pass-phrase1", **settings,
        },
    )


@pytest.mark.parametrize("demo", [False, True])
async def test_the_provider_sends_v3_signed_over_the_bytes_it_sends(demo: bool) -> None:
    captured = Captured()
    provider = provider_with(captured, demo_trading=demo)
    operation = next(op for op in provider.operations() if op.name == "dma.create_subaccount_api_key")
    # Deliberately out of order: the documented order (the vector's) is what is sent.
    params = {"ip": "10.0.0.1", "perm": "read_only,trade", "passphrase": "Passw0rd!", "label": "gw", "subAcct": "broker01sub"}
    await provider.invoke(operation, params, credentials=None, request_id="r1")
    (request,) = captured.requests
    assert request.url.raw_path == b"/api/v5/broker/dma/subaccount/apikey"
    assert request.content == VECTORS[2][3].encode()
    assert request.headers["OK-ACCESS-SIGN"] == VECTORS[2][4]
    assert request.headers["OK-ACCESS-TIMESTAMP"] == TIMESTAMP
    assert request.headers["OK-ACCESS-KEY"] == "key-1" and request.headers["OK-ACCESS-PASSPHRASE"] == "Pass-phrase1"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers.get("x-simulated-trading") == ("1" if demo else None)
    assert str(request.url).startswith("https://www.okx.com/")


async def test_the_provider_sends_v4_with_the_query_in_the_signed_path() -> None:
    captured = Captured()
    provider = provider_with(captured)
    operation = next(op for op in provider.operations() if op.name == "dma.list_subaccounts")
    await provider.invoke(operation, {"limit": "10", "page": "1", "subAcct": "broker01sub"}, credentials=None, request_id="r2")
    (request,) = captured.requests
    assert request.method == "GET" and request.content == b""
    assert request.url.raw_path == b"/api/v5/broker/dma/subaccount-info?subAcct=broker01sub&page=1&limit=10"
    assert request.headers["OK-ACCESS-SIGN"] == VECTORS[3][4]
