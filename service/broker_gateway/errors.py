"""The one family of errors the gateway raises, each knowing its gRPC code and ErrorInfo reason.

Flows, providers and stores raise these; a single handler wrapper (``broker_gateway.handler_wrapper``) turns
them into a ``google.rpc.Status`` with exactly one ``ErrorInfo`` and, where a retry makes sense, a
``RetryInfo``. Messages and metadata must never carry a secret: they reach callers, logs and spans.

Part of the plugin API, so it does not import grpc: a code is a ``Code``, which only the handler
wrapper turns into a gRPC status.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

#: What a provider raises (docs/plugins.md, "Public API"); the rest are the core's own and may change.
__all__ = [
    "AccessTokenRejected",
    "CapabilityUnsupported",
    "Code",
    "ConfigError",
    "GatewayError",
    "InsufficientScope",
    "InvalidArgument",
    "InvalidGrant",
    "InvalidRedirectUri",
    "OutcomeUnknown",
    "ProviderClientAuthFailed",
    "ProviderRateLimited",
    "ProviderRequestRejected",
    "ProviderResponseInvalid",
    "ProviderUnavailable",
    "ReauthRequired",
    "UnknownOperation",
]

DOMAIN = "broker-gateway"


class Code(enum.Enum):
    """The gRPC status codes, by the names and numbers of ``google.rpc.Code`` (which grpc's
    ``StatusCode`` shares; a test pins it). Written out rather than taken from grpc or the googleapis
    protos so that a plugin can raise errors with neither installed."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class GatewayError(Exception):
    """Base of every error a caller may see; subclasses fix ``code`` and ``reason``."""

    code: Code = Code.INTERNAL
    reason: str = "INTERNAL_ERROR"

    def __init_subclass__(cls, **kwargs: object) -> None:
        """A plugin's error class written before ``Code`` (``code = grpc.StatusCode.UNAVAILABLE``) gets
        the ``Code`` of the same name, so its status, retry advice and metrics stay right; a code
        that names no status is refused when the class is made, not when it is first raised."""
        super().__init_subclass__(**kwargs)
        if not isinstance(cls.code, Code):
            name = getattr(cls.code, "name", None)
            if name not in Code.__members__:
                raise TypeError(f"{cls.__name__}.code must be a broker_gateway.errors.Code, not {cls.code!r}")
            cls.code = Code[name]

    def __init__(
        self,
        message: str,
        *,
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})
        self.retry_after = retry_after
        self.field = field
        if field is not None:
            self.metadata.setdefault("field", field)


class InvalidArgument(GatewayError):
    """A request field is missing or malformed; ``field`` names it."""

    code = Code.INVALID_ARGUMENT
    reason = "INVALID_FIELD"

    def __init__(self, field: str, message: str, **kwargs) -> None:
        super().__init__(message, field=field, **kwargs)


class FieldTooLarge(InvalidArgument):
    reason = "FIELD_TOO_LARGE"


class InvalidRedirectUri(InvalidArgument):
    reason = "INVALID_REDIRECT_URI"


class UnknownProvider(InvalidArgument):
    reason = "UNKNOWN_PROVIDER"


class UnknownOperation(InvalidArgument):
    reason = "UNKNOWN_OPERATION"


class ScopeNotAllowed(InvalidArgument):
    reason = "SCOPE_NOT_ALLOWED"


class ParameterNotAllowed(InvalidArgument):
    reason = "PARAMETER_NOT_ALLOWED"


class IssuerMismatch(InvalidArgument):
    """The callback's ``iss`` is not the issuer the authorization went to (RFC 9207 mix-up defence)."""

    reason = "ISSUER_MISMATCH"


class AuthzTransactionInvalid(GatewayError):
    """The ``state`` is unknown, expired or replayed; ``cause`` says which."""

    code = Code.FAILED_PRECONDITION
    reason = "AUTHZ_TRANSACTION_INVALID"

    def __init__(self, cause: str) -> None:
        super().__init__(f"the authorization state is {cause}; start a new Authorize", metadata={"cause": cause})


class UserDenied(GatewayError):
    code = Code.FAILED_PRECONDITION
    reason = "USER_DENIED"


class AuthorizationFailed(GatewayError):
    code = Code.FAILED_PRECONDITION
    reason = "AUTHORIZATION_FAILED"


class AuthorizationCodeInvalid(GatewayError):
    code = Code.FAILED_PRECONDITION
    reason = "AUTHORIZATION_CODE_INVALID"


class AuthorizationExchangeUnknown(GatewayError):
    code = Code.ABORTED
    reason = "AUTHORIZATION_EXCHANGE_UNKNOWN"


class TooManyPendingAuthorizations(GatewayError):
    """Authorize would keep more pending states than the configured limit allows; a RetryInfo says
    when the gateway counts them again."""

    code = Code.RESOURCE_EXHAUSTED
    reason = "TOO_MANY_PENDING_AUTHORIZATIONS"


class ReauthRequired(GatewayError):
    code = Code.FAILED_PRECONDITION
    reason = "REAUTH_REQUIRED"


class ConnectionRevoked(GatewayError):
    code = Code.FAILED_PRECONDITION
    reason = "CONNECTION_REVOKED"


class ConnectionNotFound(GatewayError):
    code = Code.NOT_FOUND
    reason = "CONNECTION_NOT_FOUND"


class ConnectionIdInUse(GatewayError):
    code = Code.ALREADY_EXISTS
    reason = "CONNECTION_ID_IN_USE"


class CapabilityUnsupported(GatewayError):
    code = Code.FAILED_PRECONDITION
    reason = "CAPABILITY_UNSUPPORTED"


class RefreshInProgress(GatewayError):
    code = Code.UNAVAILABLE
    reason = "REFRESH_IN_PROGRESS"


class ProviderClientAuthFailed(GatewayError):
    code = Code.FAILED_PRECONDITION
    reason = "PROVIDER_CLIENT_AUTH_FAILED"


class ProviderUnavailable(GatewayError):
    code = Code.UNAVAILABLE
    reason = "PROVIDER_UNAVAILABLE"


class ProviderRateLimited(GatewayError):
    code = Code.RESOURCE_EXHAUSTED
    reason = "PROVIDER_RATE_LIMITED"


class InsufficientScope(GatewayError):
    code = Code.PERMISSION_DENIED
    reason = "INSUFFICIENT_SCOPE"


class ProviderRequestRejected(GatewayError):
    code = Code.FAILED_PRECONDITION
    reason = "PROVIDER_REQUEST_REJECTED"


class ProviderResponseInvalid(GatewayError):
    """The provider answered with something other than what it documents (not JSON, the wrong shape,
    a redirect, too large). Seen in practice from a proxy's error page or a deploy in progress, so it
    is UNAVAILABLE with a RetryInfo; the reason still tells it apart from an unreachable provider."""

    code = Code.UNAVAILABLE
    reason = "PROVIDER_RESPONSE_INVALID"

    def __init__(self, message: str, *, retry_after: float | None = 1.0, **kwargs) -> None:
        super().__init__(message, retry_after=retry_after, **kwargs)


class OutcomeUnknown(GatewayError):
    """The request left the gateway but no answer came back: it may or may not have taken effect."""

    code = Code.UNKNOWN
    reason = "OUTCOME_UNKNOWN"


class DeadlineTooShort(GatewayError):
    code = Code.DEADLINE_EXCEEDED
    reason = "DEADLINE_TOO_SHORT"


class StoreUnavailable(GatewayError):
    code = Code.UNAVAILABLE
    reason = "STORE_UNAVAILABLE"


class RateLimiterUnavailable(GatewayError):
    """The shared rate limiter (Redis) cannot be reached, so a limited call is not sent: sending it
    uncounted could exceed the exchange's limit. A RetryInfo says when to try again."""

    code = Code.UNAVAILABLE
    reason = "RATE_LIMITER_UNAVAILABLE"


class TokenDecryptFailed(GatewayError):
    code = Code.DATA_LOSS
    reason = "TOKEN_DECRYPT_FAILED"


class CallerUnauthenticated(GatewayError):
    """No credentials, or none that name a configured caller: one answer for every case."""

    code = Code.UNAUTHENTICATED
    reason = "CALLER_UNAUTHENTICATED"

    def __init__(self) -> None:
        super().__init__("the call needs a configured caller's credentials (authorization: Bearer <key>, or a client certificate)")


class CallerForbidden(GatewayError):
    """A known caller without the permission the RPC needs; ``permission`` names it."""

    code = Code.PERMISSION_DENIED
    reason = "CALLER_FORBIDDEN"

    def __init__(self, permission: str) -> None:
        super().__init__(f"the caller lacks the {permission} permission", metadata={"permission": permission})


class EventCursorExpired(InvalidArgument):
    """WatchConnections' ``after`` is older than the events kept; ``oldest_cursor`` is where the
    kept events start."""

    code = Code.OUT_OF_RANGE
    reason = "EVENT_CURSOR_EXPIRED"


class TooManyWatchers(GatewayError):
    """The caller already holds as many WatchConnections streams on this process as it may."""

    code = Code.RESOURCE_EXHAUSTED
    reason = "TOO_MANY_WATCHERS"


class WatchBufferFull(GatewayError):
    """A WatchConnections stream read so slowly that its bounded buffer filled: it ends, to be
    resumed from the last cursor received."""

    code = Code.RESOURCE_EXHAUSTED
    reason = "WATCH_BUFFER_FULL"


class WatchInterrupted(GatewayError):
    """The process serving a WatchConnections stream is shutting down."""

    code = Code.UNAVAILABLE
    reason = "WATCH_INTERRUPTED"


class InternalError(GatewayError):
    code = Code.INTERNAL
    reason = "INTERNAL_ERROR"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class AccessTokenRejected(ReauthRequired):
    """The upstream refused the access token (HTTP 401 ``invalid_token``). The core answers it with
    one forced refresh and one retry before letting it reach the caller."""


class InvalidGrant(GatewayError):
    """The token endpoint answered ``invalid_grant``. Flows translate it: a bad code on Exchange, a
    dead grant (REAUTH_REQUIRED) on refresh."""

    code = Code.FAILED_PRECONDITION
    reason = "AUTHORIZATION_CODE_INVALID"
