"""Bybit's answers: the envelopes and codes, mapped to the gateway's errors in one place.

Bybit uses two envelopes: ``{retCode, retMsg, result}`` (V5 API, OAuth token errors) and
``{ret_code, ret_msg, result}`` (OAuth resources such as ``/openapi``); both are read everywhere
(docs/design/exchanges.md, Bybit OAuth). Business errors usually come with HTTP 200, so the code
decides first and the HTTP status only when there is no code. ``retMsg`` is never passed on: error
messages are the gateway's own, and ``upstream_code`` / ``upstream_http_status`` go in metadata.

Three tables, because the same number means different things on different Bybit surfaces:

- token endpoint (code exchange, refresh): 10001 code expired or used, 10004 refresh token invalid,
  33004 token expired -> InvalidGrant (AUTHORIZATION_CODE_INVALID on Exchange, REAUTH_REQUIRED on
  refresh); 10003 invalid client_id -> PROVIDER_CLIENT_AUTH_FAILED.
- OAuth resources with the user's token (``uid_bearer``, ``openapi``): 10001 unauthorised, 33004
  token expired, 50000 token verify fail, HTTP 401 -> AccessTokenRejected (one forced refresh and
  retry); 10005 -> INSUFFICIENT_SCOPE.
- V5 with the broker's key: 10001 parameter error -> PROVIDER_REQUEST_REJECTED; 10002 timestamp
  outside recv_window -> UNAVAILABLE (the request was refused, so a retry with a fresh timestamp is
  safe; a recurring one means the gateway's clock drifts); 10003 key invalid or wrong environment,
  10004 bad signature, 10007 authentication failed, 10010 unmatched IP, 33004 / -2015 key expired ->
  PROVIDER_CLIENT_AUTH_FAILED (the operator must fix the key); 10005 permission denied ->
  PERMISSION_DENIED / INSUFFICIENT_SCOPE; 10006 rate limit -> RESOURCE_EXHAUSTED with a RetryInfo
  from ``X-Bapi-Limit-Reset-Timestamp``.

Everywhere: HTTP 429 (system frequency protection) -> RESOURCE_EXHAUSTED; HTTP 403 (Bybit's IP rate
limit, which bans the IP for 10 minutes) -> RESOURCE_EXHAUSTED with a 600 s RetryInfo unless the
answer says otherwise; 5xx -> UNAVAILABLE.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

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
from broker_gateway.oauth2 import upstream_code
from broker_gateway.upstream import UpstreamResponse

#: Bybit's IP rate limit: "wait at least 10 minutes" after an HTTP 403.
IP_BAN_SECONDS = 600.0
#: retMsg values that mean success (docs/design/exchanges.md), for answers with retCode 0.
SUCCESS_MESSAGES = frozenset({"OK", "success", "SUCCESS", ""})

TOKEN_INVALID_GRANT = frozenset({"10001", "10004", "33004"})
TOKEN_CLIENT_AUTH = frozenset({"10003"})
RESOURCE_TOKEN_REJECTED = frozenset({"10001", "33004", "50000"})
V5_CLIENT_AUTH = frozenset({"10003", "10004", "10007", "10010", "33004", "-2015"})


def read_envelope(response: UpstreamResponse) -> tuple[Any, str]:
    """The parsed body (None if it is not JSON) and its code as a string ("" when absent)."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None, ""
    if not isinstance(body, dict):
        return body, ""
    for key in ("retCode", "ret_code"):
        if key in body and body[key] is not None:
            code = body[key]
            if isinstance(code, bool) or not isinstance(code, (int, str)):
                return body, "invalid"
            return body, upstream_code(str(code))
    return body, ""


def _metadata(provider_id: str, response: UpstreamResponse, code: str) -> dict[str, str]:
    metadata = {"provider": provider_id, "upstream_http_status": str(response.status_code)}
    if code:
        metadata["upstream_code"] = code
    return metadata


def _by_status(provider_id: str, response: UpstreamResponse, metadata: dict[str, str]) -> GatewayError | None:
    """The failures every Bybit surface shares, decided by HTTP status."""
    status = response.status_code
    if status == 429:
        return ProviderRateLimited(
            f"provider {provider_id} is rate limiting", metadata=metadata, retry_after=response.retry_after() or 1.0
        )
    if status == 403:
        return ProviderRateLimited(
            f"provider {provider_id} refused the gateway's IP (its IP rate limit)",
            metadata=metadata,
            retry_after=response.retry_after() or IP_BAN_SECONDS,
        )
    if status >= 500:
        return ProviderUnavailable(
            f"provider {provider_id} is unavailable", metadata=metadata, retry_after=response.retry_after() or 1.0
        )
    if 300 <= status < 400:
        return ProviderResponseInvalid(f"provider {provider_id} answered with a redirect, not followed", metadata=metadata)
    return None


def _success(body: Any, code: str, response: UpstreamResponse) -> bool:
    return 200 <= response.status_code < 300 and code in ("", "0") and isinstance(body, dict)


def check_token_response(response: UpstreamResponse, provider_id: str) -> dict[str, Any]:
    """The token endpoint's flat answer (unwrapped from ``result`` if Bybit wraps it), or the error."""
    body, code = read_envelope(response)
    if _success(body, code, response):
        if "access_token" not in body and isinstance(body.get("result"), dict):
            body = body["result"]
        return body
    metadata = _metadata(provider_id, response, code)
    if code in TOKEN_INVALID_GRANT:
        raise InvalidGrant(f"provider {provider_id} refused the grant", metadata=metadata)
    if code in TOKEN_CLIENT_AUTH or (response.status_code == 401 and not code):
        raise ProviderClientAuthFailed(
            f"provider {provider_id} refused the gateway's client credentials; check the configuration", metadata=metadata
        )
    if code == "10006":
        raise ProviderRateLimited(f"provider {provider_id} is rate limiting", metadata=metadata, retry_after=1.0)
    raise _by_status(provider_id, response, metadata) or _rejected(provider_id, body, metadata)


def check_resource_response(response: UpstreamResponse, provider_id: str) -> dict[str, Any]:
    """An OAuth resource's answer (``ret_code`` envelope) with the user's access token."""
    body, code = read_envelope(response)
    if _success(body, code, response):
        return body
    metadata = _metadata(provider_id, response, code)
    if code in RESOURCE_TOKEN_REJECTED or (response.status_code == 401 and code not in ("10003", "10005")):
        raise AccessTokenRejected(f"provider {provider_id} refused the access token", metadata=metadata)
    if code == "10003":
        raise ProviderClientAuthFailed(
            f"provider {provider_id} refused the gateway's client credentials; check the configuration", metadata=metadata
        )
    if code == "10005":
        raise InsufficientScope(f"the token lacks a scope provider {provider_id} requires", metadata=metadata)
    if code == "10006":
        raise ProviderRateLimited(f"provider {provider_id} is rate limiting", metadata=metadata, retry_after=1.0)
    raise _by_status(provider_id, response, metadata) or _rejected(provider_id, body, metadata)


def check_v5_response(
    response: UpstreamResponse, provider_id: str, now: Callable[[], datetime]
) -> Any:
    """A V5 answer's ``result``, or the error its ``retCode`` (or HTTP status) means."""
    body, code = read_envelope(response)
    if _success(body, code, response):
        if code == "":
            raise ProviderResponseInvalid(
                f"provider {provider_id} answered without a retCode", metadata=_metadata(provider_id, response, code)
            )
        return body.get("result", {})
    metadata = _metadata(provider_id, response, code)
    if code == "10006":
        raise ProviderRateLimited(
            f"provider {provider_id} is rate limiting the broker's key",
            metadata=metadata,
            retry_after=_limit_reset(response, now) or response.retry_after() or 1.0,
        )
    if code == "10002":
        raise ProviderUnavailable(
            f"provider {provider_id} refused the request's timestamp; check the gateway's clock",
            metadata=metadata,
            retry_after=1.0,
        )
    if code in V5_CLIENT_AUTH or (response.status_code == 401 and not code):
        raise ProviderClientAuthFailed(
            f"provider {provider_id} refused the broker's API key or signature; check the configuration",
            metadata=metadata,
        )
    if code == "10005":
        raise InsufficientScope(f"the broker's API key lacks a permission provider {provider_id} requires", metadata=metadata)
    raise _by_status(provider_id, response, metadata) or _rejected(provider_id, body, metadata)


def _rejected(provider_id: str, body: Any, metadata: dict[str, str]) -> GatewayError:
    if not isinstance(body, dict):  # not JSON, or JSON but no envelope: nothing Bybit documents
        return ProviderResponseInvalid("the provider answered with a body that is not a Bybit envelope", metadata=metadata)
    return ProviderRequestRejected(f"provider {provider_id} rejected the request", metadata=metadata)


def _limit_reset(response: UpstreamResponse, now: Callable[[], datetime]) -> float | None:
    """Seconds until ``X-Bapi-Limit-Reset-Timestamp`` (epoch ms), clamped to (0, 3600]."""
    value = response.headers.get("x-bapi-limit-reset-timestamp", "")
    try:
        reset_ms = float(value)
    except ValueError:
        return None
    if not math.isfinite(reset_ms):
        return None
    seconds = reset_ms / 1000.0 - now().timestamp()
    return min(max(seconds, 0.05), 3600.0)
