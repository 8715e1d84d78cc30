"""V5 request authentication: the ``X-BAPI-*`` headers, the recv_window rule and the signature over
the raw query string or body bytes received (never a re-serialisation).

Messages carry Bybit's diagnostic tails, which users debug with: a timestamp outside the window ends
in ``req_timestamp[...],server_timestamp[...],recv_window[...]``, a wrong signature in
``origin_string[...]``, the string Bybit signed (timestamp, API key, recv_window and payload: no
secret). An unknown key is 10003 with HTTP 200, as SDK logs show it (Bybit's error page says 401:
that stays for a missing header)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from broker_gateway.sandbox import simkit

from ..signing import DEFAULT_RECV_WINDOW, sign
from .accounts import BrokerKey
from .v5_envelope import V5Error, epoch_ms

_BAD_KEY = "API key is invalid."
_BAD_TIME = "invalid request, please check your server timestamp or recv_window param"
_BAD_SIGN = "error sign!"


def authenticate(headers: Mapping[str, str], raw: str, keys: Mapping[str, BrokerKey], clock: simkit.Clock) -> BrokerKey:
    """The broker key that signed this request, or V5Error: 10003 / 10002 / 10004 with HTTP 401 for a
    missing key / timestamp / signature header, 10003 for an unknown key, 10001 for a bad recv_window, 10002
    for a timestamp outside ``server_time - recv_window <= timestamp < server_time + 1000`` and 10004
    for a wrong signature."""
    api_key, timestamp, signature = (
        headers.get("x-bapi-api-key"),
        headers.get("x-bapi-timestamp"),
        headers.get("x-bapi-sign"),
    )
    if not api_key:
        raise V5Error(10003, _BAD_KEY, 401)
    if not timestamp:
        raise V5Error(10002, _BAD_TIME, 401)
    if not signature:
        raise V5Error(10004, _BAD_SIGN, 401)
    key = keys.get(api_key)
    if key is None:
        raise V5Error(10003, _BAD_KEY)
    window = headers.get("x-bapi-recv-window", str(DEFAULT_RECV_WINDOW))
    if not window.isascii() or not window.isdigit() or int(window) == 0:
        raise V5Error(10001, "params error: X-BAPI-RECV-WINDOW")
    server = epoch_ms(clock)
    if not timestamp.isascii() or not timestamp.isdigit() or not (server - int(window) <= int(timestamp) < server + 1000):
        raise V5Error(10002, f"{_BAD_TIME}. req_timestamp[{timestamp}],server_timestamp[{server}],recv_window[{window}]")
    expected = sign(key.api_secret, timestamp, api_key, window, raw)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise V5Error(10004, f"{_BAD_SIGN} origin_string[{timestamp}{api_key}{window}{raw}]")
    return key
