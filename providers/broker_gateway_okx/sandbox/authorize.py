"""The authorization endpoint of the simulated OKX: parameter checks, the consent page (or
``approve=<username>``), and the redirect back with a code and the site.

From the documents (001, O1, O7; docs/design/exchanges.md): authorization-code mode and PKCE mode
(a ``code_challenge`` is required without a client secret). Scopes ``read_only``, ``trade`` and (code
mode only, with ``access_type=offline``) ``fast_api``. The callback carries ``domain``, the site the
account lives on.

Choices where the documents are silent ([I] in docs/design/exchanges.md):

- The URL is ``/account/oauth/authorize`` (third-party observations).
- Authorization errors: an unknown client, an unregistered ``redirect_uri`` (53016) or a missing
  state give an error page; others redirect with RFC 6749 ``error`` and the state.
- ``domain`` is the origin the authorization request arrived at, so a test reaching the simulator
  through another host name plays a user of another site.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from broker_gateway.sandbox import simkit
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .clients import OkxClient
from .grants import OkxGrants
from .responses import origin

__all__ = ["AUTHORIZE_PATH", "PKCE_VALUE", "SCOPES", "AuthorizationEndpoint"]

AUTHORIZE_PATH = "/account/oauth/authorize"
SCOPES = {
    "read_only": "read your account (no sub-account modules)",
    "trade": "trade for you (no sub-account modules)",
    "fast_api": "create an API key bound to this application",
}
#: What a PKCE code challenge or verifier looks like (RFC 7636 4.1).
PKCE_VALUE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_AUTHORIZE_PARAMS = (
    "client_id", "redirect_uri", "response_type", "scope", "state", "access_type",
    "code_challenge", "code_challenge_method", "channelId", "approve",
)
_UNTRUSTED_TARGET = simkit.UntrustedTargetPages(
    missing="53011: the {name} parameter cannot be empty.",
    unknown_client="53010: unknown client_id.",
    unregistered_redirect="53016: invalid redirect_uri (it must equal a registered one exactly).",
)


class AuthorizationEndpoint:
    """``GET`` asks for consent (or approves ``approve=<username>`` at once); ``POST`` is the consent
    form's answer."""

    def __init__(self, *, clients: Mapping[str, OkxClient], grants: OkxGrants) -> None:
        self._clients = clients
        self._grants = grants
        self._consent = simkit.ConsentEndpoint(
            action=AUTHORIZE_PATH,
            provider_name="OKX",
            scope_descriptions=SCOPES,
            check=lambda params: self._parse(simkit.multi_valued(params)),
            approve=self._issue_code,
        )

    def route(self) -> Route:
        return self._consent.route(AUTHORIZE_PATH)

    def _parse(self, params: dict[str, list[str]]) -> simkit.AuthorizationRequest[OkxClient] | Response:
        target = simkit.trusted_target(params, self._clients, single_valued=_AUTHORIZE_PARAMS, pages=_UNTRUSTED_TARGET)
        if isinstance(target, Response):
            return target
        client, fail = target.client, target.fail
        single = {k: v[0] for k, v in params.items()}
        if single.get("response_type") != "code":
            return fail("unsupported_response_type", "response_type must be code.")
        access_type = single.get("access_type")
        if access_type is not None and access_type != "offline":
            return fail("invalid_request", "access_type must be offline.")
        scopes = tuple(s for s in single.get("scope", "").split(",") if s)
        if not scopes:
            return fail("invalid_scope", "53011: scope cannot be empty.")
        if any(scope not in SCOPES for scope in scopes) or len(set(scopes)) != len(scopes):
            return fail("invalid_scope", "53010: scope error.")
        if "fast_api" in scopes and client.pkce:
            return fail("invalid_scope", "fast_api is available in authorization-code mode only.")
        if "fast_api" in scopes and access_type != "offline":
            return fail("invalid_request", "fast_api needs access_type=offline.")
        challenge = single.get("code_challenge")
        if challenge is not None:
            if single.get("code_challenge_method") != "S256":
                return fail("invalid_request", "code_challenge_method must be S256.")
            if not PKCE_VALUE.fullmatch(challenge):
                return fail("invalid_request", "code_challenge is malformed.")
        elif client.pkce:
            return fail("invalid_request", "53011: code_challenge cannot be empty in PKCE mode.")
        return simkit.AuthorizationRequest.for_code(
            client=client,
            redirect_uri=target.redirect_uri,
            state=target.state,
            scopes=scopes,
            code_challenge=challenge,
            scope_separator=",",
            extra_fields={"access_type": access_type} if access_type else None,
        )

    def _issue_code(self, request: Request, auth: simkit.AuthorizationRequest[OkxClient], username: str) -> Response:
        site = origin(request)
        code = self._grants.issue_code(
            site=site,
            client_id=auth.client.client_id,
            redirect_uri=auth.redirect_uri,
            scopes=auth.scopes,
            user=username,
            code_challenge=auth.code_challenge,
        )
        return simkit.redirect(auth.redirect_uri, {"code": code, "state": auth.state, "domain": site})
