"""The public API for provider plugins.

A plugin is a Python distribution that registers provider types through the ``broker_gateway``
entry-point group::

    # pyproject.toml
    [project.entry-points.broker_gateway]
    acme = "broker_gateway_acme"

    # broker_gateway_acme/__init__.py
    from broker_gateway.provider import hookimpl
    from broker_gateway.oauth2 import OAuth2Provider

    class AcmeProvider(OAuth2Provider):
        type = "acme"

    @hookimpl
    def broker_gateway_register_providers(register):
        register(AcmeProvider)

A provider implements only what is specific to its upstream: authorization URL parameters, the token
request and its parsing, refresh, revoke, user info and its operations. The core owns state, PKCE,
storage, encryption, refresh timing and single-flight, deadlines, tracing and error mapping. Providers
keep no token state and take no locks. ``docs/plugins.md`` is the full guide.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pluggy

from .errors import CapabilityUnsupported, UnknownOperation
from .upstream import UpstreamClient

#: The public API (docs/plugins.md, "Public API"); anything else here may change without notice.
__all__ = [
    "AuthorizationRequest",
    "Capabilities",
    "ConnectionCredentials",
    "Grant",
    "Operation",
    "OperationAuth",
    "Provider",
    "ProviderContext",
    "RateLimit",
    "RateScope",
    "TokenSet",
    "UserInfo",
    "hookimpl",
]

#: The marker for a plugin's hook implementations.
hookimpl = pluggy.HookimplMarker("broker_gateway")


class OperationAuth(enum.Enum):
    """Which credentials an operation is sent with."""

    BROKER_KEY = "BROKER_KEY"
    USER_TOKEN = "USER_TOKEN"
    NONE = "NONE"


@dataclass(frozen=True)
class Capabilities:
    """What a provider supports; ListProviders reports it, and the core refuses what is absent."""

    pkce: bool = False
    refresh: bool = False
    revoke: bool = False
    user_info: bool = False


@dataclass(frozen=True)
class TokenSet:
    """A provider's tokens with absolute expiry times. Token values never appear in its repr."""

    access_token: str = field(repr=False)
    token_type: str = "Bearer"
    refresh_token: str | None = field(default=None, repr=False)
    access_token_expire_time: datetime | None = None
    refresh_token_expire_time: datetime | None = None
    scopes: tuple[str, ...] = ()
    id_token: str | None = field(default=None, repr=False)
    #: When the provider issued the access token; with its expiry, it gives the token's lifetime.
    issue_time: datetime | None = None

    def expires_within(self, now: datetime, margin: timedelta) -> bool:
        """True when the access token is expired or will be within ``margin``."""
        expire = self.access_token_expire_time
        return expire is not None and expire - now <= margin


@dataclass(frozen=True)
class Grant:
    """What a completed code exchange yields: tokens, the user's subject when the token response
    already tells it, and non-secret facts the provider needs on later calls (a site, a UID)."""

    tokens: TokenSet
    subject: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UserInfo:
    """A provider's description of a user, normalised, with everything it returned in ``raw``."""

    subject: str
    username: str = ""
    email: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)


class RateScope(enum.Enum):
    """What a rate limit is counted per."""

    #: Every call through the provider shares it: limits on the broker's own API key.
    PROVIDER = "provider"
    #: Counted per connection: limits per user (per UID, per access token).
    CONNECTION = "connection"


@dataclass(frozen=True)
class RateLimit:
    """At most ``requests`` calls per ``per_seconds``, as the upstream documents it. The core refuses
    the call past it with RESOURCE_EXHAUSTED and a RetryInfo, instead of spending the upstream's budget
    (and risking the broker's key being throttled). Operations naming the same ``bucket`` share one
    budget; by default each operation has its own."""

    requests: int
    per_seconds: float
    scope: RateScope = RateScope.PROVIDER
    bucket: str | None = None


@dataclass(frozen=True)
class Operation:
    """A broker operation a provider declares; ``params_schema`` is a JSON Schema for its params.

    ``safe_to_retry`` is true only for reads. For other operations the core sends a given
    ``request_id`` at most once and replays the stored result to a repeated call.
    """

    name: str
    description: str
    auth: OperationAuth
    params_schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    safe_to_retry: bool = False
    rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class AuthorizationRequest:
    """Everything the core decided for one authorization URL; the provider only lays it out."""

    state: str
    redirect_uri: str
    scopes: tuple[str, ...]
    code_challenge: str | None
    extra_params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderContext:
    """What the core gives a provider instance: its id, an HTTP client, a clock and a logger."""

    provider_id: str
    http: UpstreamClient
    clock: Callable[[], datetime]
    logger: logging.Logger
    #: Plain-http endpoints are refused unless the configuration allows them (loopback sandboxes).
    allow_insecure_http: bool = False


@dataclass(frozen=True)
class ConnectionCredentials:
    """A connection as a provider sees it on a call: its tokens and the metadata from its Grant."""

    tokens: TokenSet
    metadata: Mapping[str, str] = field(default_factory=dict)


class Provider:
    """Base class of every provider type. Subclasses set ``type`` and override what they support.

    The constructor receives the provider's settings from the configuration (everything but ``id``,
    ``type`` and ``redirect_uris``) and raises ``ConfigError`` listing every problem it finds
    (``provider_settings.SettingsReader`` reads them so).
    """

    #: The name configuration entries use in ``type``; unique among registered providers.
    type: ClassVar[str]
    #: Every setting this type reads: any other key of its table is refused by name (with the known
    #: key it was probably meant to be). None leaves unknown keys to the provider itself.
    settings_keys: ClassVar[frozenset[str] | None] = None

    def __init__(self, context: ProviderContext, settings: Mapping[str, Any]) -> None:
        self.context = context
        self.settings = settings

    async def start(self) -> None:
        """Called once before serving, for work such as OIDC discovery."""

    async def stop(self) -> None:
        """Called once when the gateway closes, to end background work ``start`` began."""

    @property
    def start_problem(self) -> str | None:
        """Why ``start`` could not finish (an issuer unreachable, say) while the provider still serves
        its UNAVAILABLE answers; None when it did. ``check-config --probe`` reports it."""
        return None

    def probe_endpoints(self) -> Mapping[str, str]:
        """The upstream endpoints ``check-config --probe`` checks are reachable, by setting name (after
        ``start``, so discovered ones are included)."""
        return {}

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    @property
    def scopes(self) -> Sequence[str]:
        """The scopes callers may request; empty means any."""
        return ()

    @property
    def default_scopes(self) -> Sequence[str]:
        """The scopes requested when the caller names none."""
        return ()

    @property
    def issuer(self) -> str | None:
        """The issuer identifier compared with the callback's ``iss``; None when there is none."""
        return None

    @property
    def requires_iss(self) -> bool:
        """True when the provider always sends ``iss``, so a callback without it is refused."""
        return False

    @property
    def allowed_extra_params(self) -> frozenset[str]:
        """Extra authorization URL parameters callers may pass through."""
        return frozenset()

    @property
    def user_info_rate_limit(self) -> RateLimit | None:
        """The upstream's documented limit on the user-info call, enforced like an operation's."""
        return None

    @property
    def keepalive_window(self) -> timedelta | None:
        """Refresh idle connections whose refresh token expires within this window, so they do not
        die unused (OKX refresh tokens live three days). None: no keep-alive refresh."""
        return None

    def authorization_url(self, request: AuthorizationRequest) -> str:
        raise self._no_authorization()

    async def exchange_code(
        self,
        code: str,
        *,
        redirect_uri: str,
        code_verifier: str | None,
        scopes: Sequence[str],
        callback_params: Mapping[str, str],
    ) -> Grant:
        raise self._no_authorization()

    def _no_authorization(self) -> CapabilityUnsupported:
        """An operations-only provider (its account keys configured, no user flow) answers the
        authorization flow with a status its caller can act on, not INTERNAL."""
        return CapabilityUnsupported(
            f"provider {self.context.provider_id} has no authorization flow",
            metadata={"provider": self.context.provider_id, "capability": "authorize"},
        )

    async def refresh(self, credentials: ConnectionCredentials) -> TokenSet:
        raise CapabilityUnsupported(
            f"provider {self.context.provider_id} cannot refresh tokens",
            metadata={"provider": self.context.provider_id, "capability": "refresh"},
        )

    async def revoke(self, credentials: ConnectionCredentials) -> bool:
        """Revoke upstream; return False when the provider has no way to (the core still ends the
        connection)."""
        return False

    async def user_info(self, credentials: ConnectionCredentials) -> UserInfo:
        raise CapabilityUnsupported(
            f"provider {self.context.provider_id} offers no user info",
            metadata={"provider": self.context.provider_id, "capability": "user_info"},
        )

    def operations(self) -> Sequence[Operation]:
        return ()

    def check_params(self, operation: Operation, params: Mapping[str, Any]) -> None:
        """Rules a JSON Schema cannot express (a date range, one field depending on another). Called
        after the schema check and before anything is spent or sent; raise ``InvalidArgument`` with
        the field ``params.<name>``."""

    async def invoke(
        self,
        operation: Operation,
        params: Mapping[str, Any],
        *,
        credentials: ConnectionCredentials | None,
        request_id: str,
    ) -> Any:
        """Run one of ``operations()``; params were already checked against its schema."""
        raise UnknownOperation(
            "operation",
            f"provider {self.context.provider_id} has no operation {operation.name!r}",
            metadata={"provider": self.context.provider_id},
        )
