"""OKX V5 REST request signing (docs/design/exchanges.md, OKX signing).

``OK-ACCESS-SIGN`` is Base64(HMAC-SHA256(secretKey, timestamp + METHOD + requestPath + body)), where
requestPath includes the query of a GET and body is the exact JSON text sent (empty for a GET). The
timestamp is UTC ISO-8601 with exactly three millisecond digits and a ``Z``. The same functions sign
the gateway's requests and verify them in the simulator; the four test vectors there pin
them down (tests/test_okx_signing.py).

Nothing here logs: the prehash contains the request body, which can hold a passphrase.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote

__all__ = [
    "TIMESTAMP_PATTERN",
    "canonical_body",
    "parse_timestamp",
    "prehash",
    "query_string",
    "sign",
    "signed_headers",
    "timestamp",
]

#: What an ``OK-ACCESS-TIMESTAMP`` looks like: ``2020-12-08T09:08:57.715Z``.
TIMESTAMP_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

# Characters sent as they are in a query value. python-okx sends values unencoded; the gateway's
# schemas keep values to these characters in practice, and anything else is percent-encoded so the
# request target stays valid. The signature covers the string exactly as sent either way.
_QUERY_SAFE = "-_.~,:"


def timestamp(moment: datetime) -> str:
    """``moment`` as OKX wants it: UTC, millisecond precision, trailing ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(value: str) -> datetime | None:
    """The instant of an ``OK-ACCESS-TIMESTAMP``, or None when it is not in OKX's format."""
    if not TIMESTAMP_PATTERN.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def prehash(ts: str, method: str, request_path: str, body: bytes | str = b"") -> bytes:
    """The signed message: plain concatenation of timestamp, upper-case method, path(+query), body."""
    raw_body = body.encode("utf-8") if isinstance(body, str) else body
    return ts.encode("ascii") + method.upper().encode("ascii") + request_path.encode("utf-8") + raw_body


def sign(secret_key: str, ts: str, method: str, request_path: str, body: bytes | str = b"") -> str:
    """The ``OK-ACCESS-SIGN`` value."""
    digest = hmac.new(secret_key.encode("utf-8"), prehash(ts, method, request_path, body), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_headers(
    *, api_key: str, secret_key: str, passphrase: str, ts: str, method: str, request_path: str, body: bytes = b""
) -> dict[str, str]:
    """The four ``OK-ACCESS-*`` headers of one request."""
    return {
        "OK-ACCESS-KEY": api_key,
        "OK-ACCESS-SIGN": sign(secret_key, ts, method, request_path, body),
        "OK-ACCESS-TIMESTAMP": ts,
        "OK-ACCESS-PASSPHRASE": passphrase,
    }


def query_string(params: Iterable[tuple[str, str]]) -> str:
    """``k=v`` pairs joined with ``&`` in the order given, empty values dropped (as python-okx does)."""
    return "&".join(f"{quote(key, safe=_QUERY_SAFE)}={quote(value, safe=_QUERY_SAFE)}" for key, value in params if value != "")


def canonical_body(body: Mapping[str, object]) -> bytes:
    """The JSON text of a POST body, serialised once: compact, in the order given, UTF-8."""
    return json.dumps(dict(body), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
