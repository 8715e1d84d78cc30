"""BrokerGateway provider for Slack's OAuth v2 user tokens ("Sign in with Slack" style).

Slack's OAuth is RFC 6749 in its flow but not in its answers, so the provider subclasses
``OAuth2Provider`` and overrides only where Slack differs:

- ``authorization_url``: a user token's scopes go in ``user_scope`` (``scope`` asks for a bot token);
- ``token_payload``: ``oauth.v2.access`` answers HTTP 200 even when it refuses
  (``{"ok": false, "error": "invalid_code"}``), the user's token is nested under ``authed_user``, and
  its ``token_type`` is ``user`` (used as a bearer token);
- ``user_info_claims``: ``users.identity`` refuses a dead token with a 200 ``{"ok": false,
  "error": "invalid_auth"}`` too;
- ``revoke``: ``auth.revoke`` is a Web API method taking the token as a bearer, not RFC 7009.

Refresh is the base class's: with token rotation on, Slack issues 12-hour user tokens and a
refresh token, exchanged at ``oauth.v2.access`` with ``grant_type=refresh_token``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from broker_gateway.errors import (
    AccessTokenRejected,
    InvalidGrant,
    ProviderClientAuthFailed,
    ProviderRateLimited,
    ProviderRequestRejected,
    ProviderResponseInvalid,
)
from broker_gateway.oauth2 import OAuth2Provider, raise_for_oauth_error, upstream_code
from broker_gateway.provider import AuthorizationRequest, ConnectionCredentials, Provider, ProviderContext, hookimpl
from broker_gateway.upstream import UpstreamResponse

#: Slack's answers to a dead code or grant (a dead token at the token endpoint counts as one).
GRANT_ERRORS = frozenset({"invalid_code", "code_already_used", "code_expired", "invalid_refresh_token", "invalid_grant_type"})
#: Slack's answers to a token it no longer honours.
TOKEN_ERRORS = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"})
#: Slack's answers to the app's own credentials: a configuration problem.
CLIENT_ERRORS = frozenset({"invalid_client_id", "bad_client_secret", "invalid_client"})
#: What a dead code, grant or token is raised as: at the token endpoint a dead grant, elsewhere a dead token.
Refusal = type[InvalidGrant] | type[AccessTokenRejected]


class SlackProvider(OAuth2Provider):
    """Slack's OAuth v2 for user tokens. Settings: ``client_id``, ``client_secret``, ``scopes`` and
    the other ``generic-oauth2`` settings; ``base_url`` (default ``https://slack.com``) points every
    endpoint elsewhere, at a simulator say."""

    type = "slack"
    settings_keys: ClassVar[frozenset[str] | None] = (OAuth2Provider.settings_keys or frozenset()) | {"base_url"}

    def __init__(self, context: ProviderContext, settings: Mapping[str, Any]) -> None:
        base = str(settings.get("base_url", "https://slack.com")).rstrip("/")
        defaults = {
            "authorization_endpoint": f"{base}/oauth/v2/authorize",
            "token_endpoint": f"{base}/api/oauth.v2.access",
            "userinfo_endpoint": f"{base}/api/users.identity",
            "revocation_endpoint": f"{base}/api/auth.revoke",
            "token_endpoint_auth_method": "client_secret_post",
            "scope_separator": ",",
            # Slack documents no PKCE for confidential clients.
            "pkce": False,
            "claims": {"subject": "user.id", "username": "user.name", "email": "user.email"},
        }
        super().__init__(context, {**defaults, **{k: v for k, v in settings.items() if k != "base_url"}})

    def authorization_url(self, request: AuthorizationRequest) -> str:
        user_scope = {"user_scope": self.scope_separator.join(request.scopes)} if request.scopes else {}
        return super().authorization_url(
            dataclasses.replace(request, scopes=(), extra_params={**request.extra_params, **user_scope})
        )

    def token_payload(self, response: UpstreamResponse) -> Mapping[str, Any]:
        answer = self._slack_answer(response, refused=InvalidGrant)
        user = answer.get("authed_user")
        # The code grant nests the user's token beside the (absent) bot token; a refresh answers the
        # rotated user token at the top level. Either way its token_type is "user": a bearer token.
        tokens = user if isinstance(user, dict) and "access_token" in user else answer
        return {**tokens, "token_type": "Bearer"}

    def user_info_claims(self, response: UpstreamResponse) -> Mapping[str, Any]:
        return self._slack_answer(response, refused=AccessTokenRejected)

    async def revoke(self, credentials: ConnectionCredentials) -> bool:
        endpoint = self.endpoints["revocation_endpoint"]
        assert endpoint is not None  # set by default
        response = await self.context.http.request(
            "POST", endpoint, headers={"Authorization": f"Bearer {credentials.tokens.access_token}"}
        )
        try:
            self._slack_answer(response, refused=AccessTokenRejected)
        except AccessTokenRejected:
            pass  # already dead upstream: what revocation wanted
        return True

    def _slack_answer(self, response: UpstreamResponse, *, refused: Refusal) -> dict[str, Any]:
        """A Web API answer's body, or its ``{"ok": false, "error": ...}`` raised as the gateway's
        error: ``refused`` for a dead code, grant or token (which one depends on the endpoint)."""
        raise_for_oauth_error(response, self.context.provider_id)  # 429 (Retry-After), 5xx, other non-2xx
        answer = response.json()
        if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            raise ProviderResponseInvalid("the Slack answer is not a Web API object", metadata={"provider": self.context.provider_id})
        if answer["ok"]:
            return answer
        error = answer.get("error")
        metadata = {"provider": self.context.provider_id, "upstream_code": upstream_code(error)}
        if error in GRANT_ERRORS or error in TOKEN_ERRORS:
            raise refused(f"provider {self.context.provider_id} refused the grant or token", metadata=metadata)
        if error in CLIENT_ERRORS:
            raise ProviderClientAuthFailed(f"provider {self.context.provider_id} refused the app's credentials", metadata=metadata)
        if error == "ratelimited":
            raise ProviderRateLimited(f"provider {self.context.provider_id} is rate limiting", metadata=metadata, retry_after=1.0)
        raise ProviderRequestRejected(f"provider {self.context.provider_id} rejected the request", metadata=metadata)


@hookimpl
def broker_gateway_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(SlackProvider)
