"""OKX's answers mapped to the gateway's errors.

Every OKX answer is the envelope ``{"code": "0", "msg": "", "data": [...]}``; failures carry a
non-zero ``code`` (HTTP 200 for most business errors, 4xx for authentication). The OAuth broker codes
53000-53017 (001 and O1) and the public 50xxx codes (O3; sources and codes: docs/design/exchanges.md)
map as below. Where a code lands depends on the call: on the token endpoint a dead grant is
``InvalidGrant`` (AUTHORIZATION_CODE_INVALID on Exchange, REAUTH_REQUIRED on refresh); on a bearer
call it is ``AccessTokenRejected``, which makes the core refresh once and retry, so an expired access
token heals and a dead grant ends REAUTH_REQUIRED with the connection marked.

OKX's ``msg`` is never copied anywhere: only the code travels, as ``upstream_code``.
"""

from __future__ import annotations

import enum
from typing import Any

from broker_gateway.errors import (
    AccessTokenRejected,
    GatewayError,
    InsufficientScope,
    InvalidGrant,
    OutcomeUnknown,
    ProviderClientAuthFailed,
    ProviderRateLimited,
    ProviderRequestRejected,
    ProviderResponseInvalid,
    ProviderUnavailable,
)
from broker_gateway.oauth2 import upstream_code
from broker_gateway.upstream import UpstreamResponse

__all__ = ["OAUTH_CODES", "Call", "error_for", "parse_envelope", "raise_for_okx"]


class Call(enum.Enum):
    """What kind of request an answer belongs to."""

    #: Code exchange, refresh or revoke at the OAuth token endpoints.
    TOKEN = "token"
    #: An OpenAPI call with the user's bearer token.
    BEARER = "bearer"
    #: An OpenAPI call signed with the broker's API key.
    BROKER = "broker"


#: 53xxx: code -> (documented HTTP status, meaning), from 001's error table (docs/design/exchanges.md).
OAUTH_CODES: dict[str, tuple[int, str]] = {
    "53000": (400, "Invalid token"),
    "53001": (400, "Authorization canceled"),
    "53002": (400, "Token expired"),
    "53003": (400, "Token revoked"),
    "53004": (400, "Account frozen"),
    "53005": (400, "Wrong refresh token"),
    "53006": (401, "Invalid device"),
    "53009": (400, "Authorization failed"),
    "53010": (400, "Parameter {0} error"),
    "53011": (400, "Parameter {0} cannot be empty"),
    "53012": (400, "Authorization code expired"),
    "53013": (400, "No permission for this API"),
    "53014": (401, "Invalid IP"),
    "53015": (400, "Parameter {0} length exceeds the limit"),
    "53016": (400, "Invalid redirect_uri"),
    "53017": (400, "Fast API permissions not enabled"),
}

# The grant (or this token of it) is dead: the user must authorize again, unless a refresh heals it.
_DEAD_GRANT = frozenset({"53000", "53001", "53002", "53003", "53005", "53006", "53009", "53012"})
_RATE_LIMITED = frozenset({"50011", "50013", "50061"})
_UNAVAILABLE = frozenset({"50001", "50026"})
# Problems of the broker's own setup (key, passphrase, clock, IP allow-list, environment): only the
# operator can fix them, so they are PROVIDER_CLIENT_AUTH_FAILED and never retried.
_BROKER_SETUP = frozenset(
    {"50100", "50101", "50102", "50103", "50104", "50105", "50106", "50107", "50110", "50111", "50112", "50113", "50114", "53014"}
)
_NO_PERMISSION = frozenset({"53013", "50120"})


def parse_envelope(response: UpstreamResponse) -> dict[str, Any] | None:
    """The answer's ``{code, msg, data}`` envelope, or None when the body is not one."""
    try:
        body = response.json()
    except ProviderResponseInvalid:
        return None
    if isinstance(body, dict) and "code" in body:
        return body
    return None


def error_for(code: str, call: Call, *, provider_id: str, http_status: int, retry_after: float | None = None) -> GatewayError:
    """The gateway error for OKX ``code`` on a ``call``."""
    metadata = {"provider": provider_id, "upstream_code": upstream_code(code), "upstream_http_status": str(http_status)}
    if code in _DEAD_GRANT and call is Call.TOKEN:
        return InvalidGrant(f"provider {provider_id} refused the grant", metadata=metadata)
    if code in _DEAD_GRANT and call is Call.BEARER:
        return AccessTokenRejected(f"provider {provider_id} refused the access token", metadata=metadata)
    if code in _RATE_LIMITED:
        return ProviderRateLimited(f"provider {provider_id} is rate limiting", metadata=metadata, retry_after=retry_after or 1.0)
    if code in _UNAVAILABLE:
        return ProviderUnavailable(f"provider {provider_id} is unavailable", metadata=metadata, retry_after=retry_after or 1.0)
    if code == "50004":
        # "Endpoint request timeout: does not mean that the request was successful or failed."
        return OutcomeUnknown(f"provider {provider_id} timed out internally; the request may have taken effect", metadata=metadata)
    if code in _BROKER_SETUP:
        return ProviderClientAuthFailed(
            f"provider {provider_id} refused the gateway's credentials or setup; check the configuration", metadata=metadata
        )
    if code in _NO_PERMISSION:
        return InsufficientScope(f"provider {provider_id} denies this call to these credentials", metadata=metadata)
    # A code of no table: the HTTP status still says whether it is worth retrying.
    if http_status == 429:
        return ProviderRateLimited(f"provider {provider_id} is rate limiting", metadata=metadata, retry_after=retry_after or 1.0)
    if http_status >= 500:
        return ProviderUnavailable(f"provider {provider_id} is unavailable", metadata=metadata, retry_after=retry_after or 1.0)
    return ProviderRequestRejected(f"provider {provider_id} rejected the request", metadata=metadata)


def raise_for_okx(response: UpstreamResponse, provider_id: str, call: Call) -> Any:
    """Return ``data`` of a successful answer, or raise the gateway error the answer calls for."""
    envelope = parse_envelope(response)
    status = response.status_code
    metadata = {"provider": provider_id, "upstream_http_status": str(status)}
    if envelope is None:
        if status == 429:
            raise ProviderRateLimited(
                f"provider {provider_id} is rate limiting", metadata=metadata, retry_after=response.retry_after() or 1.0
            )
        if status >= 500:
            raise ProviderUnavailable(
                f"provider {provider_id} is unavailable", metadata=metadata, retry_after=response.retry_after() or 1.0
            )
        if status == 401 and call is Call.BEARER:
            raise AccessTokenRejected(f"provider {provider_id} refused the access token", metadata=metadata)
        if 300 <= status < 400:
            raise ProviderResponseInvalid(f"provider {provider_id} answered with a redirect, not followed", metadata=metadata)
        raise ProviderResponseInvalid(f"provider {provider_id} answered without OKX's envelope", metadata=metadata)
    code = envelope.get("code")
    code = str(code) if isinstance(code, (str, int)) and not isinstance(code, bool) else ""
    if code == "0" and 200 <= status < 300:
        data = envelope.get("data")
        if not isinstance(data, list):
            raise ProviderResponseInvalid(f"provider {provider_id} answered without a data array", metadata=metadata)
        return data
    if code in ("1", "2"):
        # A rejected order (or batch): the reason is in the first item's sCode.
        data = envelope.get("data")
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        code = str(first.get("sCode") or code)
    raise error_for(code or "invalid", call, provider_id=provider_id, http_status=status, retry_after=response.retry_after())
