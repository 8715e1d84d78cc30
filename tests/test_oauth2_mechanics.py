"""Unit and property tests of the shared OAuth 2.0 mechanics (``broker_gateway.oauth2``) and of the
request-field checks (``broker_gateway.validation``).

Why: every provider inherits these, so a bug here is a bug in every provider. The properties come from
docs/design/security.md (redirect_uri allowed iff byte-equal, URLs round-trip with no injection, PKCE
and state, malformed token responses) and docs/design/errors.md (the error mapping, and no upstream
body text, such as ``error_description``, ever echoed to callers).
"""

from __future__ import annotations

import base64
import json
import math
import re
import string
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote_plus, urlsplit

import grpc
import httpx
import pytest
from broker_gateway import validation
from broker_gateway.errors import (
    AccessTokenRejected,
    Code,
    ConfigError,
    FieldTooLarge,
    GatewayError,
    InsufficientScope,
    InvalidArgument,
    InvalidGrant,
    ProviderClientAuthFailed,
    ProviderRateLimited,
    ProviderRequestRejected,
    ProviderResponseInvalid,
    ProviderUnavailable,
)
from broker_gateway.oauth2 import (
    DEFAULT_EXPIRES_IN,
    MAX_EXPIRES_IN,
    OAuth2Provider,
    add_query,
    basic_credentials,
    expires_at,
    new_pkce_pair,
    new_state,
    parse_token_response,
    pkce_challenge,
    raise_for_oauth_error,
    raise_for_resource_error,
)
from broker_gateway.provider import AuthorizationRequest, TokenSet
from broker_gateway.testing import provider_context
from broker_gateway.upstream import UpstreamResponse
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from conftest import REDIRECT_URI, GatewayHarness, Wallet, expect_failure
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
#: RFC 6749 §5.2: characters an ``error`` code may contain.
ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
CANARY = "CANARY-s3cr3t-7f1e"
FAST = settings(max_examples=60, deadline=None)

# Text hypothesis may put anywhere a Python str goes (no surrogates, which protobuf and UTF-8 refuse).
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


def response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> UpstreamResponse:
    content = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    return UpstreamResponse(status, httpx.Headers(headers or {}), content)


# -- PKCE and state ----------------------------------------------------------------------------------


def test_pkce_challenge_matches_rfc7636_appendix_b() -> None:
    """Why: the S256 transform must be exactly RFC 7636's, or every PKCE-enforcing AS refuses us."""
    assert pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_pkce_pairs_are_well_formed_and_unique() -> None:
    """Why: RFC 7636 §4.1: 43-128 unreserved characters, high entropy; a repeat would be fatal."""
    pairs = [new_pkce_pair() for _ in range(2000)]
    for verifier, challenge in pairs:
        assert 43 <= len(verifier) <= 128
        assert set(verifier) <= UNRESERVED
        assert challenge == pkce_challenge(verifier)
        assert len(challenge) == 43 and "=" not in challenge and set(challenge) <= UNRESERVED
        assert len(base64.urlsafe_b64decode(verifier + "=" * (-len(verifier) % 4))) >= 32  # 256 bits
    assert len({verifier for verifier, _ in pairs}) == len(pairs)
    assert len({challenge for _, challenge in pairs}) == len(pairs)


def test_states_carry_128_bits_and_are_unique() -> None:
    """Why: RFC 6749 §10.10 asks for an unguessable state (>=128 bits, docs/design/security.md), and
    the state must pass the gateway's own check on the way back."""
    states = [new_state() for _ in range(2000)]
    assert len(set(states)) == len(states)
    for state in states:
        raw = base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))
        assert len(raw) * 8 >= 128
        assert set(state) <= UNRESERVED
        assert validation.opaque_token("state", state, limit=validation.MAX_STATE) == state


# -- URLs and client credentials ---------------------------------------------------------------------


@FAST
@given(
    base=st.sampled_from(
        [
            "https://as.example/authorize",
            "https://as.example/authorize?tenant=a&empty=",
            "https://as.example:8443/o/auth?x=%26y%3D#keep",
            "http://127.0.0.1:9/authorize?",
        ]
    ),
    params=st.dictionaries(any_text, any_text, max_size=6),
)
@example(base="https://as.example/authorize", params={"scope": "a&state=evil#frag", "state": "s=1&x", "k#": "+ %20"})
def test_add_query_round_trips_exactly(base: str, params: dict[str, str]) -> None:
    """Why: the authorization URL must carry exactly the intended parameters; an ``&``, ``=`` or ``#``
    in a value must never add a parameter, change one, or start a fragment (docs/design/security.md)."""
    url = add_query(base, params)
    before, after = urlsplit(base), urlsplit(url)
    assert (after.scheme, after.netloc, after.path, after.fragment) == (
        before.scheme,
        before.netloc,
        before.path,
        before.fragment,
    )
    expected = parse_qsl(before.query, keep_blank_values=True) + list(params.items())
    assert parse_qsl(after.query, keep_blank_values=True, strict_parsing=bool(expected)) == expected


@FAST
@given(client_id=any_text, client_secret=any_text)
@example(client_id="client:id", client_secret="s e+c/r%t&:=")
def test_basic_credentials_form_encode_before_base64(client_id: str, client_secret: str) -> None:
    """Why: RFC 6749 §2.3.1 form-encodes id and secret before Basic; without it a ``:`` in the id or
    a ``+`` in the secret breaks client authentication (docs/design/security.md)."""
    header = basic_credentials(client_id, client_secret)
    assert header.startswith("Basic ")
    decoded = base64.b64decode(header[len("Basic ") :], validate=True).decode("ascii")
    encoded_id, _, encoded_secret = decoded.partition(":")
    assert ":" not in encoded_id
    assert (unquote_plus(encoded_id), unquote_plus(encoded_secret)) == (client_id, client_secret)


def test_basic_credentials_known_value() -> None:
    """Why: a fixed vector, so a change of encoding (say quote instead of quote_plus) is noticed."""
    header = basic_credentials("my client", "p@ss:w+rd")
    assert base64.b64decode(header.removeprefix("Basic ")) == b"my+client:p%40ss%3Aw%2Brd"


# -- expires_in and token responses --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(3600, timedelta(seconds=3600), id="int"),
        pytest.param(59.5, timedelta(seconds=59.5), id="float"),
        pytest.param("3600", timedelta(seconds=3600), id="numeric-string"),
        pytest.param(-1, timedelta(seconds=DEFAULT_EXPIRES_IN), id="negative"),
        pytest.param(0, timedelta(seconds=DEFAULT_EXPIRES_IN), id="zero"),
        pytest.param(1e12, timedelta(seconds=MAX_EXPIRES_IN), id="1e12-clamped"),
        pytest.param(10**30, timedelta(seconds=MAX_EXPIRES_IN), id="1e30-int-clamped"),
        pytest.param(None, timedelta(seconds=DEFAULT_EXPIRES_IN), id="null"),
        pytest.param(math.nan, timedelta(seconds=DEFAULT_EXPIRES_IN), id="nan"),
        pytest.param(math.inf, timedelta(seconds=DEFAULT_EXPIRES_IN), id="inf"),
        pytest.param("NaN", timedelta(seconds=DEFAULT_EXPIRES_IN), id="nan-string"),
        pytest.param("soon", timedelta(seconds=DEFAULT_EXPIRES_IN), id="word"),
        pytest.param({"s": 1}, timedelta(seconds=DEFAULT_EXPIRES_IN), id="object"),
        pytest.param([3600], timedelta(seconds=DEFAULT_EXPIRES_IN), id="list"),
    ],
)
def test_expires_at_treats_expires_in_as_advisory(value: Any, expected: timedelta) -> None:
    """Why: docs/design/security.md: a string, negative, huge or missing ``expires_in`` is clamped or replaced
    by the short default, never trusted as "valid forever" and never a crash."""
    assert expires_at(NOW, value, DEFAULT_EXPIRES_IN) == NOW + expected


@pytest.mark.parametrize("value", [10**309, -(10**309), 10**400], ids=["1e309", "-1e309", "1e400"])
def test_expires_at_survives_integers_beyond_float_range(value: int) -> None:
    """Why: JSON integers are unbounded and Python's json parses them exactly, so ``"expires_in":
    1000...0`` (400 digits) is a valid if absurd token response. It must be clamped or replaced by
    the default like any other bad lifetime, not raise OverflowError (which becomes INTERNAL)."""
    result = expires_at(NOW, value, DEFAULT_EXPIRES_IN)
    allowed = {NOW + timedelta(seconds=DEFAULT_EXPIRES_IN), NOW + timedelta(seconds=MAX_EXPIRES_IN)}
    assert result in allowed if value > 0 else result == NOW + timedelta(seconds=DEFAULT_EXPIRES_IN)


@pytest.mark.parametrize("value", [None, -5, "x", math.nan])
def test_expires_at_without_default_is_none(value: Any) -> None:
    """Why: a refresh token with no stated lifetime has no expiry rather than an invented one."""
    assert expires_at(NOW, value, None) is None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats()
    | any_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3),
    max_leaves=8,
)
token_fields = st.sampled_from(
    ["access_token", "token_type", "expires_in", "refresh_token", "scope", "id_token", "refresh_token_expires_in"]
)


@FAST
@given(payload=json_values | st.dictionaries(token_fields, json_values))
@example(payload={"access_token": "at", "token_type": "bearer", "expires_in": 10**400})
@example(payload={"access_token": "at", "refresh_token": "rt", "refresh_token_expires_in": -(10**309)})
def test_expires_at_and_parse_token_response_never_crash(payload: Any) -> None:
    """Why: whatever JSON an AS sends, parsing ends in a TokenSet or PROVIDER_RESPONSE_INVALID; any
    other exception becomes INTERNAL for the caller and can lose a rotated refresh token."""
    result = expires_at(NOW, payload, DEFAULT_EXPIRES_IN)
    assert result is not None and NOW <= result <= NOW + timedelta(seconds=MAX_EXPIRES_IN)
    try:
        tokens = parse_token_response(payload, now=NOW, requested_scopes=("profile",))
    except ProviderResponseInvalid:
        return
    assert isinstance(tokens.access_token, str) and tokens.access_token
    assert tokens.token_type == "Bearer"


def good(**fields: Any) -> dict[str, Any]:
    return {"access_token": "at-1", "token_type": "Bearer", "expires_in": 600, **fields}


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param([], id="list"),
        pytest.param("at-1", id="string"),
        pytest.param(None, id="null"),
        pytest.param(7, id="number"),
        pytest.param({"token_type": "Bearer", "expires_in": 600}, id="missing-access-token"),
        pytest.param(good(access_token=""), id="empty-access-token"),
        pytest.param(good(access_token=123), id="numeric-access-token"),
        pytest.param(good(access_token=["at"]), id="list-access-token"),
        pytest.param(good(token_type="mac"), id="token-type-mac"),
        pytest.param(good(token_type="DPoP"), id="token-type-dpop"),
        pytest.param(good(token_type=1), id="token-type-number"),
    ],
)
def test_parse_token_response_refuses_malformed(payload: Any) -> None:
    """Why: docs/design/security.md: no access token, or a token type the gateway cannot use, is the
    provider's fault (PROVIDER_RESPONSE_INVALID), never a TokenSet the caller would then fail with."""
    with pytest.raises(ProviderResponseInvalid):
        parse_token_response(payload, now=NOW, requested_scopes=("profile",))


def test_parse_token_response_takes_any_mapping() -> None:
    """Why: the ``token_payload`` hook promises a Mapping, so a plugin may hand over a read-only view."""
    tokens = parse_token_response(MappingProxyType(good()), now=NOW, requested_scopes=())
    assert tokens.access_token == good()["access_token"]


@pytest.mark.parametrize("token_type", ["Bearer", "bearer", "BEARER"])
def test_parse_token_response_bearer_is_case_insensitive(token_type: str) -> None:
    """Why: RFC 6749 §5.1 token_type is case-insensitive; the stored value is normalised."""
    tokens = parse_token_response(good(token_type=token_type), now=NOW, requested_scopes=())
    assert tokens.token_type == "Bearer"


@pytest.mark.parametrize(
    ("expires_in", "expected"),
    [
        ("3600", timedelta(seconds=3600)),
        (-1, timedelta(seconds=DEFAULT_EXPIRES_IN)),
        (1e12, timedelta(seconds=MAX_EXPIRES_IN)),
        (None, timedelta(seconds=DEFAULT_EXPIRES_IN)),
        (math.nan, timedelta(seconds=DEFAULT_EXPIRES_IN)),
    ],
    ids=["string", "negative", "huge", "null", "nan"],
)
def test_parse_token_response_clamps_expires_in(expires_in: Any, expected: timedelta) -> None:
    """Why: the malformed ``expires_in`` values (docs/design/security.md), through the parser as a provider uses it."""
    tokens = parse_token_response(good(expires_in=expires_in), now=NOW, requested_scopes=())
    assert tokens.access_token_expire_time == NOW + expected


def test_parse_token_response_from_a_nan_body() -> None:
    """Why: Python's json accepts ``NaN``, so a literal NaN from the wire must take the same path."""
    payload = json.loads('{"access_token": "at", "token_type": "Bearer", "expires_in": NaN}')
    tokens = parse_token_response(payload, now=NOW, requested_scopes=())
    assert tokens.access_token_expire_time == NOW + timedelta(seconds=DEFAULT_EXPIRES_IN)


def test_parse_token_response_ignores_extra_fields_and_defaults_scope() -> None:
    """Why: RFC 6749 §5.1: unknown fields are ignored; an absent scope means the requested one (D1)."""
    payload = good(refresh_token="rt-1", extra={"nested": [1, 2]}, id_token=42, not_before="never")
    tokens = parse_token_response(payload, now=NOW, requested_scopes=("profile", "balance"))
    assert (tokens.access_token, tokens.refresh_token) == ("at-1", "rt-1")
    assert tokens.scopes == ("profile", "balance")
    assert tokens.id_token is None  # a non-string id_token is dropped, not stored
    assert tokens.refresh_token_expire_time is None


def test_parse_token_response_reads_granted_scope_with_separator() -> None:
    """Why: the granted scope wins over the requested one, split with the provider's separator."""
    tokens = parse_token_response(good(scope="a,b,,c"), now=NOW, requested_scopes=("x",), scope_separator=",")
    assert tokens.scopes == ("a", "b", "c")


PREVIOUS = TokenSet(
    access_token="at-0",
    refresh_token="rt-0",
    access_token_expire_time=NOW,
    refresh_token_expire_time=NOW + timedelta(days=30),
    scopes=("profile", "balance"),
)


@pytest.mark.parametrize("missing", [{}, {"refresh_token": ""}, {"refresh_token": None}, {"refresh_token": 5}])
def test_refresh_without_new_refresh_token_keeps_the_old_one(missing: dict[str, Any]) -> None:
    """Why: RFC 6749 §6 / docs/design/security.md: no new RT means keep the old one (and its expiry);
    losing it would turn every later refresh into REAUTH_REQUIRED."""
    tokens = parse_token_response(good(**missing), now=NOW, requested_scopes=(), previous=PREVIOUS)
    assert tokens.access_token == "at-1"
    assert tokens.refresh_token == "rt-0"
    assert tokens.refresh_token_expire_time == PREVIOUS.refresh_token_expire_time
    assert tokens.scopes == PREVIOUS.scopes


def test_refresh_with_rotated_refresh_token_replaces_it() -> None:
    """Why: docs/design/security.md: a rotated RT replaces the old one, and the old one's expiry goes too."""
    tokens = parse_token_response(good(refresh_token="rt-1"), now=NOW, requested_scopes=(), previous=PREVIOUS)
    assert tokens.refresh_token == "rt-1"
    assert tokens.refresh_token_expire_time is None
    rotated = parse_token_response(
        good(refresh_token="rt-2", refresh_token_expires_in=60), now=NOW, requested_scopes=(), previous=PREVIOUS
    )
    assert rotated.refresh_token_expire_time == NOW + timedelta(seconds=60)


@pytest.mark.parametrize(
    "body",
    [b"<html>502 Bad Gateway</html>", b"", b'{"access_token": ', b"\xff\xfe"],
    ids=["html", "empty", "truncated", "binary"],
)
def test_non_json_body_is_provider_response_invalid(body: bytes) -> None:
    """Why: a "non-JSON or HTML" answer (docs/design/security.md): the upstream's fault, without quoting the body."""
    with pytest.raises(ProviderResponseInvalid) as caught:
        response(200, body).json()
    if body:
        assert body.decode(errors="replace") not in caught.value.message


# -- error mapping -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_success_is_not_an_error(status: int) -> None:
    raise_for_oauth_error(response(status, {"error": "invalid_grant"}), "acme")


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "retry_after"),
    [
        pytest.param(400, {"error": "invalid_grant"}, {}, InvalidGrant, None, id="invalid_grant"),
        pytest.param(401, {"error": "invalid_grant"}, {}, InvalidGrant, None, id="invalid_grant-401"),
        pytest.param(401, {"error": "invalid_client"}, {}, ProviderClientAuthFailed, None, id="invalid_client-401"),
        pytest.param(400, {"error": "invalid_client"}, {}, ProviderClientAuthFailed, None, id="invalid_client-400"),
        pytest.param(400, {"error": "unauthorized_client"}, {}, ProviderClientAuthFailed, None, id="unauthorized_client"),
        pytest.param(401, None, {"WWW-Authenticate": "Basic"}, ProviderClientAuthFailed, None, id="bare-401"),
        pytest.param(401, b"<html>no</html>", {}, ProviderClientAuthFailed, None, id="html-401"),
        pytest.param(429, None, {"Retry-After": "7"}, ProviderRateLimited, 7.0, id="429-retry-after"),
        pytest.param(429, {"error": "too_many"}, {}, ProviderRateLimited, 1.0, id="429-no-header"),
        pytest.param(429, None, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, ProviderRateLimited, 1.0, id="429-date"),
        pytest.param(429, None, {"Retry-After": "999999"}, ProviderRateLimited, 3600.0, id="429-clamped"),
        pytest.param(400, {"error": "slow_down"}, {}, ProviderRateLimited, 1.0, id="slow_down"),
        pytest.param(503, None, {"Retry-After": "3"}, ProviderUnavailable, 3.0, id="503-retry-after"),
        pytest.param(500, b"oops", {}, ProviderUnavailable, 1.0, id="500"),
        pytest.param(502, None, {}, ProviderUnavailable, 1.0, id="502"),
        pytest.param(400, {"error": "temporarily_unavailable"}, {}, ProviderUnavailable, 1.0, id="temporarily_unavailable"),
        pytest.param(307, None, {"Location": "https://evil.example/token"}, ProviderResponseInvalid, 1.0, id="307"),
        pytest.param(302, None, {"Location": "https://evil.example/token"}, ProviderResponseInvalid, 1.0, id="302"),
        pytest.param(301, None, {}, ProviderResponseInvalid, 1.0, id="301"),
        pytest.param(400, {"error": "invalid_request"}, {}, ProviderRequestRejected, None, id="invalid_request"),
        pytest.param(400, {"error": "invalid_scope"}, {}, ProviderRequestRejected, None, id="invalid_scope"),
        pytest.param(400, None, {}, ProviderRequestRejected, None, id="bare-400"),
        pytest.param(403, {"error": "access_denied"}, {}, ProviderRequestRejected, None, id="403"),
        pytest.param(404, b"not here", {}, ProviderRequestRejected, None, id="404"),
        pytest.param(400, {"error": 7}, {}, ProviderRequestRejected, None, id="numeric-error"),
        pytest.param(400, [{"error": "invalid_grant"}], {}, ProviderRequestRejected, None, id="list-body"),
    ],
)
def test_raise_for_oauth_error_mapping(
    status: int, body: Any, headers: dict[str, str], expected: type[GatewayError], retry_after: float | None
) -> None:
    """Why: docs/design/errors.md's table decides whether callers retry, restart the flow or page an
    operator; RetryInfo only on the retryable codes."""
    with pytest.raises(GatewayError) as caught:
        raise_for_oauth_error(response(status, body, headers), "acme")
    error = caught.value
    assert type(error) is expected, error
    assert error.metadata["provider"] == "acme"
    assert error.metadata["upstream_http_status"] == str(status)
    assert error.retry_after == retry_after
    if retry_after is not None:
        assert error.code in (Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        assert error.metadata["upstream_code"] == body["error"]


def test_error_codes_match_the_mapping_table() -> None:
    """Why: the gRPC codes of docs/design/errors.md, pinned where callers depend on them."""
    assert InvalidGrant.code == Code.FAILED_PRECONDITION
    assert (ProviderClientAuthFailed.code, ProviderClientAuthFailed.reason) == (
        Code.FAILED_PRECONDITION,
        "PROVIDER_CLIENT_AUTH_FAILED",
    )
    assert (ProviderRateLimited.code, ProviderRateLimited.reason) == (
        Code.RESOURCE_EXHAUSTED,
        "PROVIDER_RATE_LIMITED",
    )
    assert (ProviderUnavailable.code, ProviderUnavailable.reason) == (Code.UNAVAILABLE, "PROVIDER_UNAVAILABLE")
    # Not the answer the provider documents (a proxy's error page, a deploy): worth a retry.
    assert (ProviderResponseInvalid.code, ProviderResponseInvalid.reason) == (
        Code.UNAVAILABLE,
        "PROVIDER_RESPONSE_INVALID",
    )
    assert ProviderRequestRejected.reason == "PROVIDER_REQUEST_REJECTED"


@pytest.mark.parametrize("status", [400, 401, 403, 429, 500, 503, 302])
@pytest.mark.parametrize(
    "error", ["invalid_grant", "invalid_client", "invalid_request", "temporarily_unavailable", "slow_down", None]
)
def test_error_description_is_never_echoed(status: int, error: str | None) -> None:
    """Why: docs/design/errors.md and security.md: AS bodies never reach callers; an error_description or error_uri
    may quote a code, a token or a secret (here a planted canary)."""
    body: dict[str, Any] = {
        "error_description": f"refresh token {CANARY} is invalid\r\nInjected: {CANARY}",
        "error_uri": f"https://as.example/e?t={CANARY}",
        "hint": CANARY,
    }
    if error is not None:
        body["error"] = error
    with pytest.raises(GatewayError) as caught:
        raise_for_oauth_error(response(status, body, {"X-Debug": CANARY}), "acme")
    exposed = [str(caught.value), repr(caught.value), caught.value.message, *caught.value.metadata.values()]
    assert not any(CANARY in text for text in exposed), exposed


@pytest.mark.parametrize(
    "error",
    [
        f"invalid_request\r\nX-Injected: {CANARY}",
        "invalid_request\x00",
        "invalid_réquest",
        'invalid_request"',
        "invalid_request\\",
    ],
    ids=["crlf", "nul", "non-ascii", "quote", "backslash"],
)
def test_upstream_error_code_in_metadata_is_rfc6749_charset(error: str) -> None:
    """Why: RFC 6749 §5.2 limits ``error`` to %x20-21 / %x23-5B / %x5D-7E; anything else is not an
    error code but upstream text, and must not be copied into ErrorInfo metadata, logs and spans
    (docs/design/security.md: sanitise, never reflect unescaped). The callback path already replaces
    such values with "invalid"; the token endpoint path must too."""
    with pytest.raises(GatewayError) as caught:
        raise_for_oauth_error(response(400, {"error": error}), "acme")
    code = caught.value.metadata.get("upstream_code", "")
    assert ERROR_CODE.fullmatch(code), repr(code)
    assert CANARY not in code


def test_long_upstream_error_code_is_truncated() -> None:
    """Why: ErrorInfo travels in trailers; an upstream cannot inflate it with a huge ``error``."""
    with pytest.raises(ProviderRequestRejected) as caught:
        raise_for_oauth_error(response(400, {"error": "x" * 100_000}), "acme")
    assert len(caught.value.metadata["upstream_code"]) <= 64


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, AccessTokenRejected), (403, InsufficientScope), (429, ProviderRateLimited), (503, ProviderUnavailable)],
)
def test_raise_for_resource_error_mapping(status: int, expected: type[GatewayError]) -> None:
    """Why: RFC 6750 §3.1: 401 means refresh once and retry, 403 a missing scope (no refresh loop)."""
    with pytest.raises(expected):
        raise_for_resource_error(response(status, {"error": "invalid_token", "error_description": CANARY}), "acme")


# -- a provider's token request over a mock transport ------------------------------------------------


class Recorder:
    """An httpx transport answering from a queue and recording what it was sent."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0)


def make_provider(transport: Recorder, **settings: Any) -> tuple[OAuth2Provider, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(transport))
    provider = OAuth2Provider(
        provider_context("acme", http=http, clock=lambda: NOW),
        {
            "client_id": "client:1",
            "client_secret": "se+cret",
            "authorization_endpoint": "https://as.example/authorize",
            "token_endpoint": "https://as.example/token",
            **settings,
        },
    )
    return provider, http


async def test_token_request_does_not_follow_redirects() -> None:
    """Why: docs/design/security.md: a token endpoint answering 307 to another host must not receive the
    code, verifier and client secret a second time."""
    recorder = Recorder(httpx.Response(307, headers={"Location": "https://evil.example/token"}))
    provider, http = make_provider(recorder)
    async with http:
        with pytest.raises(ProviderResponseInvalid):
            await provider.exchange_code(
                "code-1", redirect_uri=REDIRECT_URI, code_verifier="v" * 43, scopes=(), callback_params={}
            )
    assert [str(r.url) for r in recorder.requests] == ["https://as.example/token"]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_token_request_authenticates_and_sends_verifier(method: str) -> None:
    """Why: docs/design/security.md: credentials in Basic (form-encoded) or the body, never the URL; the
    verifier and redirect_uri go with the code."""
    recorder = Recorder(httpx.Response(200, json=good(refresh_token="rt-1")))
    provider, http = make_provider(recorder, token_endpoint_auth_method=method)
    async with http:
        grant = await provider.exchange_code(
            "code-1", redirect_uri=REDIRECT_URI, code_verifier="v" * 43, scopes=("profile",), callback_params={}
        )
    assert grant.tokens.refresh_token == "rt-1"
    (sent,) = recorder.requests
    form = parse_qs(sent.content.decode(), strict_parsing=True)
    assert form["code"] == ["code-1"] and form["code_verifier"] == ["v" * 43]
    assert form["redirect_uri"] == [REDIRECT_URI] and form["grant_type"] == ["authorization_code"]
    assert not sent.url.query
    if method == "client_secret_basic":
        assert sent.headers["authorization"] == basic_credentials("client:1", "se+cret")
        assert "client_secret" not in form
    else:
        assert "authorization" not in sent.headers
        assert form["client_id"] == ["client:1"] and form["client_secret"] == ["se+cret"]


@pytest.mark.parametrize(("encoding", "expected"), [("form", "client%3A1:se%2Bcret+x"), ("percent", "client%3A1:se%2Bcret%20x")])
async def test_client_secret_basic_encoding_setting(encoding: str, expected: str) -> None:
    """Why: servers that only percent-decode (Authlib among them) read RFC 6749's form-encoded space
    as "+"; ``client_secret_basic_encoding = "percent"`` sends %20 instead. Default: RFC 6749."""
    recorder = Recorder(httpx.Response(200, json=good()))
    settings = {} if encoding == "form" else {"client_secret_basic_encoding": encoding}
    provider, http = make_provider(recorder, client_secret="se+cret x", **settings)
    async with http:
        await provider.exchange_code("code-1", redirect_uri=REDIRECT_URI, code_verifier=None, scopes=(), callback_params={})
    (sent,) = recorder.requests
    assert base64.b64decode(sent.headers["authorization"].removeprefix("Basic ")).decode() == expected


def test_client_secret_basic_encoding_is_validated() -> None:
    with pytest.raises(ConfigError) as raised:
        make_provider(Recorder(), client_secret_basic_encoding="plain")
    assert "client_secret_basic_encoding: expected one of form, percent" in str(raised.value.problems)


async def test_token_response_with_huge_integer_expires_in_is_not_a_crash() -> None:
    """Why: an AS answering ``"expires_in": 1000...0`` (400 digits, valid JSON) must get a clamped
    lifetime or PROVIDER_RESPONSE_INVALID, never an exception that becomes INTERNAL after the code
    was spent."""
    body = b'{"access_token": "at", "token_type": "Bearer", "expires_in": 1' + b"0" * 400 + b"}"
    recorder = Recorder(httpx.Response(200, content=body, headers={"Content-Type": "application/json"}))
    provider, http = make_provider(recorder)
    async with http:
        try:
            grant = await provider.exchange_code(
                "code-1", redirect_uri=REDIRECT_URI, code_verifier=None, scopes=(), callback_params={}
            )
        except GatewayError as error:
            assert isinstance(error, ProviderResponseInvalid), error
        else:
            assert grant.tokens.access_token_expire_time in (
                NOW + timedelta(seconds=MAX_EXPIRES_IN),
                NOW + timedelta(seconds=DEFAULT_EXPIRES_IN),
            )


# -- validation ----------------------------------------------------------------------------------------


def refused_field(check: Any, *args: Any, **kwargs: Any) -> InvalidArgument | None:
    try:
        check(*args, **kwargs)
    except InvalidArgument as error:
        return error
    return None


@FAST
@given(value=any_text | st.text(string.ascii_letters + string.digits + "._~-", min_size=1, max_size=140))
def test_identifier_accepts_exactly_the_documented_shape(value: str) -> None:
    """Why: ids are keys in the store and appear in logs; the check must be exactly "letters, digits,
    ``. _ ~ -``, starting with a letter or digit, at most 128", and only ever raise InvalidArgument."""
    error = refused_field(validation.identifier, "connection_id", value)
    ok = bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}", value))
    assert (error is None) == ok, (value, error)
    if error is not None:
        assert error.field == "connection_id" and error.metadata["field"] == "connection_id"
        assert isinstance(error, FieldTooLarge) == (len(value) > 128)


@FAST
@given(value=any_text | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7F), max_size=40))
def test_uri_and_opaque_token_refuse_whitespace_control_and_non_ascii(value: str) -> None:
    """Why: URIs, states and codes are compared, logged and forwarded; whitespace, control and
    non-ASCII characters are what header and log injection are made of (docs/design/security.md)."""
    printable = bool(value) and all("\x21" <= char <= "\x7e" for char in value)
    for check, kwargs in ((validation.uri, {}), (validation.opaque_token, {"limit": 512})):
        error = refused_field(check, "f", value, **kwargs)
        assert (error is None) == printable, (check, value)
        if error is not None:
            assert error.field == "f"


@FAST
@given(values=st.lists(any_text, max_size=4))
def test_scopes_only_pass_rfc6749_scope_tokens(values: list[str]) -> None:
    """Why: RFC 6749 §3.3 scope-token is %x21 / %x23-5B / %x5D-7E; a space, quote or backslash would
    change how the AS splits the scope string."""
    error = refused_field(validation.scopes, "scopes", values)
    ok = all(re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]{1,256}", value) for value in values)
    assert (error is None) == ok, (values, error)


# -- the gateway's redirect_uri check and authorization URL ------------------------------------------


def mutations(uri: str) -> st.SearchStrategy[str]:
    """Small edits of ``uri``: a character inserted, deleted, replaced or case-flipped, a suffix."""
    positions = st.integers(min_value=0, max_value=len(uri))
    chars = st.sampled_from(list("/\\.:@?#%&=+ -_~AaZz019\t\n\x00é") + ["%2e", "%2F", "%20", "..", ":80", ":443"])
    insert = st.builds(lambda i, c: uri[:i] + c + uri[i:], positions, chars)
    delete = st.builds(lambda i: uri[: min(i, len(uri) - 1)] + uri[min(i, len(uri) - 1) + 1 :], positions)
    replace = st.builds(lambda i, c: uri[:i] + c + uri[i + 1 :], positions, chars)
    flip = st.builds(lambda i: uri[:i] + uri[i : i + 1].swapcase() + uri[i + 1 :], positions)
    return st.one_of(insert, delete, replace, flip, st.just(uri), st.just(uri.upper()), any_text)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(candidate=mutations(REDIRECT_URI))
async def test_redirect_uri_accepted_iff_byte_equal(wallet_gateway: GatewayHarness, wallet: Wallet, candidate: str) -> None:
    """Why: docs/design/security.md: ``is_allowed_redirect(uri)`` is true iff ``uri`` is byte-equal to an
    allowlisted value. Any near miss (one character, case, an encoded dot) could be an open redirect."""
    request = api.AuthorizeRequest(provider="wallet", redirect_uri=candidate)
    if candidate == REDIRECT_URI:
        start = await wallet_gateway.stub.Authorize(request, timeout=10)
        assert parse_qs(urlsplit(start.authorization_url).query)["redirect_uri"] == [REDIRECT_URI]
    else:
        failure = await expect_failure(wallet_gateway.stub.Authorize(request, timeout=10))
        assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
        assert failure.metadata["field"] == "redirect_uri"
        assert failure.reason in ("INVALID_REDIRECT_URI", "INVALID_FIELD", "FIELD_TOO_LARGE")
    assert wallet.request_log.count() == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=0, max_size=60))
@example(value="true&state=evil&redirect_uri=https://evil.example#frag")
async def test_authorization_url_carries_exactly_the_intended_parameters(
    wallet_gateway: GatewayHarness, wallet: Wallet, value: str
) -> None:
    """Why: docs/design/security.md: an allowed extra parameter whose value holds ``&``, ``=`` or ``#`` must
    stay one value; it cannot add a second state or redirect_uri or hide the PKCE challenge."""
    start = await wallet_gateway.stub.Authorize(
        api.AuthorizeRequest(
            provider="wallet", redirect_uri=REDIRECT_URI, scopes=["profile"], extra_params={"auto_authorize": value}
        ),
        timeout=10,
    )
    parts = urlsplit(start.authorization_url)
    assert parts.fragment == ""
    query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    keys = [key for key, _ in query]
    assert sorted(keys) == sorted(
        [
            "auto_authorize",
            "client_id",
            "code_challenge",
            "code_challenge_method",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
        ]
    )
    params = dict(query)
    assert params["auto_authorize"] == value
    assert params["state"] == start.state and params["redirect_uri"] == REDIRECT_URI
    assert params["code_challenge_method"] == "S256" and params["response_type"] == "code"
    assert params["scope"] == "profile"
    assert wallet.request_log.count() == 0


async def test_the_authorization_url_keeps_its_own_state_and_challenge_over_extra_parameters() -> None:
    """Why: the fixed part of the URL is encoded once per provider, redirect URI, scopes and extra
    parameters: the gateway's own parameters must still win over extra ones of the same name (the
    gateway refuses those names from callers; a plugin calling its base class may not), on every call."""
    provider, http = make_provider(Recorder())
    hostile = {"state": "evil", "code_challenge": "evil", "client_id": "evil", "prompt": "login"}
    async with http:
        for state in ("state-1", "state-2"):
            url = provider.authorization_url(
                AuthorizationRequest(state=state, redirect_uri=REDIRECT_URI, scopes=("profile",), code_challenge=f"ch-{state}",
                                     extra_params=hostile)
            )
            query = parse_qs(urlsplit(url).query, strict_parsing=True)
            assert query["state"] == [state] and query["code_challenge"] == [f"ch-{state}"]
            assert query["client_id"] == ["client:1"] and query["prompt"] == ["login"]
