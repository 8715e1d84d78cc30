"""The token endpoints: a code (and PKCE verifier) for a token pair, a refresh token for a new one."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl

from broker_gateway.sandbox import simkit
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .accounts import BybitClient
from .authorization import PKCE_VALUE
from .forms import RepeatedParameter, single_valued
from .oauth_answers import answer, token_error
from .paths import REFRESH_PATH, TOKEN_PATH
from .tokens import REFRESH_TOKEN_TTL, JwtTokenStore


class TokenEndpoint:
    """``access_token`` and ``refresh_token``: form posts authenticated by the client's secret."""

    def __init__(self, clients: Mapping[str, BybitClient], codes: simkit.GrantStore, tokens: JwtTokenStore) -> None:
        self._clients = clients
        self._codes = codes
        self._tokens = tokens

    def routes(self) -> list[Route]:
        return [
            Route(TOKEN_PATH, self.access_token, methods=["POST"]),
            Route(REFRESH_PATH, self.refresh_token, methods=["POST"]),
        ]

    async def access_token(self, request: Request) -> Response:
        simkit.RequestLog.tag(request, "access_token")
        form = await _read_form(request)
        if isinstance(form, Response):
            return form
        client = self._client(form)
        if isinstance(client, Response):
            return client
        code, verifier = form.get("code"), form.get("code_verifier")
        if not code:
            return token_error(10001, "params error: code is required")
        taken = self._codes.take_code(code)
        grant = taken.value
        if not taken.ok or grant is None or grant.client_id != client.client_id:
            return token_error(10001, "code expired or used")
        if grant.code_challenge is not None and not _verifier_matches(verifier, grant.code_challenge):
            return token_error(10001, "code_verifier does not match")
        issued = self._tokens.issue(client_id=client.client_id, user=grant.user, scopes=grant.scopes, grant_id=grant.grant_id)
        return _token_answer(issued)

    async def refresh_token(self, request: Request) -> Response:
        simkit.RequestLog.tag(request, "refresh_token")
        form = await _read_form(request)
        if isinstance(form, Response):
            return form
        client = self._client(form)
        if isinstance(client, Response):
            return client
        presented = form.get("refresh_token")
        if not presented:
            return token_error(10001, "params error: refresh_token is required")
        rotated = self._tokens.rotate(presented, client_id=client.client_id)
        if not rotated.ok or rotated.value is None:
            return token_error(10004, "refresh token invalid")
        return _token_answer(rotated.value)

    def _client(self, form: Mapping[str, str]) -> BybitClient | Response:
        client = self._clients.get(form.get("client_id", ""))
        if client is None:
            return token_error(10003, "invalid client_id")
        if client.client_secret is not None:
            given = form.get("client_secret", "")
            if not hmac.compare_digest(given.encode(), client.client_secret.encode()):
                return token_error(10003, "invalid client_id or client_secret")
        return client


async def _read_form(request: Request) -> dict[str, str] | Response:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        return token_error(10001, "params error: the body must be a form")
    try:
        pairs = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return token_error(10001, "params error: the body is not UTF-8")
    try:
        return single_valued(pairs)
    except RepeatedParameter as repeated:
        return token_error(10001, f"params error: {repeated}")


def _verifier_matches(verifier: str | None, challenge: str) -> bool:
    """RFC 7636 S256: the verifier is well formed and hashes to the code's challenge."""
    return (
        verifier is not None
        and PKCE_VALUE.fullmatch(verifier) is not None
        and hmac.compare_digest(simkit.pkce_s256(verifier), challenge)
    )


def _token_answer(issued: simkit.IssuedTokens) -> Response:
    """Bybit's flat token answer ([C] B1), not RFC 6749's: lower-case ``bearer``, no ``scope``."""
    return answer(
        {
            "access_token": issued.access_token,
            "refresh_token": issued.refresh_token,
            "token_type": "bearer",
            "expires_in": issued.expires_in,
            "refresh_token_expires_in": REFRESH_TOKEN_TTL,
        }
    )
