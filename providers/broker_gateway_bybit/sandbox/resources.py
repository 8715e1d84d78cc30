"""The OAuth resources a bearer token opens: the user's UID and the user's OpenAPI key pair."""

from __future__ import annotations

import hashlib
import hmac

from broker_gateway.sandbox import simkit
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .accounts import bybit_uid
from .oauth_answers import answer, resource_error
from .paths import OPENAPI_PATH, UID_PATH
from .tokens import JwtTokenStore


def openapi_key_pair(secret: bytes, client_id: str, uid: int) -> tuple[str, str]:
    """The stable OpenAPI key (18 characters) and secret (36) of one user for one client."""

    def derive(label: str, length: int) -> str:
        digest = hmac.new(secret, f"{label}\0{client_id}\0{uid}".encode(), hashlib.sha256).hexdigest()
        return digest.upper()[:length] if label == "key" else digest[:length]

    return derive("key", 18), derive("secret", 36)


class OAuthResources:
    """``uid_bearer`` and ``openapi``; ``key_secret`` makes each user's key pair stable (docs/design/exchanges.md)."""

    def __init__(self, tokens: JwtTokenStore, *, key_secret: bytes) -> None:
        self._tokens = tokens
        self._key_secret = key_secret

    def routes(self) -> list[Route]:
        return [
            Route(UID_PATH, self.uid_bearer, methods=["GET"]),
            Route(OPENAPI_PATH, self.openapi, methods=["GET"]),
        ]

    async def uid_bearer(self, request: Request) -> Response:
        simkit.RequestLog.tag(request, "uid_bearer")
        grant = self._bearer(request)
        if isinstance(grant, Response):
            return grant
        return answer({"ret_code": 0, "ret_msg": "success", "uid": bybit_uid(grant.user)})

    async def openapi(self, request: Request) -> Response:
        simkit.RequestLog.tag(request, "openapi")
        grant = self._bearer(request)
        if isinstance(grant, Response):
            return grant
        if "openapi" not in grant.scopes:
            return resource_error(10005, "permission denied")
        api_key, api_secret = openapi_key_pair(self._key_secret, grant.client_id, bybit_uid(grant.user))
        return answer({"ret_code": 0, "ret_msg": "success", "result": {"api_key": api_key, "api_secret": api_secret}})

    def _bearer(self, request: Request) -> simkit.TokenGrant | Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return resource_error(10001, "unauthorised", 401)
        found = self._tokens.lookup_access(token)
        if found.status is simkit.Status.EXPIRED:
            return resource_error(33004, "token expired")
        if not found.ok or found.value is None:
            return resource_error(50000, "Token verify fail")
        return found.value
