"""Reading V5 parameters: the raw query or JSON body, typed values, and Bybit's cursor pagination.
Anything breaking a documented rule raises :class:`ParamError` (10001)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import parse_qsl

from .forms import RepeatedParameter, single_valued
from .v5_envelope import ParamError


def query_params(raw: str) -> dict[str, str]:
    """The parameters of the raw query string (percent-decoded); a repeated one is 10001."""
    try:
        return single_valued(parse_qsl(raw, keep_blank_values=True))
    except RepeatedParameter as repeated:
        raise ParamError(repeated.name, "is repeated") from None


def json_object(content_type: str, raw: str) -> dict[str, Any]:
    """The JSON object of a POST body sent as ``application/json``."""
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ParamError("body", "must be application/json")
    try:
        body = json.loads(raw)
    except ValueError:
        raise ParamError("body", "is not JSON") from None
    if not isinstance(body, dict):
        raise ParamError("body", "must be a JSON object")
    return body


def date_param(params: Mapping[str, str], name: str) -> date | None:
    """A ``YYYYMMDD`` date, or None when absent."""
    value = params.get(name)
    if value is None:
        return None
    if len(value) != 8 or not value.isascii() or not value.isdigit():
        raise ParamError(name, "must be YYYYMMDD")
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        raise ParamError(name, "must be YYYYMMDD") from None


def int_param(params: Mapping[str, str], name: str, low: int, high: int, default: int | None) -> int | None:
    """A decimal integer in ``[low, high]``, or ``default`` when absent."""
    value = params.get(name)
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
        raise ParamError(name, f"must be an integer in [{low}, {high}]")
    return int(value)


def uids_param(params: Mapping[str, Any], name: str) -> set[str] | None:
    """UIDs separated by commas, or None when absent."""
    value = params.get(name)
    if value is None:
        return None
    uids = value.split(",") if isinstance(value, str) else []
    if not uids or not all(uid.isascii() and uid.isdigit() for uid in uids):
        raise ParamError(name, "must list UIDs separated by commas")
    return set(uids)


def page(rows: list[dict[str, Any]], params: Mapping[str, str], limit: int | None) -> tuple[list[dict[str, Any]], str]:
    """One page of ``rows`` and the next cursor; cursors look like Bybit's, already percent-encoded
    (``o%3A2``), so clients must send them back verbatim."""
    offset = 0
    cursor = params.get("cursor")
    if cursor is not None:
        prefix, _, number = cursor.partition(":")
        if prefix != "o" or not number.isdigit():
            raise ParamError("cursor", "is not a cursor this endpoint returned")
        offset = int(number)
    limit = limit or len(rows)
    end = offset + limit
    return rows[offset:end], (f"o%3A{end}" if end < len(rows) else "")
