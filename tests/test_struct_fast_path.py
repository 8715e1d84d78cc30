"""The servicer's JSON -> Struct/Value conversion (the well-known types' setters) gives the message
json_format.ParseDict gives.

It exists for speed (benchmarks/README.md): user info claims and every operation's result pass
through it.
"""

from __future__ import annotations

from typing import Any

import pytest
from broker_gateway.servicer import _struct, _value
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
