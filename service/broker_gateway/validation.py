"""Checks on request fields, run before anything is stored or sent upstream.

Each check names the request field it rejects, so callers get INVALID_ARGUMENT with ``field`` set
(docs/design/security.md). Limits are generous for real values and small enough that oversized input is
refused before it costs anything.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import FieldTooLarge, InvalidArgument

MAX_ID = 128
MAX_URI = 2048
MAX_CODE = 4096
MAX_STATE = 512
MAX_SCOPE = 256
MAX_SCOPES = 50
MAX_PARAMS = 20
MAX_PARAM_KEY = 64
MAX_PARAM_VALUE = 2048

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]*")
# Printable ASCII without spaces: what codes, states and tokens are made of in practice.
_TOKEN = re.compile(r"[\x21-\x7e]+")
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3 scope-token
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def max_length(field: str, value: str, limit: int) -> None:
    """Refuse ``value`` when it is longer than ``limit`` characters."""
    if len(value) > limit:
        raise FieldTooLarge(field, f"{field} is longer than {limit} characters", metadata={"limit": str(limit)})


def required(field: str, value: str) -> str:
    if not value:
        raise InvalidArgument(field, f"{field} is required")
    return value


def identifier(field: str, value: str, *, limit: int = MAX_ID) -> str:
    """An id such as a connection or provider id: letters, digits and ``. _ ~ -``."""
    required(field, value)
    max_length(field, value, limit)
    if not _ID.fullmatch(value):
        raise InvalidArgument(field, f"{field} may hold only letters, digits and . _ ~ - (starting with a letter or digit)")
    return value


def opaque_token(field: str, value: str, *, limit: int) -> str:
    """A state, code or request id: printable ASCII without spaces."""
    required(field, value)
    max_length(field, value, limit)
    if not _TOKEN.fullmatch(value):
        raise InvalidArgument(field, f"{field} must be printable ASCII without spaces")
    return value


def uri(field: str, value: str) -> str:
    """A URI that is at least safe to compare and log: bounded, no whitespace or control characters."""
    required(field, value)
    max_length(field, value, MAX_URI)
    if not _TOKEN.fullmatch(value):
        raise InvalidArgument(field, f"{field} must be a URI without spaces, control or non-ASCII characters")
    return value


def scopes(field: str, values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    if len(values) > MAX_SCOPES:
        raise FieldTooLarge(field, f"{field} has more than {MAX_SCOPES} entries", metadata={"limit": str(MAX_SCOPES)})
    for value in values:
        required(field, value)
        max_length(field, value, MAX_SCOPE)
        if not _SCOPE.fullmatch(value):
            raise InvalidArgument(field, f"{field} entries must be RFC 6749 scope tokens (no spaces, quotes or backslashes)")
    return tuple(dict.fromkeys(values))


def string_map(field: str, values: Mapping[str, str]) -> dict[str, str]:
    """A small map of parameters with printable keys and values free of control characters."""
    if len(values) > MAX_PARAMS:
        raise FieldTooLarge(field, f"{field} has more than {MAX_PARAMS} entries", metadata={"limit": str(MAX_PARAMS)})
    for key, value in values.items():
        max_length(field, key, MAX_PARAM_KEY)
        max_length(field, value, MAX_PARAM_VALUE)
        if not _TOKEN.fullmatch(key) or _CONTROL.search(value):
            raise InvalidArgument(field, f"{field} keys must be printable ASCII and values free of control characters")
    return dict(values)


MAX_PARAMS_KEY = 128
MAX_PARAMS_DEPTH = 32
_PARAMS_RULES = (
    "params must hold only finite numbers, keys of at most "
    f"{MAX_PARAMS_KEY} characters without control characters, and at most {MAX_PARAMS_DEPTH} levels of nesting"
)


def params_struct(struct: Any) -> dict[str, Any]:
    """A ``google.protobuf.Struct`` as the dict ``json_format.MessageToDict`` gives (numbers as float,
    unset values as None), refusing what has no JSON form or no business in an upstream call:
    NaN and infinities, keys with control characters or longer than ``MAX_PARAMS_KEY``, nesting deeper
    than ``MAX_PARAMS_DEPTH``. The error names ``params`` and never repeats the key or value."""
    return _struct_dict(struct, 1)


def _struct_dict(struct: Any, depth: int) -> dict[str, Any]:
    if depth > MAX_PARAMS_DEPTH:
        raise InvalidArgument("params", _PARAMS_RULES, metadata={"rule": "depth"})
    fields = struct.fields
    result = {}
    for key in fields:
        if len(key) > MAX_PARAMS_KEY or _CONTROL.search(key):
            raise InvalidArgument("params", _PARAMS_RULES, metadata={"rule": "key"})
        result[key] = _value(fields[key], depth)
    return result


def _value(value: Any, depth: int) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise InvalidArgument("params", _PARAMS_RULES, metadata={"rule": "finite"})
        return number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _struct_dict(value.struct_value, depth + 1)
    if kind == "list_value":
        if depth >= MAX_PARAMS_DEPTH:
            raise InvalidArgument("params", _PARAMS_RULES, metadata={"rule": "depth"})
        return [_value(item, depth + 1) for item in value.list_value.values]
    return None  # null_value, or no kind set: MessageToDict gives None for both
