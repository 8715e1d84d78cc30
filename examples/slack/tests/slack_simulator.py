"""A small simulator of Slack's OAuth v2 for user tokens, with token rotation: the authorize page
(``approve=<username>`` approves without a form), ``oauth.v2.access``, ``users.identity`` and
``auth.revoke``, answering as Slack documents, refusals included (HTTP 200, ``"ok": false``)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

#: Rotated user tokens live 12 hours, as Slack's do.
ACCESS_TOKEN_LIFETIME = 43200
TEAM_ID = "T0SIMULATED"


@dataclass
class Grant:
    """One user's authorization of the app: its current tokens, until revoked."""

    user: str
    scopes: str
    access_token: str = ""
    refresh_token: str = ""
    expires_at: float = 0.0
    revoked: bool = False


@dataclass
class SlackSimulator:
    """Slack's side of the app's registration and of every grant."""

    client_id: str
    client_secret: str
    redirect_uri: str
    clock: Callable[[], float] = time.time
    codes: dict[str, tuple[Grant, str]] = field(default_factory=dict)
    grants: list[Grant] = field(default_factory=list)

    def issue(self, grant: Grant) -> None:
        grant.access_token = "xoxe.xoxp-1-" + secrets.token_urlsafe(24)
        grant.refresh_token = "xoxe-1-" + secrets.token_urlsafe(24)
        grant.expires_at = self.clock() + ACCESS_TOKEN_LIFETIME

    def by_access_token(self, token: str) -> Grant | None:
        return next((g for g in self.grants if g.access_token == token and not g.revoked and g.expires_at > self.clock()), None)

    def revoke(self, access_token: str) -> None:
        """The user removes the app from their account: the grant and its tokens die."""
        for grant in self.grants:
            if grant.access_token == access_token:
                grant.revoked = True


def user_id(username: str) -> str:
    return "U" + username.upper().replace("-", "")[:10]


def refused(error: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error})


def create_slack_simulator(client_id: str, client_secret: str, redirect_uri: str, *, clock: Callable[[], float] = time.time) -> Starlette:
    slack = SlackSimulator(client_id, client_secret, redirect_uri, clock)

    async def authorize(request: Request) -> Response:
        query = request.query_params
        if query.get("client_id") != slack.client_id or query.get("redirect_uri") != slack.redirect_uri:
            return PlainTextResponse("invalid client_id or redirect_uri", status_code=400)
        username = query.get("approve")
        if not username:
            return PlainTextResponse("append &approve=<username> to approve")
        grant = Grant(user=username, scopes=query.get("user_scope", ""))
        code = secrets.token_urlsafe(16)
        slack.codes[code] = (grant, query.get("redirect_uri", ""))
        return RedirectResponse(f"{slack.redirect_uri}?{urlencode({'code': code, 'state': query.get('state', '')})}", status_code=302)

    async def access(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        if form.get("client_id") != slack.client_id:
            return refused("invalid_client_id")
        if form.get("client_secret") != slack.client_secret:
            return refused("bad_client_secret")
        if form.get("grant_type") == "refresh_token":
            grant = next((g for g in slack.grants if g.refresh_token == form.get("refresh_token") and not g.revoked), None)
            if grant is None:
                return refused("invalid_refresh_token")
            slack.issue(grant)
            return JSONResponse({"ok": True, **tokens(grant)})
        taken = slack.codes.pop(form.get("code", ""), None)
        if taken is None:
            return refused("invalid_code")
        grant, redirect_uri = taken
        if form.get("redirect_uri") != redirect_uri:
            return refused("bad_redirect_uri")
        slack.issue(grant)
        slack.grants.append(grant)
        answer: dict[str, Any] = {"ok": True, "app_id": "A0SIMULATED", "team": {"id": TEAM_ID, "name": "Simulated"}}
        answer["authed_user"] = {"id": user_id(grant.user), **tokens(grant)}
        return JSONResponse(answer)

    def tokens(grant: Grant) -> dict[str, Any]:
        return {
            "scope": grant.scopes,
            "access_token": grant.access_token,
            "token_type": "user",
            "refresh_token": grant.refresh_token,
            "expires_in": ACCESS_TOKEN_LIFETIME,
        }

    def bearer(request: Request) -> Grant | None:
        header = request.headers.get("authorization", "")
        return slack.by_access_token(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None

    async def identity(request: Request) -> Response:
        grant = bearer(request)
        if grant is None:
            return refused("invalid_auth")
        user = {"id": user_id(grant.user), "name": grant.user, "email": f"{grant.user}@example.com"}
        return JSONResponse({"ok": True, "user": user, "team": {"id": TEAM_ID}})

    async def revoke(request: Request) -> Response:
        grant = bearer(request)
        if grant is None:
            return refused("invalid_auth")
        grant.revoked = True
        return JSONResponse({"ok": True, "revoked": True})

    app = Starlette(
        routes=[
            Route("/oauth/v2/authorize", authorize),
            Route("/api/oauth.v2.access", access, methods=["POST"]),
            Route("/api/users.identity", identity, methods=["GET", "POST"]),
            Route("/api/auth.revoke", revoke, methods=["GET", "POST"]),
        ]
    )
    app.state.slack = slack
    return app
