"""Checking operation parameters against their JSON Schema before anything is sent upstream.

Error messages name the parameter and the rule it breaks, never the value: parameters can be
secrets (a sub-account API key's passphrase), and messages reach callers and logs. They name a
parameter only by a path of names the schema defines; a key the caller made up is never repeated
(``params`` has a key the operation does not accept), so nothing the caller sent comes back.

Every call is on the hot path of InvokeOperation, where jsonschema cost more than the request
signing (benchmarks/README.md). So each schema is prepared once (an operation's schema does not
change after the provider built it), and schemas made only of the common keywords (an object of
string properties with ``pattern``, ``enum``, ``minLength``/``maxLength``, ``required`` and
``additionalProperties``) are first checked by a direct test that accepts exactly what jsonschema
accepts; whatever it refuses, and every other schema, goes through jsonschema, which names the error.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .errors import InvalidArgument

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@functools.lru_cache(maxsize=512)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json), format_checker=Draft202012Validator.FORMAT_CHECKER)


_SIMPLE_OBJECT_KEYWORDS = frozenset({"type", "properties", "required", "additionalProperties", "description", "title"})
_SIMPLE_STRING_KEYWORDS = frozenset({"type", "pattern", "enum", "minLength", "maxLength", "description", "title"})


class _Prepared:
    """A schema's jsonschema validator, and its direct test when the schema is simple enough."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema  # kept so that its id() stays this schema's while cached
        self.validator = _validator(json.dumps(schema, sort_keys=True))
        self.accepts = _simple_test(schema)


_prepared: dict[int, _Prepared] = {}


def _prepare(schema: Mapping[str, Any]) -> _Prepared:
    prepared = _prepared.get(id(schema))
    if prepared is None or prepared.schema is not schema:
        if len(_prepared) >= 1024:
            _prepared.clear()
        prepared = _prepared[id(schema)] = _Prepared(schema)
    return prepared


def _simple_test(schema: Mapping[str, Any]) -> Any:
    """A function accepting exactly the params jsonschema accepts, or None when the schema uses a
    keyword (or a form of one) outside the small set this handles."""
    if not set(schema) <= _SIMPLE_OBJECT_KEYWORDS or schema.get("type") != "object":
        return None
    extra_allowed = schema.get("additionalProperties", True)
    required = schema.get("required", [])
    properties = schema.get("properties", {})
    if not isinstance(extra_allowed, bool) or not isinstance(required, list) or not isinstance(properties, Mapping):
        return None
    if not all(isinstance(name, str) for name in required):
        return None
    rules: dict[str, tuple[Any, list[str] | None, int | None, int | None]] = {}
    for name, rule in properties.items():
        if not isinstance(rule, Mapping) or not set(rule) <= _SIMPLE_STRING_KEYWORDS or rule.get("type") != "string":
            return None
        pattern, enum = rule.get("pattern"), rule.get("enum")
        low, high = rule.get("minLength"), rule.get("maxLength")
        if pattern is not None and not isinstance(pattern, str):
            return None
        if enum is not None and not (isinstance(enum, list) and all(isinstance(v, str) for v in enum)):
            return None
        if any(v is not None and (isinstance(v, bool) or not isinstance(v, int)) for v in (low, high)):
            return None
        rules[name] = (None if pattern is None else re.compile(pattern), enum, low, high)

    def accepts(params: Mapping[str, Any]) -> bool:
        for name in required:
            if name not in params:
                return False
        for name, value in params.items():
            rule = rules.get(name)
            if rule is None:
                if not extra_allowed:
                    return False
                continue
            if not isinstance(value, str):
                return False
            pattern, enum, low, high = rule
            if pattern is not None and pattern.search(value) is None:
                return False  # jsonschema's pattern is re.search too
            if enum is not None and value not in enum:
                return False
            if (low is not None and len(value) < low) or (high is not None and len(value) > high):
                return False
        return True

    return accepts


def check_params(schema: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """Raise INVALID_ARGUMENT naming the first offending parameter (``params.<name>``). Control
    characters are refused in every string, whatever the schema says: no upstream parameter needs
    them, and they defeat patterns (``$`` matches before a trailing newline)."""
    _refuse_control_characters(schema, params, ())
    prepared = _prepare(schema)
    if prepared.accepts is not None and prepared.accepts(params):
        return
    error = min(prepared.validator.iter_errors(dict(params)), key=_error_order, default=None)
    if error is not None:
        field, rule = _describe(schema, error)
        raise InvalidArgument(field, f"{field} {rule}", metadata={"rule": str(error.validator)})


def _error_order(error: ValidationError) -> tuple[list[tuple[str, Any]], str]:
    """The first error by path, then rule; a path mixes keys and list indices, which Python will not
    compare with each other, so each part is keyed by its type first."""
    return [(type(part).__name__, part) for part in error.absolute_path], str(error.validator)


def _refuse_control_characters(schema: Mapping[str, Any], value: Any, path: tuple[str | int, ...]) -> None:
    if isinstance(value, str):
        if _CONTROL.search(value):
            field = ".".join(["params", *_named(schema, path)])
            raise InvalidArgument(field, f"{field} must not contain control characters", metadata={"rule": "control"})
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_control_characters(schema, item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_control_characters(schema, item, (*path, index))


def _named(schema: Mapping[str, Any], path: Sequence[str | int]) -> list[str]:
    """The leading part of ``path`` the schema names (its properties, and list positions under its
    ``items``); from the first key no schema defines, a key the caller made up, the rest is left out."""
    names: list[str] = []
    rule = schema
    for part in path:
        properties, items = rule.get("properties"), rule.get("items")
        if isinstance(part, str) and isinstance(properties, Mapping) and isinstance(properties.get(part), Mapping):
            rule = properties[part]
        elif isinstance(part, int) and isinstance(items, Mapping):
            rule = items
        else:
            break
        names.append(str(part))
    return names


def _describe(schema: Mapping[str, Any], error: ValidationError) -> tuple[str, str]:
    path = list(error.absolute_path)
    named = _named(schema, path)
    field = ".".join(["params", *named])
    if error.validator == "required" and isinstance(error.validator_value, list):
        present = error.instance if isinstance(error.instance, Mapping) else {}
        missing = [name for name in error.validator_value if name not in present]
        if missing and len(named) == len(path):
            field = f"{field}.{missing[0]}"  # a name from the schema's own list
        return field, "is required"
    if error.validator == "additionalProperties":
        return field, "has a key the operation does not accept"
    if len(named) < len(path):
        return field, "has a value the operation does not accept"
    rules = {
        "type": f"must be of type {error.validator_value}",
        "enum": "must be one of " + ", ".join(map(str, error.validator_value)) if isinstance(error.validator_value, list) else "is not allowed",
        "pattern": "does not have the required format",
        "format": f"must be a valid {error.validator_value}",
        "minLength": f"must be at least {error.validator_value} characters",
        "maxLength": f"must be at most {error.validator_value} characters",
        "minimum": f"must be at least {error.validator_value}",
        "maximum": f"must be at most {error.validator_value}",
        "minItems": f"must have at least {error.validator_value} entries",
        "maxItems": f"must have at most {error.validator_value} entries",
        "const": "has a value that is not allowed",
    }
    return field, rules.get(str(error.validator), f"breaks the {error.validator} rule")
