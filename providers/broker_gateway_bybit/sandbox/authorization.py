"""The OAuth page: checks an authorization request, asks the user (or takes ``approve=``), and
redirects back with a single-use code.

``response_type=token`` (the help centre, B4 in docs/design/exchanges.md, allows it besides ``code``) is served
implicit-style (RFC 6749 4.2): the redirect carries ``access_token``, ``token_type``,
``expires_in``, ``scope`` and ``state`` in its fragment, and no refresh token. Bybit documents
nothing more of it, so the shape is RFC 6749's [I]. PKCE makes no sense there and is refused."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from broker_gateway.sandbox import simkit
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .accounts import BybitClient
from .forms import RepeatedParameter, single_valued
from .paths import AUTHORIZE_PATH, AUTHORIZE_PATHS
from .tokens import ACCESS_TOKEN_TTL, JwtTokenStore

#: Scopes Bybit knows: ``openapi`` for brokers, ``ai-account`` for its own agent client (B3).
SCOPES = {"openapi": "your OpenAPI key (trade through the broker)", "ai-account": "your AI sub-accounts"}
CODE_TTL = 600  # [C] B3: codes are short-lived, 10 minutes
#: RFC 7636: 43 to 128 unreserved characters.
PKCE_VALUE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")

#: The authorization parameters the consent form carries over to its POST.
_CARRIED = ("client_id", "redirect_uri", "response_type", "scope", "state", "code_challenge", "code_challenge_method")


@dataclass(frozen=True)
class _Authorization(simkit.AuthorizationRequest[BybitClient]):
    """An authorization request that checked out; ``implicit`` for ``response_type=token``."""

    implicit: bool = False


class AuthorizationPage:
    """``GET`` shows the consent form or approves at once; ``POST`` is the form's answer."""

    def __init__(
        self, clients: Mapping[str, BybitClient], codes: simkit.GrantStore, tokens: JwtTokenStore, *, strict_redirect_uri: bool
    ) -> None:
        self._clients = clients
        self._codes = codes
        self._tokens = tokens
        self._strict_redirect_uri = strict_redirect_uri
        self._consent = simkit.ConsentEndpoint(
            action=AUTHORIZE_PATH, provider_name="Bybit", scope_descriptions=SCOPES, check=self._check, approve=self._approved
        )

    def routes(self) -> list[Route]:
        return [self._consent.route(path) for path in AUTHORIZE_PATHS]

    def _check(self, pairs: simkit.Params) -> _Authorization | Response:
        try:
            params = single_valued(pairs)
        except RepeatedParameter as repeated:
            return simkit.error_page(f"10001: the {repeated.name} parameter is repeated.")
        return self._parse(params)

    def _parse(self, params: Mapping[str, str]) -> _Authorization | Response:
        client = self._clients.get(params.get("client_id", ""))
        if client is None:
            return simkit.error_page("10003: invalid client_id.")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            if self._strict_redirect_uri:
                return simkit.error_page("10001: redirect_uri is not registered for this application.")
            redirect_uri = client.redirect_uris[0]  # Bybit's silent fallback [C] B1
        response_type = params.get("response_type")
        if response_type not in ("code", "token"):
            return simkit.error_page("10001: response_type must be code or token.")
        scopes: list[str] = []
        for scope in params.get("scope", "").replace(" ", ",").split(","):
            if scope and scope not in scopes:
                if scope not in SCOPES or scope not in client.scopes:
                    return simkit.error_page("10001: the scope is not available to this application.")
                scopes.append(scope)
        if not scopes:
            return simkit.error_page("10001: scope is required.")
        challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
        pkce = challenge is not None or method is not None
        if pkce and (method != "S256" or challenge is None or not PKCE_VALUE.fullmatch(challenge)):
            return simkit.error_page("10001: PKCE needs a code_challenge with code_challenge_method=S256.")
        if pkce and response_type == "token":
            return simkit.error_page("10001: PKCE applies to response_type=code only.")
        carried = {k: v for k, v in params.items() if k in _CARRIED}
        return _Authorization(
            client, redirect_uri, params.get("state"), tuple(scopes), challenge, carried, implicit=response_type == "token"
        )

    def _approved(self, request: Request, auth: _Authorization, user: str) -> Response:
        client_id = auth.client.client_id
        if auth.implicit:
            return self._implicit(auth, user)
        code = self._codes.issue_code(
            client_id=client_id,
            redirect_uri=auth.redirect_uri,
            scopes=auth.scopes,
            user=user,
            code_challenge=auth.code_challenge,
        )
        return simkit.redirect(
            auth.redirect_uri,
            {"response_type": "code", "code": code, "scope": ",".join(auth.scopes), "state": auth.state, "client_id": client_id},
        )

    def _implicit(self, auth: _Authorization, user: str) -> Response:
        """RFC 6749 4.2.2: the access token in the redirect's fragment, no refresh token."""
        issued = self._tokens.issue(client_id=auth.client.client_id, user=user, scopes=auth.scopes)
        fields = {
            "access_token": issued.access_token, "token_type": "bearer", "expires_in": str(ACCESS_TOKEN_TTL),
            "scope": ",".join(auth.scopes), **({"state": auth.state} if auth.state is not None else {}),
        }
        location = f"{auth.redirect_uri}#{urlencode(fields, quote_via=quote)}"
        return Response(status_code=302, headers={"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
