"""Proves the oidc-provider test AS and its pytest harness with plain httpx (no gateway code).

Why: the gateway's OAuth tests rely on this AS behaving as docs/design/sandbox.md
records (PKCE S256, ``iss`` in the callback, rotation with reuse detection, events). If the
AS or the harness drifts, these tests fail first, with a clear cause.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from support.oidc_provider import (
    DEFAULT_REDIRECT_URI,
    OidcClient,
    OidcProviderServer,
    complete_authorization,
)

# Registers the session-scoped `oidc_provider` fixture as a global plugin: idempotent, so any
# number of modules (or tests/conftest.py) can declare it and the session still gets one AS.
pytest_plugins = ["support.oidc_provider"]


@pytest.fixture(scope="module")
def metadata(oidc_provider: OidcProviderServer) -> dict[str, Any]:
    response = httpx.get(f"{oidc_provider.issuer}/.well-known/openid-configuration")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def _fresh_login(prefix: str) -> str:
    """A new subject per test, so tests sharing the session AS never share a grant."""
    return f"{prefix}-{secrets.token_hex(4)}"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _authorization_url(
    metadata: dict[str, Any], client: OidcClient, *, state: str, challenge: str, scope: str
) -> str:
    query = urlencode(
        {
            "client_id": client.client_id,
            "response_type": "code",
            "redirect_uri": client.redirect_uris[0],
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{metadata['authorization_endpoint']}?{query}"


def _token_request(
    metadata: dict[str, Any], client: OidcClient, form: dict[str, str]
) -> httpx.Response:
    """POST to the token endpoint with the client's registered authentication method."""
    if client.auth_method == "client_secret_basic":
        return httpx.post(
            metadata["token_endpoint"], data=form, auth=(client.client_id, client.client_secret)
        )
    return httpx.post(
        metadata["token_endpoint"],
        data={**form, "client_id": client.client_id, "client_secret": client.client_secret},
    )


def _callback_params(location: str) -> dict[str, str]:
    assert location.startswith(DEFAULT_REDIRECT_URI + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query, strict_parsing=True).items()}


def _login_and_exchange(
    oidc_provider: OidcProviderServer,
    metadata: dict[str, Any],
    client: OidcClient,
    login: str,
    scope: str = "openid read trade",
) -> dict[str, Any]:
    """Full authorization-code + PKCE flow; returns the token response body."""
    verifier, challenge = _pkce()
    state = secrets.token_urlsafe(16)
    url = _authorization_url(metadata, client, state=state, challenge=challenge, scope=scope)
    params = _callback_params(complete_authorization(url, login))
    assert params["state"] == state
    assert params["iss"] == oidc_provider.issuer
    assert params["code"]
    response = _token_request(
        metadata,
        client,
        {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": client.redirect_uris[0],
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


def test_httpx_cookie_jar_is_path_aware() -> None:
    """complete_authorization relies on this for the path-scoped _interaction cookies."""
    jar = httpx.Cookies()
    origin = "http://127.0.0.1:1"
    set_cookie = httpx.Response(
        303,
        headers=[
            ("set-cookie", "_interaction=one; path=/interaction/uid1; httponly; samesite=lax"),
            ("set-cookie", "_interaction_resume=r1; path=/auth/uid1; httponly; samesite=lax"),
        ],
        request=httpx.Request("GET", f"{origin}/auth"),
    )
    jar.extract_cookies(set_cookie)

    def cookie_header(path: str) -> str | None:
        request = httpx.Request("GET", f"{origin}{path}")
        jar.set_cookie_header(request)
        header: str | None = request.headers.get("cookie")
        return header

    assert cookie_header("/interaction/uid1") == "_interaction=one"
    assert cookie_header("/interaction/uid1/abort") == "_interaction=one"
    assert cookie_header("/auth/uid1") == "_interaction_resume=r1"
    assert cookie_header("/interaction/uid2") is None
    assert cookie_header("/auth") is None


def test_discovery_advertises_iss_and_s256_only(
    oidc_provider: OidcProviderServer, metadata: dict[str, Any]
) -> None:
    assert metadata["issuer"] == oidc_provider.issuer
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert {"client_secret_basic", "client_secret_post"} <= set(
        metadata["token_endpoint_auth_methods_supported"]
    )
    assert metadata["revocation_endpoint"].startswith(oidc_provider.issuer)
    assert metadata["userinfo_endpoint"].startswith(oidc_provider.issuer)


@pytest.mark.parametrize("client_id", ["gateway-basic", "gateway-post"])
def test_pkce_flow_exchange_and_userinfo(
    oidc_provider: OidcProviderServer, metadata: dict[str, Any], client_id: str
) -> None:
    client = oidc_provider.clients[client_id]
    login = _fresh_login(client_id)

    tokens = _login_and_exchange(oidc_provider, metadata, client, login)

    assert tokens["token_type"].lower() == "bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["refresh_token"]
    assert tokens["id_token"]
    userinfo = httpx.get(
        metadata["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == login
    assert oidc_provider.count("request.userinfo", method="GET", status=200) >= 1


def test_wrong_client_secret_is_invalid_client(
    oidc_provider: OidcProviderServer, metadata: dict[str, Any]
) -> None:
    client = oidc_provider.basic
    impostor = OidcClient(client.client_id, "wrong", client.auth_method, client.redirect_uris)
    response = _token_request(
        metadata, impostor, {"grant_type": "refresh_token", "refresh_token": "nope"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_refresh_rotates_and_reuse_revokes_the_grant(
    oidc_provider: OidcProviderServer, metadata: dict[str, Any]
) -> None:
    client = oidc_provider.basic
    login = _fresh_login("rotate")
    tokens = _login_and_exchange(oidc_provider, metadata, client, login)
    old_rt = tokens["refresh_token"]

    refreshed = _token_request(metadata, client, {"grant_type": "refresh_token", "refresh_token": old_rt})
    assert refreshed.status_code == 200, refreshed.text
    new_rt = refreshed.json()["refresh_token"]
    assert new_rt and new_rt != old_rt

    replay = _token_request(metadata, client, {"grant_type": "refresh_token", "refresh_token": old_rt})
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"

    # Reuse detection revoked the whole grant, so the newest RT is dead too.
    after = _token_request(metadata, client, {"grant_type": "refresh_token", "refresh_token": new_rt})
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"

    mine = {"account_id": login}
    assert oidc_provider.count("refresh_token.saved", **mine) == 2  # code exchange + one rotation
    assert oidc_provider.count("refresh_token.consumed", **mine) == 1
    assert oidc_provider.count("grant.revoked", **mine) == 1
    errors = oidc_provider.events("grant.error", grant_type="refresh_token", **mine)
    assert [e["error"] for e in errors] == ["invalid_grant"]
    assert errors[0]["error_detail"] == "refresh token already used"
    refresh_requests = oidc_provider.events(
        "request.token", grant_type="refresh_token", client_id=client.client_id
    )
    assert [r["status"] for r in refresh_requests[-3:]] == [200, 400, 400]

    # The event log must never carry token values, codes or secrets.
    raw = json.dumps(oidc_provider.events())
    for value in (old_rt, new_rt, tokens["access_token"], client.client_secret):
        assert value not in raw


def test_revocation_kills_the_refresh_token(
    oidc_provider: OidcProviderServer, metadata: dict[str, Any]
) -> None:
    client = oidc_provider.post
    tokens = _login_and_exchange(oidc_provider, metadata, client, _fresh_login("revoke"), scope="read trade")
    assert "id_token" not in tokens  # plain OAuth: no openid scope

    revoked = httpx.post(
        metadata["revocation_endpoint"],
        data={
            "token": tokens["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": client.client_id,
            "client_secret": client.client_secret,
        },
    )
    assert revoked.status_code == 200, revoked.text
    assert oidc_provider.events("request.revocation")[-1]["status"] == 200

    refresh = _token_request(
        metadata, client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refresh.status_code == 400
    assert refresh.json()["error"] == "invalid_grant"


def test_deny_returns_access_denied(
    oidc_provider: OidcProviderServer, metadata: dict[str, Any]
) -> None:
    client = oidc_provider.basic
    _, challenge = _pkce()
    state = secrets.token_urlsafe(16)
    url = _authorization_url(metadata, client, state=state, challenge=challenge, scope="openid read")

    params = _callback_params(complete_authorization(url, _fresh_login("deny"), deny=True))

    assert params["error"] == "access_denied"
    assert params["state"] == state
    assert params["iss"] == oidc_provider.issuer
    assert "code" not in params


def test_reset_events_clears_the_log(oidc_provider: OidcProviderServer) -> None:
    httpx.get(f"{oidc_provider.issuer}/me")  # any recorded request
    assert oidc_provider.events()
    oidc_provider.reset_events()
    assert oidc_provider.events() == []
