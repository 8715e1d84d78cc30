"""Authentication of signed calls: the broker API (DMA, FD), signed with the broker's API key, and
the user endpoints signed with a sub-account's or a Fast API key (``api_keys``).

From the documents (001, O2, O3; docs/design/exchanges.md): requests are signed
(``OK-ACCESS-KEY/SIGN/TIMESTAMP/PASSPHRASE``); the signature is verified over the raw request target
and the raw body bytes received, never re-serialised (50113); missing headers give 50103/50104/
50106/50107, an unknown key 50111, a malformed timestamp 50112, one outside the window (30 s either
way) 50102, a wrong passphrase 50105, and ``x-simulated-trading: 1`` against a live key (or its
absence against a demo key) 50101.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

from broker_gateway.sandbox import simkit
from starlette.requests import Request
from starlette.responses import Response

from .. import signing
from .responses import okx_error

__all__ = ["TIMESTAMP_WINDOW", "BrokerKey", "check_signature"]

TIMESTAMP_WINDOW = 30.0  # a choice: official only for WebSocket logins (docs/design/exchanges.md)


@dataclass(frozen=True)
class BrokerKey:
    """The broker's API key; a demo-trading key only answers requests with x-simulated-trading: 1."""

    api_key: str
    secret_key: str = field(repr=False)
    passphrase: str = field(repr=False)
    demo: bool = False


async def check_signature(
    request: Request, lookup: Callable[[str], BrokerKey | None], *, clock: simkit.Clock, window: float
) -> Response | None:
    """Check the OK-ACCESS-* headers against the key ``lookup`` finds for OK-ACCESS-KEY, over the raw
    bytes received; None when the request is signed by that key."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    target = raw_path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
    body = await request.body()
    headers = request.headers
    api_key = headers.get("ok-access-key", "")
    passphrase = headers.get("ok-access-passphrase", "")
    signature = headers.get("ok-access-sign", "")
    ts = headers.get("ok-access-timestamp", "")
    for value, code, what in (
        (api_key, "50103", "OK-ACCESS-KEY"), (passphrase, "50104", "OK-ACCESS-PASSPHRASE"),
        (signature, "50106", "OK-ACCESS-SIGN"), (ts, "50107", "OK-ACCESS-TIMESTAMP"),
    ):
        if not value:
            return okx_error(code, f"Request header {what} can not be empty.")
    key = lookup(api_key)
    if key is None:
        return okx_error("50111", "Invalid OK-ACCESS-KEY.")
    moment = signing.parse_timestamp(ts)
    if moment is None:
        return okx_error("50112", "Invalid OK-ACCESS-TIMESTAMP.")
    if abs(moment.timestamp() - clock()) > window:
        return okx_error("50102", "Timestamp request expired.")
    if not hmac.compare_digest(passphrase.encode(), key.passphrase.encode()):
        return okx_error("50105", "Invalid OK-ACCESS-PASSPHRASE.")
    demo = headers.get("x-simulated-trading", "0") == "1"
    if demo != key.demo:
        return okx_error("50101", "APIKey does not match current environment.")
    expected = signing.sign(key.secret_key, ts, request.method, target, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return okx_error("50113", "Invalid Sign.")
    return None
