"""Serving a V5 endpoint: read the raw payload, authenticate, count the rate limit, check the key is
an exchange broker's, parse the parameters, run the handler and answer in the V5 envelope. Every
refusal is recorded in ``errors`` (as ``{"operation", "retCode"}``) for in-process tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from broker_gateway.sandbox import simkit
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .accounts import BrokerKey
from .rate_limits import RateLimiter
from .v5_auth import authenticate
from .v5_envelope import V5Error, envelope
from .v5_params import json_object, query_params

#: A broker endpoint: the caller's key and its parameters (query for GET, JSON object for POST) to
#: the answer's ``result``.
V5Handler = Callable[[BrokerKey, Any], dict[str, Any]]

# Benchmarks answer many errors: keep the latest ones only.
_MAX_ERRORS_KEPT = 10_000


class V5Api:
    """Wraps broker endpoint handlers as routes that share the keys, the rate limiter and the error record."""

    def __init__(self, keys: Mapping[str, BrokerKey], limiter: RateLimiter, clock: simkit.Clock) -> None:
        self._keys = keys
        self._limiter = limiter
        self._clock = clock
        self.errors: list[dict[str, object]] = []

    def route(self, path: str, method: str, operation: str, handler: V5Handler) -> Route:
        """``handler`` served at ``path``; requests are logged under ``operation``."""

        async def endpoint(request: Request) -> Response:
            simkit.RequestLog.tag(request, operation)
            headers: dict[str, str] = {}
            try:
                raw = await _raw_payload(request, method)
                key = authenticate(request.headers, raw, self._keys, self._clock)
                allowed, headers = self._limiter.take(key.api_key, path)
                if not allowed:
                    raise V5Error(10006, "Too many visits!")
                if not key.exchange_broker:
                    raise V5Error(10005, "Permission denied, please check your API key permissions.")
                params = query_params(raw) if method == "GET" else json_object(request.headers.get("content-type", ""), raw)
                result = handler(key, params)
            except V5Error as error:
                return self._refuse(operation, error, headers)
            return JSONResponse(envelope(0, "success", result, self._clock), headers=headers)

        return Route(path, endpoint, methods=[method])

    def _refuse(self, operation: str, error: V5Error, headers: dict[str, str]) -> Response:
        self.errors.append({"operation": operation, "retCode": error.code})
        if len(self.errors) > _MAX_ERRORS_KEPT:
            del self.errors[: _MAX_ERRORS_KEPT // 2]
        body = envelope(error.code, error.message, {}, self._clock)
        return JSONResponse(body, status_code=error.status_code, headers=headers)


async def _raw_payload(request: Request, method: str) -> str:
    """Exactly what was signed: the raw query string of a GET, the body of a POST."""
    if method == "GET":
        return request.scope.get("query_string", b"").decode("latin-1")
    try:
        return (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise V5Error(10001, "params error: the body is not UTF-8") from None
