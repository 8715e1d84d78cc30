"""The bybit provider's configuration, its registration, and the ``bybit`` provider of the sandbox.

Why: operators point the provider at mainnet, testnet, demo or a regional site with one setting, and
a broken entry must be reported whole (every problem at once) before the gateway serves. The sandbox
must bring up a working Bybit for someone with no credentials, and say in sandbox.json what it is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import grpc
import httpx
import pytest
from broker_gateway.errors import ConfigError
from broker_gateway.plugins import plugin_manager, provider_types, sandbox_upstreams
from broker_gateway.provider import AuthorizationRequest, OperationAuth, RateScope
from broker_gateway.sandbox.runner import start_sandbox
from broker_gateway.testing import provider_context
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import broker_gateway_service_pb2_grpc as api_grpc
from broker_gateway_bybit.provider import ENVIRONMENTS, BybitProvider
from broker_gateway_bybit.signing import signed_headers
from google.protobuf import json_format
from test_bybit_support import invoke_request


def make(settings: dict[str, Any], *, insecure: bool = False) -> BybitProvider:
    return BybitProvider(provider_context("bybit", allow_insecure_http=insecure), {"client_id": "c", "client_secret": "s", **settings})


def authorization_url(provider: BybitProvider, **fields: Any) -> str:
    request = {"state": "st", "redirect_uri": "https://app.example/cb", "scopes": ("openapi",), "code_challenge": None, **fields}
    return provider.authorization_url(AuthorizationRequest(**request))


@pytest.mark.parametrize(
    ("environment", "page", "oauth", "api_host"),
    [
        ("mainnet", "https://www.bybit.com/en/oauth", "https://api2.bybit.com", "https://api.bybit.com"),
        ("testnet", "https://testnet.bybit.com/oauth", "https://api2-testnet.bybit.com", "https://api-testnet.bybit.com"),
        ("demo", "https://www.bybit.com/en/oauth", "https://api2.bybit.com", "https://api-demo.bybit.com"),
        ("eu", "https://www.bybit.com/en/oauth", "https://api2.bybit.com", "https://api.bybit.eu"),
        ("kz", "https://www.bybit.com/en/oauth", "https://api2.bybit.com", "https://api.bybit.kz"),
    ],
)
def test_environments_set_three_separate_hosts(environment: str, page: str, oauth: str, api_host: str) -> None:
    provider = make({"environment": environment})
    assert authorization_url(provider).startswith(page + "?")
    assert (provider.oauth_base_url, provider.api_base_url) == (oauth, api_host)
    assert provider.endpoints["token_endpoint"] == oauth + "/oauth/v1/public/access_token"
    assert provider.endpoints["userinfo_endpoint"] == oauth + "/oauth/v1/resource/restrict/uid_bearer"


def test_every_host_can_be_overridden() -> None:
    provider = make(
        {
            "environment": "testnet",
            "authorization_endpoint": "https://oauth.example/page",
            "oauth_base_url": "https://oauth-api.example/",
            "api_base_url": "https://api.example",
        }
    )
    assert authorization_url(provider).startswith("https://oauth.example/page?")
    assert (provider.oauth_base_url, provider.api_base_url) == ("https://oauth-api.example", "https://api.example")
    assert set(ENVIRONMENTS) >= {"mainnet", "testnet", "demo", "eu", "nl", "tr", "kz", "ae"}


def test_the_authorization_url_carries_bybits_parameters() -> None:
    query = dict(parse_qsl(urlsplit(authorization_url(make({}))).query))
    assert query == {"response_type": "code", "client_id": "c", "redirect_uri": "https://app.example/cb", "state": "st", "scope": "openapi"}
    pkce = make({"pkce": True})
    assert pkce.capabilities.pkce and not make({}).capabilities.pkce
    query = dict(parse_qsl(urlsplit(authorization_url(pkce, code_challenge="x" * 43)).query))
    assert (query["code_challenge"], query["code_challenge_method"]) == ("x" * 43, "S256")
    several = dict(parse_qsl(urlsplit(authorization_url(make({"scopes": ["openapi", "ai-account"]}), scopes=("openapi", "ai-account"))).query))
    assert several["scope"] == "openapi,ai-account"


def test_capabilities_and_operations() -> None:
    provider = make({})
    capabilities = provider.capabilities
    assert (capabilities.refresh, capabilities.revoke, capabilities.user_info) == (True, False, True)
    assert list(provider.scopes) == ["openapi"] and list(provider.default_scopes) == ["openapi"]
    operations = {op.name: op for op in provider.operations()}
    assert operations["oauth.get_openapi_key"].auth is OperationAuth.USER_TOKEN
    assert operations["oauth.get_openapi_key"].rate_limit.scope is RateScope.CONNECTION  # type: ignore[union-attr]
    documented = {name: (op.rate_limit.requests, op.rate_limit.per_seconds) for name, op in operations.items() if op.rate_limit}
    assert documented == {
        "oauth.get_openapi_key": (5, 1.0),
        "broker.get_earnings": (10, 1.0),
        "broker.get_account_info": (10, 1.0),
        "broker.get_sub_member_deposit_records": (300, 60.0),
        "broker.get_rate_limits": (1, 1.0),
        "broker.get_rate_limit_cap": (5, 1.0),
        "broker.set_rate_limit": (1, 1.0),
        "broker.get_earning_record": (10, 1.0),
        "broker.get_voucher_spec": (5, 1.0),
        "broker.issue_voucher": (5, 1.0),
        "broker.get_issued_voucher": (5, 1.0),
    }
    assert not operations["broker.issue_voucher"].safe_to_retry and operations["broker.get_issued_voucher"].safe_to_retry
    raised = make({"rate_limits": {"broker.get_rate_limits": {"requests": 20, "per_seconds": 1}}})
    limit = {op.name: op.rate_limit for op in raised.operations()}["broker.get_rate_limits"]
    assert limit is not None and (limit.requests, limit.per_seconds) == (20, 1.0)
    assert provider.keepalive_window is not None and provider.keepalive_window.days == 2


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        BybitProvider(
            provider_context("bybit"),
            {
                "environment": "moon",
                "api_base_url": "http://api.example",
                "oauth_base_url": "http://oauth.example",
                "broker_api_key": "K",
                "recv_window_ms": 0,
                "registered_redirect_uris": [],
                "user_info_source": "guess",
                "rate_limits": {"broker.nope": {}, "broker.get_earnings": {"requests": 0, "per_seconds": 1}},
                "user_agent": "bad\nheader",
            },
        )
    problems = "\n".join(caught.value.problems)
    assert "token_endpoint" not in problems  # derived from oauth_base_url, reported under that name
    for expected in (
        "client_id: required",
        "client_secret: required",
        "environment: expected one of",
        "api_base_url: plain http is refused",
        "oauth_base_url: plain http is refused",
        "broker_api_key, broker_api_secret: give both or neither",
        "recv_window_ms",
        "registered_redirect_uris",
        "user_info_source",
        "rate_limits.broker.nope: no such operation",
        "rate_limits.broker.get_earnings",
        "user_agent",
    ):
        assert expected in problems, expected


def test_the_plugin_registers_the_provider_and_its_sandbox() -> None:
    manager = plugin_manager()
    assert provider_types(manager)["bybit"] is BybitProvider
    assert "bybit" in [upstream.provider_id for upstream in sandbox_upstreams(manager)]


async def test_the_sandbox_serves_a_working_bybit(tmp_path: Path) -> None:
    """``broker-gateway sandbox`` (in process): sandbox.json has upstreams.bybit with the simulator's
    base URL, its broker key pair and OAuth client, and the whole flow works against it."""
    sandbox = await start_sandbox(listen="127.0.0.1:0", data_dir=tmp_path, callback="127.0.0.1:0")
    try:
        described = json.loads((tmp_path / "sandbox.json").read_text())
        bybit = described["upstreams"]["bybit"]
        assert bybit["base_url"].startswith("http://127.0.0.1:")
        assert len(bybit["api_key"]) == 18 and len(bybit["api_secret"]) == 36 and bybit["client_id"] and bybit["client_secret"]
        async with grpc.aio.insecure_channel(described["gateway"]) as channel:
            stub = api_grpc.BrokerGatewayStub(channel)
            start = await stub.Authorize(api.AuthorizeRequest(provider="bybit", redirect_uri=described["redirect_uri"]), timeout=10)
            async with httpx.AsyncClient() as http:
                approval = await http.get(start.authorization_url + "&approve=sandbox-user")
                callback = dict(parse_qsl(urlsplit(approval.headers["location"]).query))
                page = await http.get(approval.headers["location"])
            assert page.status_code == 200 and callback["code"] in page.text
            exchange = api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), callback_params=callback)
            connection = (await stub.Exchange(exchange, timeout=10)).connection
            info = await stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection.connection_id), timeout=10)
            assert info.user_info.subject == connection.subject
            account = await stub.InvokeOperation(invoke_request("broker.get_account_info"), timeout=10)
            assert json_format.MessageToDict(account.result)["subAcctQty"] == "3"

            # The broker credentials in sandbox.json are the simulator's: a client signing with them is accepted.
            headers = signed_headers(
                api_key=bybit["api_key"], api_secret=bybit["api_secret"], timestamp_ms=int(time.time() * 1000), recv_window=5000, payload=""
            )
            async with httpx.AsyncClient() as http:
                direct = await http.get(bybit["base_url"] + "/v5/broker/apilimit/query-cap", headers=headers)
            assert direct.json()["retCode"] == 0
    finally:
        await sandbox.stop()

