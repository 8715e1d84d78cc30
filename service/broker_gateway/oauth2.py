"""Shared OAuth 2.0 mechanics for providers: PKCE, state, URLs, token requests and error parsing.

``OAuth2Provider`` implements the standard flows (RFC 6749, RFC 7636, RFC 7009) from endpoint settings;
a provider for a standard server is a subclass that sets ``type``, and a quirky one overrides the
compliance hook where it differs (how the token request is sent, the token answer, user info), so
the flows themselves stay one tested copy.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .errors import (
    AccessTokenRejected,
    InsufficientScope,
    InvalidGrant,
    ProviderClientAuthFailed,
    ProviderRateLimited,
    ProviderRequestRejected,
    ProviderResponseInvalid,
    ProviderUnavailable,
)
from .provider import (
    AuthorizationRequest,
    Capabilities,
    ConnectionCredentials,
    Grant,
    Provider,
    ProviderContext,
    TokenSet,
    UserInfo,
)
from .provider_settings import SettingsReader, url_problem
from .upstream import UpstreamResponse

#: The public API (docs/plugins.md, "Public API"); anything else here may change without notice.
__all__ = [
    "DEFAULT_EXPIRES_IN",
    "MAX_EXPIRES_IN",
    "OAuth2Provider",
    "add_query",
    "basic_credentials",
    "expires_at",
    "parse_token_response",
    "pkce_challenge",
    "raise_for_oauth_error",
    "raise_for_resource_error",
    "revocation_form",
    "upstream_code",
]

#: Used when a token response gives no lifetime: short, so a missing ``expires_in`` means an early
#: refresh rather than a token believed valid forever (docs/design/security.md).
DEFAULT_EXPIRES_IN = 3600
#: Lifetimes beyond this are treated as this: a huge ``expires_in`` is a provider bug, not a promise.
MAX_EXPIRES_IN = 400 * 24 * 3600
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
#: How client_secret_basic encodes the id and secret before base64: ``form`` is RFC 6749 §2.3.1
#: (application/x-www-form-urlencoded, a space becomes ``+``); ``percent`` is plain RFC 3986
#: percent-encoding (a space becomes ``%20``), for servers that only percent-decode (Authlib among
#: them), where a form-encoded ``+`` would stay a ``+``.
BASIC_ENCODINGS = ("form", "percent")


def new_state() -> str:
    """An opaque, single-use state: 256 random bits (RFC 6749 §10.10 asks for at least 128)."""
    return secrets.token_urlsafe(32)


def new_pkce_pair() -> tuple[str, str]:
    """A fresh PKCE verifier (43 unreserved characters, 256 bits) and its S256 challenge."""
    verifier = secrets.token_urlsafe(32)
    return verifier, pkce_challenge(verifier)


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def add_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` appended to whatever query it already has, properly encoded."""
    base, query, fragment = _split_at_query(url)
    added = "&".join(f"{_quote(name)}={_quote(value)}" for name, value in params.items())
    query = f"{query}&{added}" if query and added else query or added
    return f"{base}?{query}{fragment}" if query else base + fragment


@functools.lru_cache(maxsize=128)
def _split_at_query(url: str) -> tuple[str, str, str]:
    """``url`` as the part before its query, its query re-encoded, and its ``#fragment``: endpoint
    URLs repeat, and splitting one showed in Authorize's profile."""
    parts = urlsplit(url)
    query = urlencode(parse_qsl(parts.query, keep_blank_values=True), quote_via=quote)
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return urlunsplit(parts._replace(query="", fragment="")), query, fragment


#: The authorization URL's parameters that differ on every call, appended after the fixed ones.
_VARYING_PARAMETERS = frozenset({"state", "code_challenge"})


@functools.lru_cache(maxsize=256)
def _fixed_authorization_url(
    endpoint: str, client_id: str, redirect_uri: str, scope: str, extra: tuple[tuple[str, str], ...], pkce: bool
) -> str:
    """An authorization URL without its state and challenge: the same for every Authorize of a
    provider, redirect URI and scope list, so encoded once (a front-channel URL: nothing secret). As
    ever, the gateway's own parameters win over extra ones of the same name."""
    params = {name: value for name, value in extra if name not in _VARYING_PARAMETERS}
    params.update(response_type="code", client_id=client_id, redirect_uri=redirect_uri)
    if scope:
        params["scope"] = scope
    if pkce:
        params["code_challenge_method"] = "S256"
    return add_query(endpoint, params)


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def _quote(text: str) -> str:
    """Percent-encode all but RFC 3986's unreserved characters; states, challenges and most fixed
    values are already unreserved and skip the encoder."""
    return text if _UNRESERVED.fullmatch(text) else _encoded_parameter(text)


@functools.lru_cache(maxsize=512)
def _encoded_parameter(text: str) -> str:
    """The values an authorization URL encodes are mostly fixed ones that repeat on every call (a
    redirect URI, a scope list); it is a front-channel URL, so nothing secret is kept here."""
    return quote(text, safe="")


def basic_credentials(client_id: str, client_secret: str, encoding: str = "form") -> str:
    """The Basic header value of RFC 6749 §2.3.1: each part form-urlencoded before base64
    (``encoding="percent"``: percent-encoded instead, see ``BASIC_ENCODINGS``)."""
    encode = _form_encode if encoding == "form" else _percent_encode
    pair = f"{encode(client_id)}:{encode(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def _form_encode(value: str) -> str:
    return urlencode({"": value})[1:]


def _percent_encode(value: str) -> str:
    return quote(value, safe="")


def expires_at(now: datetime, value: Any, default: int | None) -> datetime | None:
    """An absolute expiry from a relative ``expires_in`` that may be missing, a string, negative or
    huge (docs/design/security.md): bad values fall back to ``default``, huge ones are clamped."""
    seconds: float | None
    try:
        seconds = float(value)
    except OverflowError:  # an integer beyond float range: huge, so clamped (or invalid if negative)
        seconds = float(MAX_EXPIRES_IN) if value > 0 else None
    except (TypeError, ValueError):
        seconds = None
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return None if default is None else now + timedelta(seconds=default)
    return now + timedelta(seconds=min(seconds, MAX_EXPIRES_IN))


def parse_token_response(
    payload: Any,
    *,
    now: datetime,
    requested_scopes: Sequence[str],
    scope_separator: str = " ",
    previous: TokenSet | None = None,
    refresh_token_ttl: int | None = None,
) -> TokenSet:
    """A TokenSet from an RFC 6749 §5.1 response. A refresh answer without a new refresh token keeps
    the previous one (RFC 6749 §6) instead of losing it. ``refresh_token_ttl`` is the refresh token's
    documented lifetime, assumed when the response does not state one."""
    if not isinstance(payload, Mapping):
        raise ProviderResponseInvalid("the token response is not a JSON object")
    access_token = payload.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise ProviderResponseInvalid("the token response has no access_token")
    token_type = payload.get("token_type") or "Bearer"
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise ProviderResponseInvalid("the token response has a token_type other than Bearer")
    refresh_token = payload.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        refresh_token = previous.refresh_token if previous else None
    scope = payload.get("scope")
    scopes = (
        tuple(s for s in scope.split(scope_separator) if s)
        if isinstance(scope, str) and scope
        else tuple(previous.scopes if previous else requested_scopes)
    )
    refresh_expire = expires_at(now, payload.get("refresh_token_expires_in", payload.get("refresh_expires_in")), None)
    if refresh_expire is None and refresh_token:
        if previous is not None and refresh_token == previous.refresh_token:
            refresh_expire = previous.refresh_token_expire_time
        elif refresh_token_ttl is not None:
            refresh_expire = now + timedelta(seconds=refresh_token_ttl)
    id_token = payload.get("id_token")
    return TokenSet(
        access_token=access_token,
        token_type="Bearer",
        refresh_token=refresh_token,
        access_token_expire_time=expires_at(now, payload.get("expires_in"), DEFAULT_EXPIRES_IN),
        refresh_token_expire_time=refresh_expire,
        scopes=scopes,
        id_token=id_token if isinstance(id_token, str) else None,
        issue_time=now,
    )


_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,64}")


def upstream_code(value: object) -> str:
    """An upstream error code fit for ErrorInfo metadata: RFC 6749 §5.2's character set, at most 64
    characters; anything else (provider text that could carry CRLF or a secret) becomes "invalid"."""
    if value is None or value == "":
        return ""
    return value if isinstance(value, str) and _ERROR_CODE.fullmatch(value) else "invalid"


#: The authorization-response error codes of RFC 6749 §4.1.2.1 and OpenID Connect Core §3.1.2.6.
CALLBACK_ERROR_CODES = frozenset(
    {
        "invalid_request", "unauthorized_client", "access_denied", "unsupported_response_type", "invalid_scope",
        "server_error", "temporarily_unavailable", "interaction_required", "login_required",
        "account_selection_required", "consent_required", "invalid_request_uri", "invalid_request_object",
        "request_not_supported", "request_uri_not_supported", "registration_not_supported",
    }
)


def callback_error_code(value: str) -> str:
    """A callback's ``error`` fit for ErrorInfo metadata. The caller relays it, so only a registered
    code is repeated; any other becomes "unregistered" (the rule that errors never echo input)."""
    return value if value in CALLBACK_ERROR_CODES else "unregistered"


def raise_for_oauth_error(response: UpstreamResponse, provider_id: str) -> None:
    """Map an RFC 6749 §5.2 error answer (or any non-2xx) to the gateway's errors."""
    if 200 <= response.status_code < 300:
        return
    error = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            error = upstream_code(body.get("error"))
    except ProviderResponseInvalid:
        pass
    status = response.status_code
    metadata = {"provider": provider_id, "upstream_http_status": str(status)}
    if error:
        metadata["upstream_code"] = error
    if error == "invalid_grant":
        raise InvalidGrant(f"provider {provider_id} refused the grant", metadata=metadata)
    if error in ("invalid_client", "unauthorized_client") or (status == 401 and not error):
        raise ProviderClientAuthFailed(
            f"provider {provider_id} refused the gateway's client credentials; check the configuration",
            metadata=metadata,
        )
    if status == 429 or error == "slow_down":
        raise ProviderRateLimited(
            f"provider {provider_id} is rate limiting", metadata=metadata, retry_after=response.retry_after() or 1.0
        )
    if status >= 500 or error == "temporarily_unavailable":
        raise ProviderUnavailable(
            f"provider {provider_id} is unavailable", metadata=metadata, retry_after=response.retry_after() or 1.0
        )
    if 300 <= status < 400:
        raise ProviderResponseInvalid(f"provider {provider_id} answered with a redirect, not followed", metadata=metadata)
    raise ProviderRequestRejected(f"provider {provider_id} rejected the request", metadata=metadata)


def raise_for_resource_error(response: UpstreamResponse, provider_id: str) -> None:
    """Map a resource server's answer (RFC 6750 §3.1): 401 means the token was refused, 403 a
    missing scope; the rest as for the token endpoint."""
    metadata = {"provider": provider_id, "upstream_http_status": str(response.status_code)}
    if response.status_code == 401:
        raise AccessTokenRejected(f"provider {provider_id} refused the access token", metadata=metadata)
    if response.status_code == 403:
        raise InsufficientScope(f"the token lacks a scope provider {provider_id} requires", metadata=metadata)
    raise_for_oauth_error(response, provider_id)


def revocation_form(tokens: TokenSet) -> dict[str, str]:
    """RFC 7009's request: the refresh token (revoking it revokes the grant), else the access token."""
    if tokens.refresh_token:
        return {"token": tokens.refresh_token, "token_type_hint": "refresh_token"}
    return {"token": tokens.access_token, "token_type_hint": "access_token"}


class OAuth2Provider(Provider):
    """A standard OAuth 2.0 client configured by endpoints. Its settings are the ``generic-oauth2``
    provider's, listed in docs/providers/generic-oauth2.md; a subclass reads more by extending
    ``read_settings``, and differs from the standard flows through the compliance hooks below.
    """

    _ENDPOINTS = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "revocation_endpoint")
    settings_keys: ClassVar[frozenset[str] | None] = frozenset({
        *_ENDPOINTS, "client_id", "client_secret", "scopes", "default_scopes", "scope_separator",
        "token_endpoint_auth_method", "client_secret_basic_encoding", "pkce", "issuer", "require_iss", "allowed_extra_params",
        "refresh_token_ttl_seconds", "keepalive_before_seconds", "claims",
    })

    #: A provider type's own defaults for settings it shares with this class (``SettingsReader``).
    setting_defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, context: ProviderContext, settings: Mapping[str, Any]) -> None:
        super().__init__(context, settings)
        reader = SettingsReader(settings, allow_insecure_http=context.allow_insecure_http, defaults=self.setting_defaults)
        self.read_settings(reader)
        reader.raise_problems()

    # -- configuration -----------------------------------------------------------------------------

    def read_settings(self, reader: SettingsReader) -> None:
        """Read the entry's settings into attributes; a subclass reading more calls this first, one whose
        settings differ altogether sets the attributes the flows read (the ones set here) itself."""
        self.client_id = reader.string("client_id", required=True)
        self.client_secret = reader.string("client_secret", required=True)
        self.endpoints: dict[str, str | None] = self.read_endpoints(reader)
        self._scopes = reader.string_list("scopes")
        self._default_scopes = reader.string_list("default_scopes") or self._scopes
        self.scope_separator = reader.string("scope_separator", " ")
        self.auth_method = reader.choice("token_endpoint_auth_method", CLIENT_AUTH_METHODS, "client_secret_basic")
        self.basic_encoding = reader.choice("client_secret_basic_encoding", BASIC_ENCODINGS, "form")
        self.pkce = reader.boolean("pkce", True)
        self._issuer: str | None = reader.optional_string("issuer")
        self._requires_iss = reader.boolean("require_iss", False)
        self._extra_params = frozenset(reader.string_list("allowed_extra_params"))
        self.refresh_token_ttl: int | None = reader.seconds("refresh_token_ttl_seconds")
        self.keepalive_before: int | None = reader.seconds("keepalive_before_seconds")
        claims = reader.table("claims", "subject, username and email claim names")
        self.claims = {"subject": "sub", "username": "preferred_username", "email": "email", **claims}

    def read_endpoints(self, reader: SettingsReader) -> dict[str, str | None]:
        """The four endpoints by setting name (None: the server has none); ``_required_endpoints`` must
        be given."""
        required = self._required_endpoints()
        return {name: reader.url(name, required=name in required) for name in self._ENDPOINTS}

    def _required_endpoints(self) -> tuple[str, ...]:
        return ("authorization_endpoint", "token_endpoint")

    def _check_endpoints(self, problems: list[str], *, required: Sequence[str]) -> None:
        """Endpoints learnt after start-up (discovery) checked as configured ones are (docs/design/security.md)."""
        for name, url in self.endpoints.items():
            if url is None:
                if name in required:
                    problems.append(f"{name}: required")
                continue
            problem = url_problem(url, allow_insecure_http=self.context.allow_insecure_http)
            if problem is not None:
                problems.append(f"{name}: {problem}")

    # -- what ListProviders shows ------------------------------------------------------------------

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            pkce=self.pkce,
            refresh=True,
            revoke=self.endpoints.get("revocation_endpoint") is not None,
            user_info=self.endpoints.get("userinfo_endpoint") is not None,
        )

    @property
    def scopes(self) -> Sequence[str]:
        return self._scopes

    @property
    def default_scopes(self) -> Sequence[str]:
        return self._default_scopes

    @property
    def issuer(self) -> str | None:
        return self._issuer

    @property
    def requires_iss(self) -> bool:
        return self._requires_iss

    @property
    def allowed_extra_params(self) -> frozenset[str]:
        return self._extra_params

    @property
    def keepalive_window(self) -> timedelta | None:
        return None if self.keepalive_before is None else timedelta(seconds=self.keepalive_before)

    # -- flows -------------------------------------------------------------------------------------

    def probe_endpoints(self) -> Mapping[str, str]:
        return {name: url for name, url in self.endpoints.items() if url and name != "authorization_endpoint"}

    def authorization_url(self, request: AuthorizationRequest) -> str:
        fixed = _fixed_authorization_url(
            self._endpoint("authorization_endpoint"),
            self.client_id,
            request.redirect_uri,
            self.scope_separator.join(request.scopes),
            tuple(request.extra_params.items()),
            request.code_challenge is not None,
        )
        # The fixed part has a query (response_type at least) and no fragment (url_problem refuses
        # endpoints with one), so the varying parameters go at its end.
        url = f"{fixed}&state={_quote(request.state)}"
        return url if request.code_challenge is None else f"{url}&code_challenge={_quote(request.code_challenge)}"

    async def exchange_code(
        self,
        code: str,
        *,
        redirect_uri: str,
        code_verifier: str | None,
        scopes: Sequence[str],
        callback_params: Mapping[str, str],
    ) -> Grant:
        metadata = self.grant_metadata(callback_params)
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        payload = await self.token_request(form, metadata)
        return self.grant(self.token_set(payload, requested_scopes=scopes, previous=None), metadata)

    async def refresh(self, credentials: ConnectionCredentials) -> TokenSet:
        previous = credentials.tokens
        if not previous.refresh_token:
            raise InvalidGrant(
                f"the connection has no refresh token for provider {self.context.provider_id}",
                metadata={"provider": self.context.provider_id},
            )
        # The scope is not sent: the refreshed grant keeps exactly the original scope (RFC 6749 §6).
        form = {"grant_type": "refresh_token", "refresh_token": previous.refresh_token}
        payload = await self.token_request(form, credentials.metadata)
        return self.token_set(payload, requested_scopes=previous.scopes, previous=previous)

    async def revoke(self, credentials: ConnectionCredentials) -> bool:
        """RFC 7009: revoke the refresh token (which revokes the grant) or else the access token."""
        endpoint = self.endpoints.get("revocation_endpoint")
        if endpoint is None:
            return False
        response = await self._post_form(endpoint, revocation_form(credentials.tokens))
        raise_for_oauth_error(response, self.context.provider_id)
        return True

    async def user_info(self, credentials: ConnectionCredentials) -> UserInfo:
        response = await self.send_user_info_request(credentials)
        return self.user_info_from_claims(self.user_info_claims(response))

    # -- Compliance hooks: a provider that differs from the standard only in how it is asked or how it
    # -- answers overrides one of these (as Authlib's compliance hooks do), not the flow around it.

    def grant_metadata(self, callback_params: Mapping[str, str]) -> dict[str, str]:
        """Non-secret facts a new connection keeps, decided from the callback before the code is sent
        (OKX's site and device id); the token request gets them, and ``grant`` stores them."""
        return {}

    async def send_token_request(self, form: Mapping[str, str], metadata: Mapping[str, str]) -> UpstreamResponse:
        """Send one token request, the RFC 6749 §4.1.3 or §6 ``form``, to the token endpoint with the
        client's authentication. Override for a provider that wants another URL, other fields or another
        encoding; ``metadata`` is the connection's (``grant_metadata``'s on a code exchange)."""
        return await self._post_form(self._endpoint("token_endpoint"), form)

    def token_payload(self, response: UpstreamResponse) -> Mapping[str, Any]:
        """The token endpoint's answer as an RFC 6749 §5.1 payload; a refusal raised as the mapped
        error. Override for a provider that wraps its answer or reports errors in a 200."""
        raise_for_oauth_error(response, self.context.provider_id)
        payload = response.json()
        if not isinstance(payload, dict):
            raise ProviderResponseInvalid("the token response is not a JSON object")
        return payload

    def token_set(self, payload: Mapping[str, Any], *, requested_scopes: Sequence[str], previous: TokenSet | None) -> TokenSet:
        """The ``TokenSet`` of a token payload (``previous`` on a refresh, None on a code exchange).
        Override for a provider whose payload leaves facts to its tokens (Bybit's scopes and expiry are
        claims of its JWT access token)."""
        return parse_token_response(
            payload,
            now=self.context.clock(),
            requested_scopes=requested_scopes,
            scope_separator=self.scope_separator,
            previous=previous,
            refresh_token_ttl=self.refresh_token_ttl,
        )

    def grant(self, tokens: TokenSet, metadata: Mapping[str, str]) -> Grant:
        """What a code exchange yields. Override for a provider whose tokens name the user (Bybit's
        access token carries the UID), so the connection has its subject without a user-info call."""
        return Grant(tokens=tokens, metadata=metadata)

    async def send_user_info_request(self, credentials: ConnectionCredentials) -> UpstreamResponse:
        """Send the user-info request with the connection's access token. Override for a provider that
        wants another URL or more headers."""
        return await self.context.http.request(
            "GET",
            self._endpoint("userinfo_endpoint"),
            headers={"Authorization": f"Bearer {credentials.tokens.access_token}", "Accept": "application/json"},
        )

    def user_info_claims(self, response: UpstreamResponse) -> Mapping[str, Any]:
        """The user-info endpoint's answer as a claims object; a refusal raised as the mapped error.
        Override for a provider that wraps its claims or reports errors in a 200."""
        raise_for_resource_error(response, self.context.provider_id)
        claims = response.json()
        if not isinstance(claims, dict):
            raise ProviderResponseInvalid("the user info response is not a JSON object")
        return claims

    def user_info_from_claims(self, claims: Mapping[str, Any]) -> UserInfo:
        """Normalise user-info claims with the configured claim names (dotted paths reach nested
        objects, for providers that wrap their answer)."""
        subject = _claim(claims, self.claims["subject"])
        if not subject:
            raise ProviderResponseInvalid(
                f"the user info has no {self.claims['subject']!r} claim",
                metadata={"provider": self.context.provider_id},
            )
        return UserInfo(
            subject=subject,
            username=_claim(claims, self.claims["username"]),
            email=_claim(claims, self.claims["email"]),
            raw=dict(claims),
        )

    # -- HTTP --------------------------------------------------------------------------------------

    async def token_request(self, form: Mapping[str, str], metadata: Mapping[str, str]) -> Mapping[str, Any]:
        """One token request through ``send_token_request``, its answer through ``token_payload``."""
        return self.token_payload(await self.send_token_request(form, metadata))

    async def _post_form(self, url: str, form: Mapping[str, str]) -> UpstreamResponse:
        headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
        body = dict(form)
        if self.auth_method == "client_secret_basic":
            headers["Authorization"] = basic_credentials(self.client_id, self.client_secret, self.basic_encoding)
        else:
            body.update(client_id=self.client_id, client_secret=self.client_secret)
        return await self.context.http.request("POST", url, content=urlencode(body).encode(), headers=headers)

    def _endpoint(self, name: str) -> str:
        url = self.endpoints.get(name)
        if url is None:
            raise ProviderRequestRejected(
                f"provider {self.context.provider_id} has no {name}", metadata={"provider": self.context.provider_id}
            )
        return url


def _claim(claims: Mapping[str, Any], path: str) -> str:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return ""
        value = value.get(part)
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value)
