"""Checking operation parameters against their JSON Schema before anything is sent upstream.

Error messages name the parameter and the rule it breaks, never the value: parameters can be
secrets (a sub-account API key's passphrase), and messages reach callers and logs.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .errors import InvalidArgument

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@functools.lru_cache(maxsize=512)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json), format_checker=Draft202012Validator.FORMAT_CHECKER)


def check_params(schema: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """Raise INVALID_ARGUMENT naming the first offending parameter (``params.<name>``). Control
    characters are refused in every string, whatever the schema says: no upstream parameter needs
    them, and they defeat patterns (``$`` matches before a trailing newline)."""
    _refuse_control_characters(params, "params")
    validator = _validator(json.dumps(schema, sort_keys=True))
    error = min(validator.iter_errors(dict(params)), key=lambda e: (list(e.absolute_path), e.validator), default=None)
    if error is not None:
        field, rule = _describe(error)
        raise InvalidArgument(field, f"{field} {rule}", metadata={"rule": str(error.validator)})


def _refuse_control_characters(value: Any, field: str) -> None:
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise InvalidArgument(field, f"{field} must not contain control characters", metadata={"rule": "control"})
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_control_characters(item, f"{field}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_control_characters(item, f"{field}.{index}")


def _describe(error: ValidationError) -> tuple[str, str]:
    path = ["params", *(str(part) for part in error.absolute_path)]
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in (error.instance or {})]
        return ".".join([*path, missing[0]]) if missing else ".".join(path), "is required"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(name for name in error.instance if name not in allowed)
        return ".".join([*path, extra[0]]) if extra else ".".join(path), "is not a parameter of this operation"
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
    return ".".join(path), rules.get(str(error.validator), f"breaks the {error.validator} rule")
