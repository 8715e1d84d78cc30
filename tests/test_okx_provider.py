"""The okx provider's configuration checks and its mapping of OKX's answers to gRPC statuses.

The 53xxx codes go through the real flows (Refresh and a bearer call through gRPC) against a small
fake OKX that answers whatever code the test sets, the pattern of docs/design/sandbox.md: a real server
cannot be made to produce every code on demand. The 50xxx codes and malformed answers are checked on
the mapping function directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
import httpx
import pytest
from broker_gateway.config import ProviderConfig
from broker_gateway.errors import Code, ConfigError, GatewayError
from broker_gateway.provider import AuthorizationRequest, OperationAuth
from broker_gateway.testing import provider_context
from broker_gateway.upstream import UpstreamResponse
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import connection_pb2
from broker_gateway_okx.codes import OAUTH_CODES, Call, raise_for_okx
from broker_gateway_okx.provider import OKXProvider
from conftest import REDIRECT_URI, FakeClock, GatewayHarness, expect_failure, gateway_config, running_gateway, serve_asgi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BASE_SETTINGS = {"client_id": "cid", "client_secret": "csecret", "broker_code": "Broker1"}


def make(settings: dict[str, Any], *, insecure: bool = False) -> OKXProvider:
    return OKXProvider(provider_context("okx", allow_insecure_http=insecure), settings)


def problems(settings: dict[str, Any], **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        make(settings, **kwargs)
    return caught.value.problems


# -- configuration -------------------------------------------------------------------------------------


def test_defaults() -> None:
    provider = make(BASE_SETTINGS)
    assert provider.sites == {
        "www": "https://www.okx.com", "eea": "https://eea.okx.com", "us": "https://us.okx.com", "my": "https://my.okx.com",
    }
    assert provider.authorization_endpoint == "https://www.okx.com/account/oauth/authorize"
    assert (provider.token_path, provider.revocation_path) == ("/v5/users/oauth/token", "/v5/users/oauth/revoke")
    assert provider.keepalive_window == timedelta(days=1)
    assert provider.refresh_token_ttl == 3 * 24 * 3600
    capabilities = provider.capabilities
    assert (capabilities.pkce, capabilities.refresh, capabilities.revoke, capabilities.user_info) == (False, True, True, True)
    assert list(provider.scopes) == ["read_only", "trade", "fast_api"] and list(provider.default_scopes) == ["read_only"]
    # Without a broker API key only the user operations are offered.
    assert {op.auth for op in provider.operations()} == {OperationAuth.USER_TOKEN}


def test_switches_and_overrides() -> None:
    provider = make(
        {
            **BASE_SETTINGS, "api_key": "k", "secret_key": "s", "passphrase": "p", "revocation_path": "", "keepalive": False,
            "token_path": "/api/v5/users/oauth/token", "sites": {"www": "https://www.okx.com", "tr": "https://tr.okx.com/"},
            "rate_limits": {"dma.list_subaccounts": {"requests": 10, "per_seconds": 1}},
        }
    )
    assert provider.capabilities.revoke is False and provider.keepalive_window is None
    assert provider.sites["tr"] == "https://tr.okx.com" and provider.token_path == "/api/v5/users/oauth/token"
    operations = {op.name: op for op in provider.operations()}
    assert len(operations) == 18
    limit = operations["dma.list_subaccounts"].rate_limit
    assert limit is not None and (limit.requests, limit.per_seconds) == (10, 1.0)
    assert make({**BASE_SETTINGS, "keepalive_before_seconds": 0}).keepalive_window is None
    assert make({**BASE_SETTINGS, "keepalive_before_seconds": 7200}).keepalive_window == timedelta(hours=2)


def test_pkce_mode() -> None:
    provider = make({"mode": "pkce", "client_id": "cid", "broker_code": "Broker1"})
    assert provider.capabilities.pkce and list(provider.scopes) == ["read_only", "trade"]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"client_id": "c", "broker_code": "B1"}, "client_secret: required"),
        ({"mode": "pkce", "client_id": "c", "client_secret": "s", "broker_code": "B1"}, "client_secret: PKCE mode has no client secret"),
        ({"client_secret": "s", "broker_code": "B1"}, "client_id: required"),
        ({"client_id": "c", "client_secret": "s"}, "broker_code: required"),
        ({**BASE_SETTINGS, "broker_code": "not a code!"}, "broker_code: expected up to 16 letters and digits"),
        ({**BASE_SETTINGS, "api_key": "k"}, "api_key, secret_key, passphrase: give all three"),
        ({**BASE_SETTINGS, "mode": "implicit"}, "mode: expected one of code, pkce"),
        ({**BASE_SETTINGS, "sites": {"www": "http://www.okx.com"}}, "sites.www: plain http is refused"),
        ({**BASE_SETTINGS, "sites": {"www": "https://www.okx.com/api"}}, "sites.www: expected an origin"),
        ({**BASE_SETTINGS, "sites": {"eea": "https://eea.okx.com"}}, "default_site: 'www' is not one of sites"),
        ({**BASE_SETTINGS, "broker_site": "tr"}, "broker_site: 'tr' is not one of sites"),
        ({**BASE_SETTINGS, "authorization_endpoint": "http://www.okx.com/x"}, "authorization_endpoint: plain http is refused"),
        ({**BASE_SETTINGS, "token_path": "v5/users/oauth/token"}, "token_path: expected a path starting with /"),
        ({**BASE_SETTINGS, "token_request_encoding": "xml"}, "token_request_encoding: expected one of json, form"),
        ({"mode": "pkce", "client_id": "c", "broker_code": "B1", "scopes": ["fast_api"]}, "scopes: 'fast_api' is not an OKX scope in pkce mode"),
        ({**BASE_SETTINGS, "rate_limits": {"dma.nope": {"requests": 1, "per_seconds": 1}}}, "rate_limits.dma.nope: no such operation"),
        ({**BASE_SETTINGS, "rate_limits": {"dma.list_subaccounts": {"requests": 0, "per_seconds": 1}}}, "rate_limits.dma.list_subaccounts: expected"),
        ({**BASE_SETTINGS, "keepalive_before_seconds": -1}, "keepalive_before_seconds: expected a non-negative number"),
        ({**BASE_SETTINGS, "demo_trading": "yes"}, "demo_trading: expected true or false"),
    ],
)
def test_configuration_problems(settings: dict[str, Any], expected: str) -> None:
    assert any(problem.startswith(expected) for problem in problems(settings)), problems(settings)


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"mode": "pkce", "client_secret": "s", "sites": {"www": "ftp://x"}, "token_path": "x"})
    assert len(found) >= 5


def test_plain_http_sites_need_the_loopback_switch() -> None:
    provider = make({**BASE_SETTINGS, "sites": {"www": "http://127.0.0.1:9"}, "authorization_endpoint": "http://127.0.0.1:9/a"}, insecure=True)
    assert provider.sites == {"www": "http://127.0.0.1:9"}


def test_the_authorization_url() -> None:
    url = make(BASE_SETTINGS).authorization_url(
        AuthorizationRequest(state="st", redirect_uri="https://app.example/cb", scopes=("read_only", "fast_api"), code_challenge=None,
                             extra_params={"channelId": "Broker1"})
    )
    assert url == (
        "https://www.okx.com/account/oauth/authorize?channelId=Broker1&response_type=code&access_type=offline&client_id=cid"
        "&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&scope=read_only%2Cfast_api&state=st"
    )


# -- OKX answers, function level -----------------------------------------------------------------------


def answer(status: int, body: Any = None, *, raw: bytes | None = None, headers: dict[str, str] | None = None) -> UpstreamResponse:
    import json

    content = raw if raw is not None else json.dumps(body).encode()
    return UpstreamResponse(status, httpx.Headers(headers or {}), content)


def mapped(response: UpstreamResponse, call: Call) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        raise_for_okx(response, "okx", call)
    return caught.value


@pytest.mark.parametrize(
    ("code", "status", "grpc_code", "reason"),
    [
        ("50011", 429, Code.RESOURCE_EXHAUSTED, "PROVIDER_RATE_LIMITED"),
        ("50013", 429, Code.RESOURCE_EXHAUSTED, "PROVIDER_RATE_LIMITED"),
        ("50001", 503, Code.UNAVAILABLE, "PROVIDER_UNAVAILABLE"),
        ("50004", 200, Code.UNKNOWN, "OUTCOME_UNKNOWN"),
        ("50101", 401, Code.FAILED_PRECONDITION, "PROVIDER_CLIENT_AUTH_FAILED"),
        ("50102", 401, Code.FAILED_PRECONDITION, "PROVIDER_CLIENT_AUTH_FAILED"),
        ("50105", 401, Code.FAILED_PRECONDITION, "PROVIDER_CLIENT_AUTH_FAILED"),
        ("50110", 401, Code.FAILED_PRECONDITION, "PROVIDER_CLIENT_AUTH_FAILED"),
        ("50113", 401, Code.FAILED_PRECONDITION, "PROVIDER_CLIENT_AUTH_FAILED"),
        ("50120", 200, Code.PERMISSION_DENIED, "INSUFFICIENT_SCOPE"),
        ("50014", 400, Code.FAILED_PRECONDITION, "PROVIDER_REQUEST_REJECTED"),
        ("51000", 400, Code.FAILED_PRECONDITION, "PROVIDER_REQUEST_REJECTED"),
        ("50044", 200, Code.FAILED_PRECONDITION, "PROVIDER_REQUEST_REJECTED"),
        # a code of no table: the HTTP status decides, as it does without an envelope
        ("59999", 500, Code.UNAVAILABLE, "PROVIDER_UNAVAILABLE"),
        ("59999", 429, Code.RESOURCE_EXHAUSTED, "PROVIDER_RATE_LIMITED"),
    ],
)
def test_broker_codes(code: str, status: int, grpc_code: Code, reason: str) -> None:
    error = mapped(answer(status, {"code": code, "msg": "secret-in-msg-abc", "data": []}), Call.BROKER)
    assert (error.code, error.reason, error.metadata["upstream_code"], error.metadata["upstream_http_status"]) == (
        grpc_code, reason, code, str(status),
    )
    assert "secret-in-msg-abc" not in error.message and "secret-in-msg-abc" not in str(error.metadata)


def test_a_rejected_order_reports_its_scode() -> None:
    body = {"code": "1", "msg": "All operations failed", "data": [{"sCode": "51008", "sMsg": "Insufficient balance"}]}
    error = mapped(answer(200, body), Call.BEARER)
    assert (error.reason, error.metadata["upstream_code"]) == ("PROVIDER_REQUEST_REJECTED", "51008")


@pytest.mark.parametrize(
    ("response", "call", "reason"),
    [
        (answer(503, raw=b"<html>down</html>"), Call.BROKER, "PROVIDER_UNAVAILABLE"),
        (answer(429, raw=b"slow down", headers={"Retry-After": "7"}), Call.BROKER, "PROVIDER_RATE_LIMITED"),
        (answer(401, raw=b""), Call.BEARER, "REAUTH_REQUIRED"),
        (answer(200, raw=b"not json"), Call.BROKER, "PROVIDER_RESPONSE_INVALID"),
        (answer(200, {"code": "0", "data": {"not": "a list"}}), Call.BROKER, "PROVIDER_RESPONSE_INVALID"),
        (answer(302, raw=b""), Call.BROKER, "PROVIDER_RESPONSE_INVALID"),
        (answer(200, {"code": "53000\r\nX-Injected: 1", "data": []}), Call.BEARER, "PROVIDER_REQUEST_REJECTED"),
    ],
)
def test_malformed_answers(response: UpstreamResponse, call: Call, reason: str) -> None:
    error = mapped(response, call)
    assert error.reason == reason
    assert "\n" not in error.metadata.get("upstream_code", "")
    if response.status_code == 429:
        assert error.retry_after == 7.0


# -- 53xxx through the flows ---------------------------------------------------------------------------


@dataclass
class FakeOkx:
    """Answers the code exchange, then whatever the test set for refreshes and bearer calls."""

    token_error: str | None = None
    bearer_error: str | None = None
    refreshes: int = 0
    issued: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        def error(code: str) -> Response:
            return JSONResponse({"code": code, "msg": "m", "data": []}, status_code=OAUTH_CODES[code][0])

        def tokens() -> Response:
            self.issued.append(f"at-{len(self.issued)}")
            return JSONResponse({"access_token": self.issued[-1], "refresh_token": f"rt-{len(self.issued)}", "token_type": "bearer", "expires_in": 3600})

        async def token(request: Request) -> Response:
            body = await request.json()
            if body["grant_type"] == "refresh_token":
                self.refreshes += 1
                if self.token_error:
                    return error(self.token_error)
            return tokens()

        async def config(request: Request) -> Response:
            if self.bearer_error:
                return error(self.bearer_error)
            return JSONResponse({"code": "0", "msg": "", "data": [{"uid": "123456789012345678"}]})

        return Starlette(routes=[Route("/v5/users/oauth/token", token, methods=["POST"]), Route("/api/v5/account/config", config)])


@pytest.fixture(scope="module")
async def fake_okx(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[GatewayHarness, FakeOkx]]:
    fake = FakeOkx()
    async with serve_asgi(fake.app()) as (base_url, _, _):
        settings = {**BASE_SETTINGS, "sites": {"www": base_url}, "authorization_endpoint": base_url + "/authorize"}
        entry = ProviderConfig("okx", "okx", (REDIRECT_URI,), settings, allow_insecure_http=True)
        async with running_gateway(gateway_config(tmp_path_factory.mktemp("fake-okx"), [entry]), FakeClock()) as harness:
            yield harness, fake


async def new_connection(harness: GatewayHarness, fake: FakeOkx) -> str:
    fake.token_error = fake.bearer_error = None
    start = await harness.stub.Authorize(api.AuthorizeRequest(provider="okx", redirect_uri=REDIRECT_URI), timeout=10)
    state = httpx.URL(start.authorization_url).params["state"]
    exchanged = await harness.stub.Exchange(api.ExchangeRequest(state=state, code="code-1"), timeout=10)
    return exchanged.connection.connection_id


DEAD = ("53000", "53001", "53002", "53003", "53005", "53006", "53009", "53012")
EXPECTED = {
    **{code: (grpc.StatusCode.FAILED_PRECONDITION, "REAUTH_REQUIRED") for code in DEAD},
    "53004": (grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_REQUEST_REJECTED"),
    "53010": (grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_REQUEST_REJECTED"),
    "53011": (grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_REQUEST_REJECTED"),
    "53013": (grpc.StatusCode.PERMISSION_DENIED, "INSUFFICIENT_SCOPE"),
    "53014": (grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_CLIENT_AUTH_FAILED"),
    "53015": (grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_REQUEST_REJECTED"),
    "53016": (grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_REQUEST_REJECTED"),
    "53017": (grpc.StatusCode.FAILED_PRECONDITION, "PROVIDER_REQUEST_REJECTED"),
}


def test_every_documented_53xxx_code_has_an_expectation() -> None:
    assert set(EXPECTED) == set(OAUTH_CODES)


@pytest.mark.parametrize("code", sorted(EXPECTED))
async def test_53xxx_on_refresh(fake_okx: tuple[GatewayHarness, FakeOkx], code: str) -> None:
    harness, fake = fake_okx
    connection_id = await new_connection(harness, fake)
    fake.token_error = code
    failure = await expect_failure(harness.stub.Refresh(api.RefreshRequest(connection_id=connection_id), timeout=10))
    assert (failure.code, failure.reason) == EXPECTED[code]
    assert failure.metadata["upstream_code"] == code and failure.metadata["upstream_http_status"] == str(OAUTH_CODES[code][0])
    status = (await harness.stub.GetConnection(api.GetConnectionRequest(connection_id=connection_id), timeout=10)).connection.status
    dead = code in DEAD
    assert status == (connection_pb2.CONNECTION_STATUS_REAUTH_REQUIRED if dead else connection_pb2.CONNECTION_STATUS_ACTIVE)


@pytest.mark.parametrize("code", sorted(EXPECTED))
async def test_53xxx_on_a_bearer_call(fake_okx: tuple[GatewayHarness, FakeOkx], code: str) -> None:
    """A dead token gets one forced refresh and one retry (here refused again); other codes none."""
    harness, fake = fake_okx
    connection_id = await new_connection(harness, fake)
    fake.bearer_error = code
    before = fake.refreshes
    failure = await expect_failure(harness.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection_id), timeout=10))
    assert (failure.code, failure.reason) == EXPECTED[code]
    assert failure.metadata["upstream_code"] == code
    assert fake.refreshes - before == (1 if code in DEAD else 0)
