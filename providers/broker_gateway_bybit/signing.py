"""Bybit V5 request signing and the HS256 JWTs of Bybit's OAuth, with no dependency beyond the stdlib.

V5 signing (docs/design/exchanges.md, [C] Bybit docs ``guide.mdx`` and pybit ``_http_manager.py``)::

    prehash   = timestamp + api_key + recv_window + (query string | JSON body), plain concatenation
    X-BAPI-SIGN = lower-case hex of HMAC-SHA256(key = api_secret, message = prehash)

The signer signs exactly the string that is sent: the query string is built once (keys sorted, ``k=v``
joined with ``&``, as pybit does) and becomes the URL's query verbatim; a POST body is serialised
once and the same bytes are signed and sent. The prehash is never logged: it carries the body.

Bybit's OAuth tokens are HS256 JWTs whose payload names the user (``GrantMemberID``). The gateway
cannot check their signature (Bybit keeps the key), so it reads the claims of a token it received
from the token endpoint over TLS, as OIDC Core 3.1.3.7 allows for ID tokens. The simulator signs and
verifies them with its own key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

#: pybit's default and Bybit's documented default receive window, in milliseconds.
DEFAULT_RECV_WINDOW = 5000
#: Characters that go into a signed query string as they are (pybit does not URL-encode; anything
#: else is percent-encoded, and the signature covers the encoded form that is actually sent).
_QUERY_SAFE = ":,._~=/+-%"


def prehash(timestamp: str, api_key: str, recv_window: str, payload: str) -> str:
    """The string Bybit V5 signs: ``timestamp + api_key + recv_window + payload``."""
    return f"{timestamp}{api_key}{recv_window}{payload}"


def sign(api_secret: str, timestamp: str, api_key: str, recv_window: str, payload: str) -> str:
    """``X-BAPI-SIGN``: lower-case hex HMAC-SHA256 of the prehash under the API secret."""
    message = prehash(timestamp, api_key, recv_window, payload).encode("utf-8")
    return hmac.new(api_secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def query_value(value: Any) -> str:
    """A parameter value as it appears in a query string: integers without a fraction (JSON numbers
    arrive from protobuf as floats), booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def query_string(params: Mapping[str, Any]) -> str:
    """pybit's canonical query: keys sorted, ``k=v`` joined by ``&``, None dropped. Values made only
    of query-safe characters (the operation schemas allow no others) are sent unchanged."""
    pairs = []
    for key in sorted(params):
        value = params[key]
        if value is None:
            continue
        pairs.append(f"{quote(key, safe='')}={quote(query_value(value), safe=_QUERY_SAFE)}")
    return "&".join(pairs)


def json_body(params: Mapping[str, Any]) -> bytes:
    """The exact POST body: compact JSON with integral floats written as integers."""
    return json.dumps(_integral(dict(params)), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def signed_headers(
    *, api_key: str, api_secret: str, timestamp_ms: int, recv_window: int, payload: str
) -> dict[str, str]:
    """The X-BAPI-* headers of one request (HMAC keys: ``X-BAPI-SIGN-TYPE: 2``, as pybit sends)."""
    timestamp, window = str(timestamp_ms), str(recv_window)
    return {
        "X-BAPI-API-KEY": api_key,
        "X-BAPI-TIMESTAMP": timestamp,
        "X-BAPI-RECV-WINDOW": window,
        "X-BAPI-SIGN": sign(api_secret, timestamp, api_key, window, payload),
        "X-BAPI-SIGN-TYPE": "2",
    }


# --------------------------------------------------------------------------------------------------
# HS256 JWT
# --------------------------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_encode(claims: Mapping[str, Any], key: bytes) -> str:
    """A compact HS256 JWS of ``claims``."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    return f"{header}.{payload}.{_b64url(hmac.new(key, signing_input, hashlib.sha256).digest())}"


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a compact JWT without checking its signature; None when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(_b64url_decode(parts[1]))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def jwt_verify(token: str, key: bytes) -> dict[str, Any] | None:
    """The claims of an HS256 JWT whose header and signature check out under ``key``; else None.
    Expiry is the caller's business (it owns the clock)."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        header = json.loads(_b64url_decode(parts[0]))
        signature = _b64url_decode(parts[2])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        return None
    expected = hmac.new(key, f"{parts[0]}.{parts[1]}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        return None
    return jwt_claims(token)
