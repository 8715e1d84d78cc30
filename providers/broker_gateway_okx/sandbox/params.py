"""Request parameters as the simulated OKX reads them: the query of a GET or the JSON body of a
POST, empty values dropped, then checked against the endpoint's documented rules from
``operations.py``. Missing parameters are 50014, malformed ones 51000; unknown ones are ignored."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from jsonschema import Draft202012Validator
from starlette.requests import Request
from starlette.responses import Response

from ..operations import Endpoint
from .responses import okx_error

__all__ = ["ParameterReader"]


def _simulator_schema(endpoint: Endpoint) -> dict[str, Any]:
    """The endpoint's documented rules as OKX checks them: unknown parameters are ignored."""
    schema = endpoint.schema()
    schema.pop("additionalProperties", None)
    if endpoint.name == "trade.place_order":
        schema["properties"]["clOrdId"] = {"type": "string", "pattern": "^[A-Za-z0-9]{1,32}$"}
    return schema


class ParameterReader:
    """Reads and checks the parameters of calls to ``endpoints``."""

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self._validators = {endpoint.name: Draft202012Validator(_simulator_schema(endpoint)) for endpoint in endpoints}

    async def read(self, request: Request, endpoint: Endpoint | None) -> dict[str, Any] | Response:
        """The request's parameters, or OKX's error for them; ``endpoint`` None reads without rules."""
        if request.method == "GET":
            params: dict[str, Any] = {}
            for key, value in parse_qsl(request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
                if key in params:
                    return okx_error("51000", f"Parameter {key} error")
                params[key] = value
        else:
            raw = await request.body()
            if not raw:
                return okx_error("50000", "Body cannot be empty.")
            try:
                params = json.loads(raw)
            except ValueError:
                return okx_error("50002", "JSON syntax error")
            if not isinstance(params, dict):
                return okx_error("50002", "JSON syntax error")
        params = {key: value for key, value in params.items() if value != ""}
        if endpoint is None:
            return params
        error = min(
            self._validators[endpoint.name].iter_errors(params),
            key=lambda e: (list(e.absolute_path), e.validator),
            default=None,
        )
        if error is None:
            return params
        if error.validator == "required":
            missing = next(name for name in error.validator_value if name not in error.instance)
            return okx_error("50014", f"Parameter {missing} cannot be empty.")
        name = str(error.absolute_path[0]) if error.absolute_path else "body"
        return okx_error("51000", f"Parameter {name} error")
