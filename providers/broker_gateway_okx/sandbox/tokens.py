"""The token and revoke endpoints of the simulated OKX, in both OAuth modes.

From the documents (001, O1; docs/design/exchanges.md): in PKCE mode the token call carries a
``code_verifier`` and every call a ``TERMID`` device id. Errors are OKX envelopes
``{"code": "53xxx", "msg", "data": []}`` with the HTTP status of 001's table.

Choices where the documents are silent ([I] in docs/design/exchanges.md):

- URLs: token ``/v5/users/oauth/token`` (third-party observations), revoke ``/v5/users/oauth/revoke``
  (invented; OKX documents revocation but not where).
- The token endpoint takes JSON or form bodies (O7 sends JSON, O8 a form) and answers success flat
  (``access_token``, ``token_type: "bearer"``, ``expires_in``, ``refresh_token``), errors enveloped.
  A wrong client secret is 53010 (as O8 saw for bad probes), a bad code 53012, a PKCE verifier that does
  not match 53009, a dead refresh token 53005 (expired 53002, revoked 53003), a missing or wrong
  ``TERMID`` 53006. Revoking an unknown token succeeds (RFC 7009).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from broker_gateway.sandbox import simkit
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .authorize import PKCE_VALUE
from .clients import OkxClient, authenticate_client
from .grants import GrantFacts, OkxGrants, dead_token
from .responses import NO_STORE, envelope, okx_error, origin
from .uids import uid_of

__all__ = ["REVOKE_PATH", "TOKEN_PATH", "TokenEndpoints"]

TOKEN_PATH = "/v5/users/oauth/token"
REVOKE_PATH = "/v5/users/oauth/revoke"


class TokenEndpoints:
    """``POST`` handlers of the token endpoint (code exchange, refresh) and the revoke endpoint."""

    def __init__(self, *, clients: Mapping[str, OkxClient], grants: OkxGrants, log: simkit.RequestLog) -> None:
        self._clients = clients
        self._grants = grants
        self._log = log

    async def token(self, request: Request) -> Response:
        self._log.tag(request, "token")
        form = await _read_form(request)
        if isinstance(form, Response):
            return form
        grant_type = form.get("grant_type", "")
        if not grant_type:
            return okx_error("53011", "Parameter grant_type cannot be empty")
        if grant_type not in ("authorization_code", "refresh_token"):
            return okx_error("53010", "Parameter grant_type error")
        self._log.tag(request, grant_type)
        client = authenticate_client(self._clients, form)
        if isinstance(client, Response):
            return client
        termid = request.headers.get("termid")
        if client.pkce and not termid:
            return okx_error("53006", "Invalid device")
        if grant_type == "authorization_code":
            return self._exchange(request, client, form, termid)
        return self._refresh(request, client, form, termid)

    def _exchange(self, request: Request, client: OkxClient, form: Mapping[str, str], termid: str | None) -> Response:
        code = form.get("code", "")
        if not code:
            return okx_error("53011", "Parameter code cannot be empty")
        taken, site = self._grants.take_code(code)
        if not taken.ok or taken.value is None or site != origin(request):
            return okx_error("53012", "Authorization code expired")
        grant = taken.value
        if grant.client_id != client.client_id:
            return okx_error("53009", "Authorization failed")
        redirect_uri = form.get("redirect_uri")
        if redirect_uri is not None and redirect_uri != grant.redirect_uri:
            return okx_error("53016", "Invalid redirect_uri")
        verifier = form.get("code_verifier")
        if grant.code_challenge is None:
            if verifier is not None:
                return okx_error("53009", "Authorization failed")
        elif not verifier:
            return okx_error("53011", "Parameter code_verifier cannot be empty")
        elif not PKCE_VALUE.fullmatch(verifier) or not hmac.compare_digest(simkit.pkce_s256(verifier), grant.code_challenge):
            return okx_error("53009", "Authorization failed")
        facts = GrantFacts(site=site, termid=termid if client.pkce else None, uid=uid_of(grant.user))
        return _token_response(self._grants.issue_tokens(grant, facts))

    def _refresh(self, request: Request, client: OkxClient, form: Mapping[str, str], termid: str | None) -> Response:
        refresh_token = form.get("refresh_token", "")
        if not refresh_token:
            return okx_error("53011", "Parameter refresh_token cannot be empty")
        facts = self._grants.facts_of_refresh_token(refresh_token)
        if facts is None or facts.site != origin(request):
            return okx_error("53005", "Wrong refresh token")
        if facts.termid is not None and not hmac.compare_digest((termid or "").encode(), facts.termid.encode()):
            return okx_error("53006", "Invalid device")
        rotated = self._grants.rotate(refresh_token, client_id=client.client_id)
        if not rotated.ok or rotated.value is None:
            return dead_token(rotated.status, "53005")
        return _token_response(rotated.value)

    async def revoke(self, request: Request) -> Response:
        self._log.tag(request, "revoke")
        form = await _read_form(request)
        if isinstance(form, Response):
            return form
        client = authenticate_client(self._clients, form)
        if isinstance(client, Response):
            return client
        token = form.get("token", "")
        if not token:
            return okx_error("53011", "Parameter token cannot be empty")
        termid = request.headers.get("termid")
        if client.pkce and not termid:
            return okx_error("53006", "Invalid device")
        grant_id, facts = self._grants.grant_of(token)
        if grant_id is not None and facts is not None and facts.site == origin(request):
            if facts.termid is not None and facts.termid != termid:
                return okx_error("53006", "Invalid device")
            self._grants.revoke_grant(grant_id)
        return envelope([])


async def _read_form(request: Request) -> dict[str, str] | Response:
    """The request's parameters from a JSON or form body; a repeated or non-string one is 53010."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if media_type == "application/json":
        try:
            body = json.loads(raw)
        except ValueError:
            return okx_error("50002", "JSON syntax error", status=400)
        if not isinstance(body, dict):
            return okx_error("50002", "JSON syntax error", status=400)
        for key, value in body.items():
            if not isinstance(value, str):
                return okx_error("53010", f"Parameter {key} error")
        return body
    if media_type == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return okx_error("53010", "Parameter body error")
        form: dict[str, str] = {}
        for key, value in pairs:
            if key in form:
                return okx_error("53010", f"Parameter {key} error")
            form[key] = value
        return form
    return okx_error("53010", "Parameter Content-Type error")


def _token_response(issued: simkit.IssuedTokens) -> Response:
    body: dict[str, Any] = {"access_token": issued.access_token, "token_type": "bearer", "expires_in": issued.expires_in}
    if issued.refresh_token is not None:
        body["refresh_token"] = issued.refresh_token
    return JSONResponse(body, headers=NO_STORE)
