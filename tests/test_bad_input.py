"""Bad input on every BrokerGateway RPC: INVALID_ARGUMENT naming the field, and nothing sent upstream.

Acceptance (docs/design/errors.md and security.md, Bad input): invalid input on every RPC (empty,
oversized, malformed URIs, unknown provider...) gives INVALID_ARGUMENT with the specific ErrorInfo
reason, ``metadata["field"]`` and a ``google.rpc.BadRequest`` naming the same field, never INTERNAL
or UNKNOWN, never a traceback in the message; and the wallet simulator receives no request at all.

One gateway and one wallet simulator serve the whole module (starting them per case would cost more
than the cases), so every test clears the simulator's request log first and asserts it stayed empty.
The gateway has three providers: ``wallet`` (the generic-oauth2 provider plus two test operations, so
InvokeOperation has something real to validate against), ``wallet-b`` (plain generic-oauth2 with an
issuer, for the RFC 9207 mix-up case) and nothing else, so any other id is an unknown provider.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import conftest
import grpc
import pytest
import pytest_asyncio
from broker_gateway.oauth2 import raise_for_resource_error
from broker_gateway.provider import ConnectionCredentials, Operation, OperationAuth, hookimpl
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import connection_pb2
from broker_gateway_oauth2.provider import GenericOAuth2Provider
from conftest import REDIRECT_URI, Failure, FakeClock, GatewayHarness, Wallet, expect_failure
from google.protobuf import json_format, struct_pb2
from google.rpc import error_details_pb2

INVALID = grpc.StatusCode.INVALID_ARGUMENT
#: A second registered redirect URI, https, so the ":443" and "http vs https" variants mean something.
HTTPS_REDIRECT = "https://app.example.com/oauth/callback"
WALLET_B_ISSUER = "https://wallet-b.example"
#: Below the gateway's 256 KiB max_receive_message_length, far above every field limit.
BIG = 200 * 1024
#: Above the 256 KiB receive limit: refused by grpc itself.
OVER_LIMIT = 300 * 1024
SERVICE = "/broker_gateway.v1.BrokerGateway/"


# -- a provider with operations, so InvokeOperation's validation has something to check against -----


class WalletWithOperations(GenericOAuth2Provider):
    """The wallet provider plus two operations that reach the wallet simulator when they run."""

    type = "test-wallet-with-operations"

    def operations(self) -> Sequence[Operation]:
        return (
            Operation(
                name="balance",
                description="the user's balance (user info)",
                auth=OperationAuth.USER_TOKEN,
                params_schema={
                    "type": "object",
                    "properties": {"currency": {"type": "string", "enum": ["USD"]}},
                    "additionalProperties": False,
                },
                safe_to_retry=True,
            ),
            Operation(
                name="ping",
                description="an unauthenticated call upstream",
                auth=OperationAuth.NONE,
                params_schema={
                    "type": "object",
                    "properties": {"count": {"type": "number", "minimum": 1, "maximum": 5}},
                    "required": ["count"],
                    "additionalProperties": False,
                },
                safe_to_retry=True,
            ),
        )

    async def invoke(
        self, operation: Operation, params: Mapping[str, Any], *, credentials: ConnectionCredentials | None, request_id: str
    ) -> Any:
        if operation.name == "balance":
            assert credentials is not None
            return dict((await self.user_info(credentials)).raw)
        response = await self.context.http.request("GET", self.endpoints["userinfo_endpoint"] or "")
        if response.status_code != 401:
            raise_for_resource_error(response, self.context.provider_id)
        return {"status": response.status_code}


class OperationsPlugin:
    @hookimpl
    def broker_gateway_register_providers(self, register: Callable[[type[Any]], None]) -> None:
        register(WalletWithOperations)


# -- the module's gateway ----------------------------------------------------------------------------


@dataclass
class Env:
    """The module's wallet simulator, gateway, and two connections made through the real flow."""

    wallet: Wallet
    harness: GatewayHarness
    connection_id: str  # an ACTIVE connection of provider "wallet"
    other_connection_id: str  # an ACTIVE connection of provider "wallet-b"

    @property
    def stub(self) -> Any:
        return self.harness.stub

    @property
    def upstream_requests(self) -> int:
        return self.wallet.request_log.count()


async def _connect(harness: GatewayHarness, wallet: Wallet, provider: str, connection_id: str) -> str:
    start = await harness.stub.Authorize(
        api.AuthorizeRequest(provider=provider, redirect_uri=REDIRECT_URI, connection_id=connection_id), timeout=10
    )
    callback = await wallet.approve(start.authorization_url, "alice")
    iss = WALLET_B_ISSUER if provider == "wallet-b" else ""
    response = await harness.stub.Exchange(
        api.ExchangeRequest(state=callback.pop("state"), code=callback.pop("code"), iss=iss, callback_params=callback),
        timeout=10,
    )
    assert response.connection.status == connection_pb2.CONNECTION_STATUS_ACTIVE
    return response.connection.connection_id


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    clock = FakeClock()
    async with conftest.serve_wallet(clock) as wallet:
        providers = [
            dataclasses.replace(
                wallet.provider_config("wallet"), type=WalletWithOperations.type, redirect_uris=(REDIRECT_URI, HTTPS_REDIRECT)
            ),
            wallet.provider_config("wallet-b", issuer=WALLET_B_ISSUER),
        ]
        config = conftest.gateway_config(Path(tmp_path_factory.mktemp("bad-input")), providers)
        async with conftest.running_gateway(config, clock, extra_plugins=[OperationsPlugin()]) as harness:
            connection_id = await _connect(harness, wallet, "wallet", "acct-1")
            other = await _connect(harness, wallet, "wallet-b", "acct-b")
            yield Env(wallet, harness, connection_id, other)


@pytest.fixture(autouse=True)
def quiet_upstream(env: Env) -> Iterator[None]:
    """Each case starts with an empty request log, so "nothing upstream" is ``count() == 0``."""
    env.wallet.request_log.clear()
    yield


# -- the assertion every case makes ------------------------------------------------------------------


def bad_request_fields(failure: Failure) -> list[str]:
    fields: list[str] = []
    for detail in failure.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            fields.extend(violation.field for violation in bad_request.field_violations)
    return fields


def assert_no_traceback(message: str) -> None:
    assert "Traceback" not in message and 'File "' not in message, message


def assert_bad_input(failure: Failure, reason: str, field: str, *, code: grpc.StatusCode = INVALID) -> None:
    """The status, the specific reason, the field in ErrorInfo metadata and in BadRequest; short,
    traceback-free message (it travels in trailers, docs/design/errors.md)."""
    assert (failure.code, failure.reason) == (code, reason), failure
    assert failure.metadata.get("field") == field, failure.metadata
    assert bad_request_fields(failure) == [field], failure.details
    assert_no_traceback(failure.message)
    assert len(failure.message) < 1024, f"message of {len(failure.message)} characters"


async def refused(env: Env, call: Awaitable[Any], reason: str, field: str, *, code: grpc.StatusCode = INVALID) -> Failure:
    failure = await expect_failure(call)
    assert_bad_input(failure, reason, field, code=code)
    assert env.upstream_requests == 0, env.wallet.request_log.snapshot()
    return failure


# -- shared bad values -------------------------------------------------------------------------------

#: Malformed connection ids: (value, expected reason).
BAD_CONNECTION_IDS: list[Any] = [
    pytest.param("", "INVALID_FIELD", id="empty"),
    pytest.param("acct-1 ", "INVALID_FIELD", id="trailing-space"),
    pytest.param(" acct-1", "INVALID_FIELD", id="leading-space"),
    pytest.param("acct 1", "INVALID_FIELD", id="inner-space"),
    pytest.param("acct-1/../acct-1", "INVALID_FIELD", id="slashes"),
    pytest.param("acct\\1", "INVALID_FIELD", id="backslash"),
    pytest.param("acct-1\x00", "INVALID_FIELD", id="nul"),
    pytest.param("acct-1\r\nx-injected: 1", "INVALID_FIELD", id="crlf"),
    pytest.param("acct-1\t", "INVALID_FIELD", id="tab"),
    pytest.param("äcct-1", "INVALID_FIELD", id="unicode"),
    pytest.param("acct-１", "INVALID_FIELD", id="fullwidth-digit"),
    pytest.param("acct-1%20", "INVALID_FIELD", id="percent"),
    pytest.param("-acct", "INVALID_FIELD", id="leading-dash"),
    pytest.param("..", "INVALID_FIELD", id="dot-dot"),
    pytest.param("acct;drop", "INVALID_FIELD", id="semicolon"),
    pytest.param("a" * 129, "FIELD_TOO_LARGE", id="129-chars"),
    pytest.param("a" * BIG, "FIELD_TOO_LARGE", id="200KB"),
]

#: Every RPC whose only input is a connection id, with its request message.
CONNECTION_RPCS: dict[str, type[Any]] = {
    "GetConnection": api.GetConnectionRequest,
    "DeleteConnection": api.DeleteConnectionRequest,
    "GetAccessToken": api.GetAccessTokenRequest,
    "Refresh": api.RefreshRequest,
    "Revoke": api.RevokeRequest,
    "GetUserInfo": api.GetUserInfoRequest,
}

BAD_PROVIDERS: list[Any] = [
    pytest.param("", "INVALID_FIELD", id="empty"),
    pytest.param("nope", "UNKNOWN_PROVIDER", id="unknown"),
    pytest.param("WALLET", "UNKNOWN_PROVIDER", id="case"),
    pytest.param("wallet ", "UNKNOWN_PROVIDER", id="trailing-space"),
    pytest.param("wallet\x00", "UNKNOWN_PROVIDER", id="nul"),
    pytest.param("wället", "UNKNOWN_PROVIDER", id="unicode"),
    pytest.param("a" * 129, "FIELD_TOO_LARGE", id="129-chars"),
    pytest.param("w" * BIG, "FIELD_TOO_LARGE", id="200KB"),
]


# -- sanity: the request log does see upstream calls --------------------------------------------------


async def test_request_log_counts_upstream_calls(env: Env) -> None:
    """Why: "nothing upstream" is only meaningful if a valid call on the same connection is seen."""
    await env.stub.GetUserInfo(api.GetUserInfoRequest(connection_id=env.connection_id), timeout=10)
    assert env.upstream_requests == 1


# -- the connection RPCs -----------------------------------------------------------------------------


@pytest.mark.parametrize("rpc", sorted(CONNECTION_RPCS))
@pytest.mark.parametrize(("connection_id", "reason"), BAD_CONNECTION_IDS)
async def test_connection_rpcs_refuse_malformed_connection_id(env: Env, rpc: str, connection_id: str, reason: str) -> None:
    """Why: ids reach the store and logs; several variants differ from the real ``acct-1`` only by
    whitespace, NUL or a path trick, which must not resolve to it."""
    request = CONNECTION_RPCS[rpc](connection_id=connection_id)
    await refused(env, getattr(env.stub, rpc)(request, timeout=10), reason, "connection_id")


async def test_bad_connection_id_leaves_the_connection_alone(env: Env) -> None:
    """Why: a refused Revoke or DeleteConnection for a look-alike id must not touch ``acct-1``."""
    for rpc in ("Revoke", "DeleteConnection", "Refresh"):
        await refused(
            env, getattr(env.stub, rpc)(CONNECTION_RPCS[rpc](connection_id=env.connection_id + "\x00")), "INVALID_FIELD", "connection_id"
        )
    connection = (await env.stub.GetConnection(api.GetConnectionRequest(connection_id=env.connection_id))).connection
    assert connection.status == connection_pb2.CONNECTION_STATUS_ACTIVE


# -- ListConnections ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "reason"), [p for p in BAD_PROVIDERS if p.id != "empty"])
async def test_list_connections_refuses_bad_provider(env: Env, provider: str, reason: str) -> None:
    """Why: the provider filter is optional, so empty is fine, but a non-empty unknown one is an error
    rather than an empty page the caller would take for "no connections"."""
    await refused(env, env.stub.ListConnections(api.ListConnectionsRequest(provider=provider)), reason, "provider")


@pytest.mark.parametrize("page_size", [-1, -50, -(2**31)])
async def test_list_connections_refuses_negative_page_size(env: Env, page_size: int) -> None:
    """Why: AIP-158 makes a negative page_size INVALID_ARGUMENT, not a silent default."""
    await refused(env, env.stub.ListConnections(api.ListConnectionsRequest(page_size=page_size)), "INVALID_FIELD", "page_size")


def _token(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("page_token", "reason"),
    [
        pytest.param("garbage", "INVALID_FIELD", id="garbage"),
        pytest.param("!!!!", "INVALID_FIELD", id="not-base64"),
        pytest.param("\x00", "INVALID_FIELD", id="nul"),
        pytest.param("🙂", "INVALID_FIELD", id="emoji"),
        pytest.param(_token([1, 2]), "INVALID_FIELD", id="json-list"),
        pytest.param(_token({"after": -1, "provider": ""}), "INVALID_FIELD", id="negative-cursor"),
        pytest.param(_token({"after": "1", "provider": ""}), "INVALID_FIELD", id="string-cursor"),
        pytest.param(_token({"after": 1}), "INVALID_FIELD", id="no-provider"),
        pytest.param(_token({"after": 1, "provider": "wallet"}), "INVALID_FIELD", id="other-filter"),
        pytest.param(base64.urlsafe_b64encode(b"\xff\xfe").decode(), "INVALID_FIELD", id="binary"),
        pytest.param("A" * BIG, "FIELD_TOO_LARGE", id="200KB"),
    ],
)
async def test_list_connections_refuses_garbage_page_token(env: Env, page_token: str, reason: str) -> None:
    """Why: page tokens are opaque to callers; a forged or mangled one must not reach the store."""
    await refused(env, env.stub.ListConnections(api.ListConnectionsRequest(page_token=page_token)), reason, "page_token")


async def test_list_connections_refuses_token_from_another_filter(env: Env) -> None:
    """Why: a real token issued for one provider filter is not valid with another (AIP-158)."""
    first = await env.stub.ListConnections(api.ListConnectionsRequest(page_size=1))
    assert first.next_page_token  # two connections exist
    request = api.ListConnectionsRequest(provider="wallet", page_size=1, page_token=first.next_page_token)
    await refused(env, env.stub.ListConnections(request), "INVALID_FIELD", "page_token")


# -- Authorize ---------------------------------------------------------------------------------------


def authorize(**fields: Any) -> api.AuthorizeRequest:
    request: dict[str, Any] = {"provider": "wallet", "redirect_uri": REDIRECT_URI, **fields}
    return api.AuthorizeRequest(**request)


async def test_authorize_valid_request_is_accepted(env: Env) -> None:
    """Why: the control for every Authorize case below, which each change one field of this request."""
    for redirect_uri in (REDIRECT_URI, HTTPS_REDIRECT):
        start = await env.stub.Authorize(
            authorize(redirect_uri=redirect_uri, scopes=["profile", "balance"], extra_params={"auto_authorize": "true"}),
            timeout=10,
        )
        assert start.state and start.authorization_url
    assert env.upstream_requests == 0


@pytest.mark.parametrize(("provider", "reason"), BAD_PROVIDERS)
async def test_authorize_refuses_bad_provider(env: Env, provider: str, reason: str) -> None:
    """Why: an unknown provider is bad input (docs/design/errors.md), not NOT_FOUND or INTERNAL."""
    await refused(env, env.stub.Authorize(authorize(provider=provider)), reason, "provider")


REDIRECT_VARIANTS: list[Any] = [
    # docs/design/security.md, Bad input: each differs from a registered URI; exact string match is the rule.
    pytest.param(REDIRECT_URI + "/", "INVALID_REDIRECT_URI", id="trailing-slash"),
    pytest.param(HTTPS_REDIRECT + "/", "INVALID_REDIRECT_URI", id="https-trailing-slash"),
    pytest.param("HTTP://127.0.0.1:8765/callback", "INVALID_REDIRECT_URI", id="scheme-case"),
    pytest.param("https://APP.example.com/oauth/callback", "INVALID_REDIRECT_URI", id="host-case"),
    pytest.param("http://127.0.0.1:8765/Callback", "INVALID_REDIRECT_URI", id="path-case"),
    pytest.param("https://app.example.com:443/oauth/callback", "INVALID_REDIRECT_URI", id="default-port-443"),
    pytest.param("http://127.0.0.1:08765/callback", "INVALID_REDIRECT_URI", id="port-leading-zero"),
    pytest.param("http://app.example.com/oauth/callback", "INVALID_REDIRECT_URI", id="http-instead-of-https"),
    pytest.param("https://127.0.0.1:8765/callback", "INVALID_REDIRECT_URI", id="https-instead-of-http"),
    pytest.param("http://localhost:8765/callback", "INVALID_REDIRECT_URI", id="localhost-alias"),
    pytest.param("http://[::1]:8765/callback", "INVALID_REDIRECT_URI", id="ipv6-literal"),
    pytest.param("http://127.0.0.1:8765/callback/../evil", "INVALID_REDIRECT_URI", id="dot-dot"),
    pytest.param("http://127.0.0.1:8765/evil/../callback", "INVALID_REDIRECT_URI", id="dot-dot-normalises-to-it"),
    pytest.param("http://127.0.0.1:8765/callback/%2e%2e/evil", "INVALID_REDIRECT_URI", id="encoded-dot-dot"),
    pytest.param("http://127.0.0.1:8765/callback/%252e%252e/evil", "INVALID_REDIRECT_URI", id="double-encoded"),
    pytest.param("http://127.0.0.1:8765/%63allback", "INVALID_REDIRECT_URI", id="encoded-letter"),
    pytest.param("http://127.0.0.1:8765@evil.example/callback", "INVALID_REDIRECT_URI", id="userinfo-trick"),
    pytest.param("http://user@127.0.0.1:8765/callback", "INVALID_REDIRECT_URI", id="userinfo-on-good-host"),
    pytest.param("http:\\\\evil.example\\callback", "INVALID_REDIRECT_URI", id="backslash"),
    pytest.param("http://127.0.0.1:8765\\@evil.example/callback", "INVALID_REDIRECT_URI", id="backslash-at"),
    pytest.param(REDIRECT_URI + "?next=https://evil.example", "INVALID_REDIRECT_URI", id="extra-query"),
    pytest.param(REDIRECT_URI + "?", "INVALID_REDIRECT_URI", id="empty-query"),
    pytest.param(REDIRECT_URI + "#frag", "INVALID_REDIRECT_URI", id="fragment"),
    pytest.param(REDIRECT_URI + "#", "INVALID_REDIRECT_URI", id="empty-fragment"),
    pytest.param("https://xn--pp-example-9n4f.com/oauth/callback", "INVALID_REDIRECT_URI", id="punycode-host"),
    pytest.param("//127.0.0.1:8765/callback", "INVALID_REDIRECT_URI", id="scheme-relative"),
    pytest.param("/callback", "INVALID_REDIRECT_URI", id="relative"),
    pytest.param("javascript:alert(1)", "INVALID_REDIRECT_URI", id="javascript"),
    # Not even a safe string: refused by the shape check before the allowlist.
    pytest.param(" " + REDIRECT_URI, "INVALID_FIELD", id="leading-space"),
    pytest.param(REDIRECT_URI + " ", "INVALID_FIELD", id="trailing-space"),
    pytest.param(REDIRECT_URI + "\t", "INVALID_FIELD", id="tab"),
    pytest.param(REDIRECT_URI + "\r\nLocation: https://evil.example", "INVALID_FIELD", id="crlf"),
    pytest.param(REDIRECT_URI + "\n", "INVALID_FIELD", id="lf"),
    pytest.param(REDIRECT_URI + "\x00", "INVALID_FIELD", id="nul"),
    pytest.param("http://127.0.0.1:8765/cаllback", "INVALID_FIELD", id="cyrillic-homoglyph"),
    pytest.param("https://аpp.example.com/oauth/callback", "INVALID_FIELD", id="idn-homoglyph-host"),
    pytest.param("", "INVALID_FIELD", id="empty"),
    pytest.param(REDIRECT_URI + "?x=" + "a" * 2048, "FIELD_TOO_LARGE", id="over-2KiB"),
    pytest.param(REDIRECT_URI + "?x=" + "a" * BIG, "FIELD_TOO_LARGE", id="200KB"),
]


@pytest.mark.parametrize(("redirect_uri", "reason"), REDIRECT_VARIANTS)
async def test_authorize_refuses_redirect_uri_variants(env: Env, redirect_uri: str, reason: str) -> None:
    """Why: open redirectors and code theft start with a redirect_uri that merely resembles the
    registered one (RFC 9700 §4.1); only byte equality is safe."""
    await refused(env, env.stub.Authorize(authorize(redirect_uri=redirect_uri)), reason, "redirect_uri")


@pytest.mark.parametrize(
    ("scopes", "reason"),
    [
        pytest.param(["profile&admin=1"], "SCOPE_NOT_ALLOWED", id="ampersand-equals"),
        pytest.param(["profile#frag"], "SCOPE_NOT_ALLOWED", id="hash"),
        pytest.param(["profile=x"], "SCOPE_NOT_ALLOWED", id="equals"),
        pytest.param(["admin"], "SCOPE_NOT_ALLOWED", id="unknown"),
        pytest.param(["Profile"], "SCOPE_NOT_ALLOWED", id="case"),
        pytest.param(["profile", "openid"], "SCOPE_NOT_ALLOWED", id="one-unknown-of-two"),
        pytest.param(["profile balance"], "INVALID_FIELD", id="space-joined"),
        pytest.param(["profile\r\nbalance"], "INVALID_FIELD", id="crlf"),
        pytest.param(["profile\x00"], "INVALID_FIELD", id="nul"),
        pytest.param(['pro"file'], "INVALID_FIELD", id="quote"),
        pytest.param(["pro\\file"], "INVALID_FIELD", id="backslash"),
        pytest.param(["prоfile"], "INVALID_FIELD", id="non-ascii"),
        pytest.param([""], "INVALID_FIELD", id="empty-entry"),
        pytest.param(["profile", ""], "INVALID_FIELD", id="empty-second-entry"),
        pytest.param(["p" * 1025], "FIELD_TOO_LARGE", id="over-1KiB"),
        pytest.param(["p" * BIG], "FIELD_TOO_LARGE", id="200KB"),
        pytest.param(["profile"] * 51, "FIELD_TOO_LARGE", id="51-entries"),
        pytest.param(["profile"] * 20_000, "FIELD_TOO_LARGE", id="20000-entries"),
    ],
)
async def test_authorize_refuses_bad_scopes(env: Env, scopes: list[str], reason: str) -> None:
    """Why: a scope is copied into the authorization URL; separators or unknown scopes must never get
    there (docs/design/security.md), and the per-provider allowlist is enforced by the gateway."""
    await refused(env, env.stub.Authorize(authorize(scopes=scopes)), reason, "scopes")


@pytest.mark.parametrize(
    ("extra_params", "reason"),
    [
        *(
            pytest.param({name: "x"}, "PARAMETER_NOT_ALLOWED", id=f"reserved-{name}")
            for name in (
                "state",
                "redirect_uri",
                "client_id",
                "response_type",
                "scope",
                "code_challenge",
                "code_challenge_method",
            )
        ),
        pytest.param({"prompt": "none"}, "PARAMETER_NOT_ALLOWED", id="not-allowed"),
        pytest.param({"AUTO_AUTHORIZE": "true"}, "PARAMETER_NOT_ALLOWED", id="allowed-but-case"),
        pytest.param({"auto_authorize": "true", "state": "evil"}, "PARAMETER_NOT_ALLOWED", id="allowed-plus-reserved"),
        pytest.param({"auto_authorize": "true\r\nX-Evil: 1"}, "INVALID_FIELD", id="crlf-value"),
        pytest.param({"auto_authorize": "true\x00"}, "INVALID_FIELD", id="nul-value"),
        pytest.param({"auto authorize": "true"}, "INVALID_FIELD", id="space-in-key"),
        pytest.param({"": "true"}, "INVALID_FIELD", id="empty-key"),
        pytest.param({"auto_authorize\n": "true"}, "INVALID_FIELD", id="lf-in-key"),
        pytest.param({"äuto": "true"}, "INVALID_FIELD", id="unicode-key"),
        pytest.param({"k" * 65: "true"}, "FIELD_TOO_LARGE", id="long-key"),
        pytest.param({"auto_authorize": "t" * 2049}, "FIELD_TOO_LARGE", id="long-value"),
        pytest.param({"auto_authorize": "t" * BIG}, "FIELD_TOO_LARGE", id="200KB-value"),
        pytest.param({f"p{i}": "x" for i in range(21)}, "FIELD_TOO_LARGE", id="21-entries"),
    ],
)
async def test_authorize_refuses_bad_extra_params(env: Env, extra_params: dict[str, str], reason: str) -> None:
    """Why: extra_params must never override what the core sets (state, redirect_uri, PKCE), and only
    the provider's allowlisted parameters pass through."""
    await refused(env, env.stub.Authorize(authorize(extra_params=extra_params)), reason, "extra_params")


@pytest.mark.parametrize(("connection_id", "reason"), [p for p in BAD_CONNECTION_IDS if p.id != "empty"])
async def test_authorize_refuses_malformed_connection_id(env: Env, connection_id: str, reason: str) -> None:
    """Why: connection_id is optional on Authorize (empty means "choose one"), but a given one must be
    a well-formed id before any pending state is stored under it."""
    await refused(env, env.stub.Authorize(authorize(connection_id=connection_id)), reason, "connection_id")


async def test_authorize_refuses_connection_id_of_another_provider(env: Env) -> None:
    """Why: re-authorizing must not move a connection to another provider (documented ALREADY_EXISTS)."""
    failure = await expect_failure(env.stub.Authorize(authorize(connection_id=env.other_connection_id)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ALREADY_EXISTS, "CONNECTION_ID_IN_USE")
    assert_no_traceback(failure.message)
    assert env.upstream_requests == 0


# -- Exchange ----------------------------------------------------------------------------------------


async def pending_state(env: Env, provider: str = "wallet") -> tuple[str, str]:
    """A real pending authorization: its state and authorization URL (no upstream request)."""
    start = await env.stub.Authorize(authorize(provider=provider), timeout=10)
    return start.state, start.authorization_url


async def assert_state_still_usable(env: Env, state: str, authorization_url: str) -> None:
    """The refused Exchange did not consume the state: approving and exchanging now works."""
    callback = await env.wallet.approve(authorization_url, "carol")
    assert callback["state"] == state
    response = await env.stub.Exchange(api.ExchangeRequest(state=state, code=callback["code"]), timeout=10)
    assert response.connection.status == connection_pb2.CONNECTION_STATUS_ACTIVE


VALID_CODE = "a-well-formed-code-the-wallet-never-issued"

EXCHANGE_CASES: list[Any] = [
    # (overrides of the request, expected reason, field); "STATE" stands for the real pending state.
    pytest.param({"state": ""}, "INVALID_FIELD", "state", id="state-empty"),
    pytest.param({"state": "STATE "}, "INVALID_FIELD", "state", id="state-trailing-space"),
    pytest.param({"state": "STATE\r\nX: 1"}, "INVALID_FIELD", "state", id="state-crlf"),
    pytest.param({"state": "STATE\x00"}, "INVALID_FIELD", "state", id="state-nul"),
    pytest.param({"state": "stäte"}, "INVALID_FIELD", "state", id="state-unicode"),
    pytest.param({"state": "s" * 513}, "FIELD_TOO_LARGE", "state", id="state-513"),
    pytest.param({"state": "s" * BIG}, "FIELD_TOO_LARGE", "state", id="state-200KB"),
    pytest.param({"code": ""}, "INVALID_FIELD", "code", id="code-empty"),
    pytest.param({"code": "abc def"}, "INVALID_FIELD", "code", id="code-space"),
    pytest.param({"code": "abc\r\ndef"}, "INVALID_FIELD", "code", id="code-crlf"),
    pytest.param({"code": "abc\x00"}, "INVALID_FIELD", "code", id="code-nul"),
    pytest.param({"code": "cödé"}, "INVALID_FIELD", "code", id="code-unicode"),
    pytest.param({"code": "c" * 4097}, "FIELD_TOO_LARGE", "code", id="code-4097"),
    pytest.param({"code": "c" * 64 * 1024}, "FIELD_TOO_LARGE", "code", id="code-64KiB"),
    pytest.param({"code": "c" * BIG}, "FIELD_TOO_LARGE", "code", id="code-200KB"),
    pytest.param({"iss": "https://wallet example"}, "INVALID_FIELD", "iss", id="iss-space"),
    pytest.param({"iss": "https://wallet.example\r\n"}, "INVALID_FIELD", "iss", id="iss-crlf"),
    pytest.param({"iss": "https://wallet.example\x00"}, "INVALID_FIELD", "iss", id="iss-nul"),
    pytest.param({"iss": "https://wället.example"}, "INVALID_FIELD", "iss", id="iss-unicode"),
    pytest.param({"iss": "https://w.example/" + "i" * 2048}, "FIELD_TOO_LARGE", "iss", id="iss-over-2KiB"),
    pytest.param({"callback_params": {"session_state": "a\r\nb"}}, "INVALID_FIELD", "callback_params", id="params-crlf"),
    pytest.param({"callback_params": {"session state": "a"}}, "INVALID_FIELD", "callback_params", id="params-space-key"),
    pytest.param({"callback_params": {"x": "\x00"}}, "INVALID_FIELD", "callback_params", id="params-nul"),
    pytest.param({"callback_params": {"x": "v" * BIG}}, "FIELD_TOO_LARGE", "callback_params", id="params-200KB"),
    pytest.param({"callback_params": {f"k{i}": "v" for i in range(21)}}, "FIELD_TOO_LARGE", "callback_params", id="params-21"),
]


@pytest.mark.parametrize(("overrides", "reason", "field"), EXCHANGE_CASES)
async def test_exchange_refuses_bad_input_without_consuming_state(
    env: Env, overrides: dict[str, Any], reason: str, field: str
) -> None:
    """Why: a malformed callback must be refused before the token request (docs/design/security.md) and
    before the single-use state is taken, so a corrected retry of the same callback still works."""
    state, authorization_url = await pending_state(env)
    request: dict[str, Any] = {"state": state, "code": VALID_CODE, **overrides}
    if isinstance(request["state"], str) and request["state"].startswith("STATE"):
        request["state"] = state + request["state"][len("STATE") :]
    await refused(env, env.stub.Exchange(api.ExchangeRequest(**request)), reason, field)
    await assert_state_still_usable(env, state, authorization_url)


async def test_exchange_unknown_state_is_failed_precondition(env: Env) -> None:
    """Why: a well-formed but unknown state is not bad input but a dead transaction (docs/design/errors.md)."""
    failure = await expect_failure(env.stub.Exchange(api.ExchangeRequest(state="no-such-state", code=VALID_CODE)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "AUTHZ_TRANSACTION_INVALID")
    assert failure.metadata.get("cause") == "unknown"
    assert_no_traceback(failure.message)
    assert env.upstream_requests == 0


@pytest.mark.parametrize(
    "iss",
    [
        "https://evil.example",
        WALLET_B_ISSUER + "/",
        WALLET_B_ISSUER.upper(),
        WALLET_B_ISSUER.replace("-", "%2D"),
    ],
    ids=["other", "trailing-slash", "case", "percent-encoded"],
)
async def test_exchange_refuses_issuer_mismatch(env: Env, iss: str) -> None:
    """Why: RFC 9207 mix-up defence; a callback from another issuer must not cause a token request
    to either (docs/design/security.md, Exchange)."""
    state, _ = await pending_state(env, "wallet-b")
    await refused(env, env.stub.Exchange(api.ExchangeRequest(state=state, code=VALID_CODE, iss=iss)), "ISSUER_MISMATCH", "iss")


# -- InvokeOperation ---------------------------------------------------------------------------------


def params(value: Mapping[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(dict(value), struct_pb2.Struct())


def invoke(**fields: Any) -> api.InvokeOperationRequest:
    request: dict[str, Any] = {"provider": "wallet", "operation": "ping", "params": params({"count": 1}), **fields}
    return api.InvokeOperationRequest(**request)


async def test_invoke_valid_requests_reach_upstream(env: Env) -> None:
    """Why: the control for the InvokeOperation cases: both operations really call the wallet."""
    assert (await env.stub.InvokeOperation(invoke(), timeout=10)).result.struct_value["status"] == 401
    result = await env.stub.InvokeOperation(
        invoke(operation="balance", connection_id=env.connection_id, params=params({"currency": "USD"})), timeout=10
    )
    assert result.result.struct_value["username"] == "alice"  # the wallet's user info for acct-1
    assert env.upstream_requests == 2


@pytest.mark.parametrize(("provider", "reason"), BAD_PROVIDERS)
async def test_invoke_refuses_bad_provider(env: Env, provider: str, reason: str) -> None:
    """Why: unknown provider on the operations path is the same bad input as on Authorize."""
    await refused(env, env.stub.InvokeOperation(invoke(provider=provider)), reason, "provider")


@pytest.mark.parametrize(
    ("operation", "reason"),
    [
        pytest.param("", "INVALID_FIELD", id="empty"),
        pytest.param("withdraw", "UNKNOWN_OPERATION", id="unknown"),
        pytest.param("PING", "UNKNOWN_OPERATION", id="case"),
        pytest.param("ping ", "UNKNOWN_OPERATION", id="trailing-space"),
        pytest.param("ping\x00", "UNKNOWN_OPERATION", id="nul"),
        pytest.param("../ping", "UNKNOWN_OPERATION", id="path"),
    ],
)
async def test_invoke_refuses_unknown_operation(env: Env, operation: str, reason: str) -> None:
    """Why: operations are a closed, per-provider list; anything else never reaches the exchange."""
    await refused(env, env.stub.InvokeOperation(invoke(operation=operation)), reason, "operation")


async def test_invoke_refuses_oversized_operation(env: Env) -> None:
    """Why: a 200 KB operation name must be refused with a short message (trailers are small)."""
    failure = await expect_failure(env.stub.InvokeOperation(invoke(operation="o" * BIG)))
    # Either answer names the field; FIELD_TOO_LARGE would match the other fields' behaviour.
    assert failure.reason in ("FIELD_TOO_LARGE", "UNKNOWN_OPERATION"), failure
    assert_bad_input(failure, failure.reason, "operation")
    assert env.upstream_requests == 0


@pytest.mark.parametrize(
    ("overrides", "reason", "field"),
    [
        pytest.param({"params": params({})}, "INVALID_FIELD", "params.count", id="missing-required"),
        pytest.param({"params": params({"count": 0})}, "INVALID_FIELD", "params.count", id="below-minimum"),
        pytest.param({"params": params({"count": 6})}, "INVALID_FIELD", "params.count", id="above-maximum"),
        pytest.param({"params": params({"count": "1"})}, "INVALID_FIELD", "params.count", id="string-for-number"),
        pytest.param({"params": params({"count": 1, "extra": True})}, "INVALID_FIELD", "params", id="extra-param"),
        pytest.param(
            {"operation": "balance", "connection_id": "acct-1", "params": params({"currency": "EUR"})},
            "INVALID_FIELD",
            "params.currency",
            id="not-in-enum",
        ),
        pytest.param({"request_id": "req 1"}, "INVALID_FIELD", "request_id", id="request-id-space"),
        pytest.param({"request_id": "req\r\n1"}, "INVALID_FIELD", "request_id", id="request-id-crlf"),
        pytest.param({"request_id": "r" * 129}, "FIELD_TOO_LARGE", "request_id", id="request-id-129"),
        pytest.param({"request_id": "r" * BIG}, "FIELD_TOO_LARGE", "request_id", id="request-id-200KB"),
        pytest.param({"operation": "balance", "params": params({})}, "INVALID_FIELD", "connection_id", id="user-op-no-connection"),
        pytest.param(
            {"operation": "balance", "connection_id": "acct 1", "params": params({})},
            "INVALID_FIELD",
            "connection_id",
            id="user-op-bad-connection",
        ),
        pytest.param(
            {"operation": "balance", "connection_id": "acct-b", "params": params({})},
            "INVALID_FIELD",
            "connection_id",
            id="user-op-other-providers-connection",
        ),
    ],
)
async def test_invoke_refuses_bad_fields(env: Env, overrides: dict[str, Any], reason: str, field: str) -> None:
    """Why: params are checked against the operation's JSON Schema and ids against their shape before
    anything is signed or sent (an order with a bad parameter must never reach the exchange)."""
    await refused(env, env.stub.InvokeOperation(invoke(**overrides)), reason, field)


async def test_invoke_refuses_oversized_params(env: Env) -> None:
    """Why: a params Struct of ~200 KB is still bad input for an operation that takes one number."""
    await refused(
        env, env.stub.InvokeOperation(invoke(params=params({"count": 1, "blob": "b" * BIG}))), "INVALID_FIELD", "params"
    )


# -- below the message layer -------------------------------------------------------------------------

#: Every BrokerGateway RPC with input; field 1 of each request is a string.
ALL_RPCS = [
    "Authorize",
    "DeleteConnection",
    "Exchange",
    "GetAccessToken",
    "GetConnection",
    "GetUserInfo",
    "InvokeOperation",
    "ListConnections",
    "Refresh",
    "Revoke",
    "WatchConnections",
]


def raw_call(env: Env, rpc: str) -> Any:
    return env.harness.channel.unary_unary(
        SERVICE + rpc, request_serializer=lambda data: data, response_deserializer=lambda data: data
    )


@pytest.mark.parametrize("payload", [b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80"], ids=["ff-fe", "bad-continuation", "surrogate"])
@pytest.mark.parametrize("rpc", ALL_RPCS)
async def test_invalid_utf8_is_invalid_argument(env: Env, rpc: str, payload: bytes) -> None:
    """Why: protobuf refuses invalid UTF-8 in a proto3 string; grpcio would answer INTERNAL, which
    callers read as a gateway bug. It is the caller's bad input (docs/design/errors.md)."""
    request = b"\x0a" + bytes([len(payload)]) + payload  # field 1, wire type 2
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw_call(env, rpc)(request, timeout=10)
    failure = conftest.failure_of(caught.value)
    assert failure.code == INVALID, failure
    assert failure.reason in ("INVALID_FIELD", "FIELD_TOO_LARGE"), failure
    assert failure.metadata.get("field"), failure.metadata
    assert bad_request_fields(failure) == [failure.metadata["field"]]
    assert_no_traceback(failure.message)
    assert env.upstream_requests == 0


@pytest.mark.parametrize(
    "request_bytes",
    [b"\x0a\x05ab", b"\x0a", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", b"\x0f"],
    ids=["truncated-length", "missing-length", "overlong-varint-tag", "bad-wire-type"],
)
async def test_undecodable_bytes_are_invalid_argument(env: Env, request_bytes: bytes) -> None:
    """Why: bytes that are not a protobuf message at all are bad input too, never INTERNAL/UNKNOWN."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw_call(env, "GetConnection")(request_bytes, timeout=10)
    failure = conftest.failure_of(caught.value)
    assert failure.code == INVALID, failure
    assert failure.metadata.get("field"), failure.metadata
    assert_no_traceback(failure.message)
    assert env.upstream_requests == 0


async def test_message_over_receive_limit_is_resource_exhausted(env: Env) -> None:
    """Why: docs/design/grpc.md, Message sizes: the gateway's 256 KiB receive limit is enforced by grpc itself,
    which answers RESOURCE_EXHAUSTED before any handler (so there is no ErrorInfo to expect)."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await env.stub.GetConnection(api.GetConnectionRequest(connection_id="a" * OVER_LIMIT), timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_no_traceback(caught.value.details() or "")
    assert env.upstream_requests == 0
    # The server is still healthy afterwards.
    await env.stub.GetConnection(api.GetConnectionRequest(connection_id=env.connection_id), timeout=10)
