"""The servicer's JSON -> Struct/Value conversion (the well-known types' setters) gives the message
json_format.ParseDict gives, and its params Struct -> dict conversion (``validation.params_struct``)
gives the dict json_format.MessageToDict gives, refusing what has no JSON form.

They exist for speed (benchmarks/README.md): user info claims, every operation's result and every
operation's params pass through them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from broker_gateway.errors import InvalidArgument
from broker_gateway.servicer import _struct, _value
from broker_gateway.validation import MAX_PARAMS_DEPTH, MAX_PARAMS_KEY, params_struct
from google.protobuf import json_format, struct_pb2
from hypothesis import given
from hypothesis import strategies as st

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
_json = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)


@given(_json)
def test_any_result_converts_as_parse_dict(result: Any) -> None:
    assert _value(result) == json_format.ParseDict(result, struct_pb2.Value())


@given(st.dictionaries(st.text(max_size=8), _json, max_size=6))
def test_claims_convert_as_parse_dict(claims: dict[str, Any]) -> None:
    assert _struct(claims) == json_format.ParseDict(claims, struct_pb2.Struct())


def test_the_result_outlives_its_holder() -> None:
    value = _value({"data": [{"subAcct": "s1", "enable": True}]})
    assert json_format.MessageToDict(value) == {"data": [{"subAcct": "s1", "enable": True}]}


def test_a_plugins_tuple_is_a_list() -> None:
    assert _value({"a": (1, 2)}) == _value({"a": [1, 2]})


@pytest.mark.parametrize("result", [[object()], {"a": {1: "b"}}, {"a": {"b"}}])
def test_what_is_not_json_is_refused(result: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        _value(result)


#: Keys params_struct accepts: no control characters (C0 or DEL), within the length limit.
_keys = st.text(st.characters(codec="utf-8", exclude_characters="".join(map(chr, [*range(32), 127]))), max_size=8)
_finite_scalars = (
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)
_params_json = st.recursive(
    _finite_scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=4), max_leaves=25
)


@given(st.dictionaries(_keys, _params_json, max_size=6))
def test_params_convert_as_message_to_dict(params: dict[str, Any]) -> None:
    """Why: providers must see exactly the params they saw before (floats stay floats, key order kept)."""
    struct = json_format.ParseDict(params, struct_pb2.Struct())
    assert json.dumps(params_struct(struct)) == json.dumps(json_format.MessageToDict(struct))


def _nested(depth: int) -> dict[str, Any]:
    """A params object ``depth`` levels deep, lists and objects alternating."""
    value: Any = "leaf"
    for level in range(depth - 1):
        value = [value] if level % 2 else {"k": value}
    return {"k": value}


@pytest.mark.parametrize(
    "params",
    [
        {"n": float("nan")},
        {"n": float("inf")},
        {"list": [1, {"n": float("-inf")}]},
        {"secret\x00key": 1},
        {"line\r\nbreak": 1},
        {"nested": {"esc\x1b[31m": 1}},
        {"k" * (MAX_PARAMS_KEY + 1): 1},
        _nested(MAX_PARAMS_DEPTH + 1),
    ],
    ids=["nan", "infinity", "nested-negative-infinity", "nul-key", "crlf-key", "nested-escape-key", "long-key", "too-deep"],
)
def test_params_without_json_form_are_refused_naming_params(params: dict[str, Any]) -> None:
    """Why: MessageToDict raised ValueError on NaN (INTERNAL), and keys reach messages and upstream
    requests; each is the caller's bad input, named ``params`` without repeating the key."""
    struct = struct_pb2.Struct()
    struct.update(params)
    with pytest.raises(InvalidArgument) as caught:
        params_struct(struct)
    assert caught.value.field == "params"
    assert not any(key in caught.value.message for key in params if len(key) > 3)


def test_the_limits_themselves_are_accepted() -> None:
    params = {"k" * MAX_PARAMS_KEY: 1.5, **_nested(MAX_PARAMS_DEPTH)}
    struct = json_format.ParseDict(params, struct_pb2.Struct())
    assert params_struct(struct) == json_format.MessageToDict(struct)
