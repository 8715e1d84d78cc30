"""Sandbox simulator of Bybit's OAuth broker flow and broker API (the ``bybit`` sandbox provider).

It reproduces what Bybit documents (docs/design/exchanges.md, sources B1-B6), so the ``bybit``
provider, the tests and the benchmarks can run everything locally. One app serves all three Bybit
hosts (the OAuth page, the OAuth API ``api2`` and the V5 API).

Documented behaviour reproduced:

- ``GET /en/oauth`` (also ``/oauth``): ``client_id``, ``response_type=code`` (or ``token``, which the
  help centre allows: served implicit-style, see ``authorization``), ``redirect_uri``,
  ``scope`` (``openapi``; ``ai-account`` where the client was granted it), ``state``; PKCE
  ``code_challenge`` with ``code_challenge_method=S256``. A ``redirect_uri`` that is absent or not
  registered **falls back to the first registered one, silently** ([C] B1), unless the simulator is
  built with ``strict_redirect_uri=True``. Success redirects to ``redirect_uri`` with
  ``response_type=code&code=...&scope=openapi&state=...`` (and ``client_id``, as the help centre says).
- ``POST /oauth/v1/public/access_token``, form ``client_id``, ``client_secret``, ``code`` (``grant_type``
  and ``redirect_uri`` are accepted and ignored; ``code_verifier`` for a PKCE code). Codes are single
  use and live 10 minutes. The answer is flat: ``access_token``, ``refresh_token``,
  ``token_type: "bearer"``, ``expires_in: 86400``, ``refresh_token_expires_in: 2592000``.
- Tokens are HS256 JWTs with Bybit's claims ``exp``, ``ClientID``, ``GrantMemberID`` (the UID, an
  integer), ``ApprovedScope`` and ``Nonce``; access tokens live 1 day, refresh tokens 30 days.
- ``POST /oauth/v1/public/refresh_token``, form ``client_id``, ``client_secret``, ``refresh_token``.
- ``GET /oauth/v1/resource/restrict/openapi`` with ``Authorization: Bearer``:
  ``{"ret_code":0,"ret_msg":"success","result":{"api_key","api_secret"}}``.
- V5 broker endpoints ``/v5/broker/earnings-info``, ``/v5/broker/account-info``,
  ``/v5/broker/asset/query-sub-member-deposit-record``, ``/v5/broker/apilimit/query-all``,
  ``/v5/broker/apilimit/query-cap``, ``POST /v5/broker/apilimit/set``, the deprecated
  ``/v5/broker/earning-record`` and the voucher endpoints ``POST /v5/broker/award/info``,
  ``/distribute-award`` and ``/distribution-record`` (``awards``), with their documented
  parameters, answers (``{retCode, retMsg, result, retExtInfo, time}``) and rate limits. Requests are
  authenticated with ``X-BAPI-API-KEY``, ``X-BAPI-TIMESTAMP``, ``X-BAPI-SIGN`` and optional
  ``X-BAPI-RECV-WINDOW`` (default 5000): the signature is checked over the **raw** query string or
  the **raw** body bytes received, never a re-serialisation, and the timestamp must satisfy
  ``server_time - recv_window <= timestamp < server_time + 1000``.

Choices where Bybit documents nothing (each also in docs/providers/bybit.md):

- Token-endpoint errors use ``{retCode, retMsg}``, OAuth resources ``{ret_code, ret_msg}``
  (docs/design/exchanges.md), both with HTTP 200 except a missing ``Authorization`` header (HTTP 401).
  Codes: 10001 parameter missing, or code expired, used, unknown or issued to another client, or a
  PKCE mismatch; 10003 unknown ``client_id`` or wrong ``client_secret``; 10004 refresh token unknown,
  expired, already used or another client's; 50000 access token that does not verify (unknown,
  tampered, a refresh token, revoked); 33004 expired access token; 10005 token without the
  ``openapi`` scope.
- Refresh rotates both tokens; the old refresh token dies at once, access tokens issued before stay
  valid until they expire. Reusing a rotated refresh token is refused (10004) without revoking the rest.
- ``GET /oauth/v1/resource/restrict/uid_bearer`` answers ``{"ret_code":0,"ret_msg":"success","uid":N}``
  (third-party callers read a top-level ``uid``); UIDs are 9-digit numbers derived from the username.
- ``/openapi`` returns one stable key pair per (client, user) (docs/design/exchanges.md).
- The redirect after approval is a 302 (docs/design/exchanges.md); the user denying redirects with
  ``error=access_denied`` and the state. Other authorization errors show an HTML page naming the code.
- V5 failures: missing ``X-BAPI-API-KEY`` / ``X-BAPI-TIMESTAMP`` / ``X-BAPI-SIGN`` give HTTP 401 with
  10003 / 10002 / 10004; an unknown key 10003 (HTTP 200, as SDK logs show); the 10002 and 10004
  messages end in Bybit's diagnostic tails (``v5_auth``); a bad ``X-BAPI-RECV-WINDOW`` 10001; a
  timestamp outside the window 10002; a wrong signature 10004; a key that is not an exchange broker's
  10005; a rate limit 10006 (with ``X-Bapi-Limit``, ``X-Bapi-Limit-Status`` and
  ``X-Bapi-Limit-Reset-Timestamp``, also sent on success); a parameter breaking a documented rule
  10001. All of these come with HTTP 200 unless stated. Rate limits count fixed windows (per second,
  or per minute for the deposit records) per key and endpoint.

Sandbox conventions shared with the other simulators (``broker_gateway.sandbox.simkit``): the consent page is a
real form; ``approve=<username>`` approves at once; ``GET``/``DELETE /_sandbox/requests``. In-process
tests also find ``app.state.tokens``, ``app.state.codes``, ``app.state.awards`` and ``app.state.v5_errors`` (every V5 error
answered, as ``{"operation", "retCode"}``).

This module builds the app; each part lives in its own module: ``authorization`` (the OAuth page),
``token_endpoint``, ``tokens`` (the JWT store), ``resources`` (``uid_bearer``, ``openapi``),
``v5_routes`` (serving a V5 endpoint) with ``v5_auth``, ``rate_limits``, ``v5_params`` and
``v5_envelope``, and ``broker_endpoints`` with the ``sample_data`` they serve.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence

from broker_gateway.sandbox import simkit
from starlette.applications import Starlette

from .accounts import BrokerKey, BybitClient, bybit_uid, index_clients
from .authorization import CODE_TTL, SCOPES, AuthorizationPage
from .awards import SEEDED_VOUCHERS, AwardDesk, broker_id_of
from .broker_endpoints import BrokerEndpoints
from .paths import (
    ACCOUNT_INFO_PATH,
    AUTHORIZE_PATH,
    AUTHORIZE_PATHS,
    AWARD_DISTRIBUTE_PATH,
    AWARD_INFO_PATH,
    AWARD_RECORD_PATH,
    DEPOSITS_PATH,
    EARNING_RECORD_PATH,
    EARNINGS_PATH,
    OPENAPI_PATH,
    QUERY_ALL_PATH,
    QUERY_CAP_PATH,
    REFRESH_PATH,
    SET_LIMIT_PATH,
    TOKEN_PATH,
    UID_PATH,
)
from .rate_limits import RATE_LIMITS, RateLimiter
from .resources import OAuthResources, openapi_key_pair
from .token_endpoint import TokenEndpoint
from .tokens import ACCESS_TOKEN_TTL, REFRESH_TOKEN_TTL, JwtTokenStore
from .v5_routes import V5Api

__all__ = [
    "ACCESS_TOKEN_TTL",
    "ACCOUNT_INFO_PATH",
    "AUTHORIZE_PATH",
    "AUTHORIZE_PATHS",
    "AWARD_DISTRIBUTE_PATH",
    "AWARD_INFO_PATH",
    "AWARD_RECORD_PATH",
    "CODE_TTL",
    "DEPOSITS_PATH",
    "EARNINGS_PATH",
    "EARNING_RECORD_PATH",
    "OPENAPI_PATH",
    "QUERY_ALL_PATH",
    "QUERY_CAP_PATH",
    "RATE_LIMITS",
    "REFRESH_PATH",
    "REFRESH_TOKEN_TTL",
    "SCOPES",
    "SEEDED_VOUCHERS",
    "SET_LIMIT_PATH",
    "TOKEN_PATH",
    "UID_PATH",
    "BrokerKey",
    "BybitClient",
    "broker_id_of",
    "bybit_uid",
    "create_bybit_app",
    "openapi_key_pair",
]


def create_bybit_app(
    clients: Sequence[BybitClient],
    broker_keys: Sequence[BrokerKey] = (),
    *,
    clock: simkit.Clock = time.time,
    strict_redirect_uri: bool = False,
    rate_limits: Mapping[str, tuple[int, float]] | None = None,
) -> Starlette:
    """Build the Bybit simulator for these OAuth clients and broker keys.

    :param strict_redirect_uri: refuse an unregistered ``redirect_uri`` instead of Bybit's silent
        fallback to the first registered one.
    :param rate_limits: per-path overrides of ``RATE_LIMITS``.
    """
    registered = index_clients(clients)
    jwt_key = secrets.token_bytes(32)
    codes = simkit.GrantStore(clock=clock, code_ttl=CODE_TTL, refresh_ttl=None)
    tokens = JwtTokenStore(clock=clock, key=jwt_key)
    limiter = RateLimiter({**RATE_LIMITS, **(rate_limits or {})}, clock)
    v5 = V5Api({key.api_key: key for key in broker_keys}, limiter, clock)
    broker = BrokerEndpoints(clock)
    awards = AwardDesk(clock)
    routes = [
        *AuthorizationPage(registered, codes, tokens, strict_redirect_uri=strict_redirect_uri).routes(),
        *TokenEndpoint(registered, codes, tokens).routes(),
        *OAuthResources(tokens, key_secret=jwt_key).routes(),
        v5.route(EARNINGS_PATH, "GET", "v5.earnings-info", broker.earnings),
        v5.route(ACCOUNT_INFO_PATH, "GET", "v5.account-info", broker.account_info),
        v5.route(DEPOSITS_PATH, "GET", "v5.query-sub-member-deposit-record", broker.deposits),
        v5.route(QUERY_ALL_PATH, "GET", "v5.apilimit.query-all", broker.query_all),
        v5.route(QUERY_CAP_PATH, "GET", "v5.apilimit.query-cap", broker.query_cap),
        v5.route(SET_LIMIT_PATH, "POST", "v5.apilimit.set", broker.set_limit),
        v5.route(EARNING_RECORD_PATH, "GET", "v5.earning-record", broker.earning_record),
        v5.route(AWARD_INFO_PATH, "POST", "v5.award.info", awards.spec),
        v5.route(AWARD_DISTRIBUTE_PATH, "POST", "v5.award.distribute-award", awards.distribute),
        v5.route(AWARD_RECORD_PATH, "POST", "v5.award.distribution-record", awards.record),
    ]
    state = {"tokens": tokens, "codes": codes, "v5_errors": v5.errors, "awards": awards}
    return simkit.create_app(routes, state=state)
