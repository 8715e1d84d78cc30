"""The direct test of simple operation schemas (``broker_gateway.schema``) decides exactly as jsonschema.

It exists for speed (benchmarks/README.md); these checks make sure it never accepts what jsonschema
refuses, nor refuses what jsonschema accepts, on generated schemas and params and on every schema of
the built-in providers.
"""

from __future__ import annotations

import json
from typing import Any

from broker_gateway.errors import InvalidArgument
from broker_gateway.schema import _simple_test, check_params
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

NAMES = ["subAcct", "page", "limit", "ccy", "x"]
PATTERNS = ["^[A-Za-z0-9]{6,20}$", "^[1-9][0-9]{0,8}$", "^(100|[1-9][0-9]?)$", "[0-9]", "^a|b$", "^$"]
TEXT = st.text(alphabet="ab019AZ_-. ", max_size=12)


@st.composite
def simple_schemas(draw: Any) -> dict[str, Any]:
    properties = {}
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=4)):
        rule: dict[str, Any] = {"type": "string", "description": "d"}
        if draw(st.booleans()):
            rule["pattern"] = draw(st.sampled_from(PATTERNS))
        if draw(st.booleans()):
            rule["enum"] = draw(st.lists(TEXT, min_size=1, max_size=3))
        if draw(st.booleans()):
            rule["minLength"] = draw(st.integers(0, 4))
        if draw(st.booleans()):
            rule["maxLength"] = draw(st.integers(0, 8))
        properties[name] = rule
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if draw(st.booleans()):
        schema["additionalProperties"] = draw(st.booleans())
    if draw(st.booleans()):
        schema["required"] = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=3))
    return schema


VALUES = st.one_of(TEXT, st.integers(-2, 200), st.booleans(), st.none(), st.lists(TEXT, max_size=2))
PARAMS = st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=5)


@settings(max_examples=400, deadline=None)
@given(simple_schemas(), PARAMS)
def test_direct_test_decides_as_jsonschema(schema: dict[str, Any], params: dict[str, Any]) -> None:
    accepts = _simple_test(schema)
    assert accepts is not None
    assert accepts(params) == Draft202012Validator(schema).is_valid(params)


def test_schemas_with_other_keywords_go_to_jsonschema() -> None:
    assert _simple_test({"type": "object", "properties": {"n": {"type": "integer"}}}) is None
    assert _simple_test({"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}) is None
    assert _simple_test({"type": "object", "if": {}, "then": {}}) is None
    assert _simple_test({"type": "object", "properties": {"e": {"type": "string", "enum": ["1", 1]}}}) is None


def _builtin_schemas() -> list[dict[str, Any]]:
    """Every operation schema the okx provider builds, and the bybit schemas (module constants)."""
    from broker_gateway_bybit import operations as bybit
    from broker_gateway_okx.operations import ENDPOINTS

    schemas = [endpoint.schema({}) for endpoint in ENDPOINTS]
    schemas += [value for value in vars(bybit).values() if isinstance(value, dict) and value.get("type") == "object"]
    assert len(schemas) > 10
    return schemas


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_builtin_schemas_decide_as_jsonschema(data: st.DataObject) -> None:
    schemas = _builtin_schemas()
    schema = data.draw(st.sampled_from(schemas))
    names = sorted(schema.get("properties", {})) + ["unknown"]
    params = data.draw(st.dictionaries(st.sampled_from(names), VALUES, max_size=4))
    accepts = _simple_test(schema)
    if accepts is not None:
        assert accepts(params) == Draft202012Validator(schema).is_valid(params)
    # Whatever path decides, check_params refuses exactly what jsonschema refuses.
    valid = Draft202012Validator(schema).is_valid(params)
    try:
        check_params(schema, params)
    except InvalidArgument:
        assert not valid, json.dumps(params)
    else:
        assert valid, json.dumps(params)
