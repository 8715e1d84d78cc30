"""The flows: authorize, exchange, refresh, revoke, user info, access token, operations, connections.

Independent of gRPC: the servicer translates messages and calls these methods, and tests can drive
them without a server. Keeping tokens usable (refresh, single flight, leases, keep-alive) is
token_lifecycle.py's job; the flows ask it for usable tokens.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from opentelemetry import trace

from . import audit, deadlines, validation
from .config import GatewaySettings
from .detached import DetachedWork
from .errors import (
    AuthorizationCodeInvalid,
    AuthorizationExchangeUnknown,
    AuthorizationFailed,
    AuthzTransactionInvalid,
    CapabilityUnsupported,
    ConnectionIdInUse,
    ConnectionNotFound,
    InvalidArgument,
    InvalidGrant,
    InvalidRedirectUri,
    IssuerMismatch,
    OutcomeUnknown,
    ParameterNotAllowed,
    ProviderUnavailable,
    RefreshInProgress,
    ScopeNotAllowed,
    UnknownOperation,
    UnknownProvider,
    UserDenied,
)
from .metrics import GatewayMetrics
from .oauth2 import callback_error_code, new_pkce_pair, new_state
from .pending_budget import PendingBudget
from .provider import AuthorizationRequest, ConnectionCredentials, Operation, OperationAuth, Provider, TokenSet, UserInfo
from .ratelimit import Limiter, RateLimiter
from .schema import check_params
from .store.base import (
    Change,
    ClaimOutcome,
    ConnectionStatus,
    EventType,
    PendingAuthorization,
    Store,
    StoredConnection,
    StoredEvent,
    TakeOutcome,
)
from .token_cache import TokenCache
from .token_lifecycle import TokenLifecycle, require_active
from .vault import Vault
from .watch import EventHub, Heartbeat, decode_cursor

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Callback parameters that have their own ExchangeRequest field and so may not also be in the map.
CALLBACK_FIELDS = frozenset({"state", "code", "iss"})
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
#: Authorization parameters the core sets itself; a caller's extra_params can never override them.
RESERVED_PARAMS = frozenset(
    {"response_type", "client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method"}
)


@dataclass(frozen=True)
class ConfiguredProvider:
    """A provider instance with the parts of its configuration the core enforces."""

    provider: Provider
    redirect_uris: tuple[str, ...]

    @property
    def id(self) -> str:
        return self.provider.context.provider_id


@dataclass(frozen=True)
class AuthorizationStart:
    authorization_url: str
    state: str
    expire_time: datetime
    connection_id: str


def state_key(state: str) -> str:
    """Pending authorizations are stored under a hash of their state, never the state itself."""
    return hashlib.sha256(state.encode()).hexdigest()


class Gateway:
    """The flows over a set of configured providers, a store and a vault."""

    def __init__(
        self,
        *,
        providers: Sequence[ConfiguredProvider],
        store: Store,
        vault: Vault,
        clock: Callable[[], datetime],
        settings: GatewaySettings | None = None,
        tracer: trace.Tracer | None = None,
        rate_limiter: Limiter | None = None,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        settings = settings or GatewaySettings()
        self.providers = {configured.id: configured for configured in providers}
        self.store = store
        self.vault = vault
        self.clock = clock
        self.settings = settings
        self.tracer = tracer or trace.get_tracer(__name__)
        self.rate_limiter: Limiter = rate_limiter or RateLimiter()
        self.metrics = metrics
        self.pending_budget = PendingBudget(
            store,
            clock,
            limit=settings.max_pending_authorizations,
            limit_per_tenant=settings.max_pending_authorizations_per_tenant,
        )
        self.events = EventHub(store, clock, settings.events)
        self.token_cache = TokenCache(vault)
        self.detached = DetachedWork(settings.upstream_budget)
        self.token_lifecycle = TokenLifecycle(
            providers={provider_id: configured.provider for provider_id, configured in self.providers.items()},
            store=store,
            vault=vault,
            clock=clock,
            settings=settings,
            tracer=self.tracer,
            token_cache=self.token_cache,
            detached=self.detached,
            events=self.events,
            metrics=metrics,
        )

    # -- providers ---------------------------------------------------------------------------------

    def provider(self, provider_id: str, *, field: str = "provider") -> ConfiguredProvider:
        validation.required(field, provider_id)
        validation.max_length(field, provider_id, validation.MAX_ID)
        configured = self.providers.get(provider_id)
        if configured is None:
            raise UnknownProvider(field, f"{field} is not a configured provider")
        return configured

    def list_providers(self) -> list[ConfiguredProvider]:
        return [self.providers[key] for key in sorted(self.providers)]

    # -- authorize and exchange --------------------------------------------------------------------

    async def authorize(
        self,
        tenant: str,
        *,
        provider_id: str,
        redirect_uri: str,
        scopes: Sequence[str],
        connection_id: str,
        extra_params: Mapping[str, str],
    ) -> AuthorizationStart:
        configured = self.provider(provider_id)
        provider = configured.provider
        validation.uri("redirect_uri", redirect_uri)
        if redirect_uri not in configured.redirect_uris:
            raise InvalidRedirectUri(
                "redirect_uri",
                f"redirect_uri is not one registered for provider {provider_id}",
                metadata={"provider": provider_id},
            )
        requested = validation.scopes("scopes", tuple(scopes)) or tuple(provider.default_scopes)
        unknown = [scope for scope in requested if provider.scopes and scope not in provider.scopes]
        if unknown:
            raise ScopeNotAllowed(
                "scopes", f"scopes has a scope provider {provider_id} does not offer", metadata={"provider": provider_id}
            )
        extra = validation.string_map("extra_params", extra_params)
        refused = sorted(key for key in extra if key in RESERVED_PARAMS or key not in provider.allowed_extra_params)
        if refused:
            raise ParameterNotAllowed(
                "extra_params",
                f"extra_params has a parameter provider {provider_id} does not allow",
                metadata={"provider": provider_id},
            )
        if connection_id:
            validation.identifier("connection_id", connection_id)
            existing = await self.store.get_connection(tenant, connection_id)
            if existing is not None and existing.provider_id != provider_id:
                raise ConnectionIdInUse(
                    "connection_id names a connection of another provider", metadata={"provider": existing.provider_id}
                )
        else:
            connection_id = "conn_" + secrets.token_urlsafe(12)

        await self.pending_budget.admit(tenant)  # before anything is made or stored
        state = new_state()
        verifier, challenge = new_pkce_pair() if provider.capabilities.pkce else (None, None)
        now = self.clock()
        key = state_key(state)
        pending = PendingAuthorization(
            tenant=tenant,
            state_key=key,
            provider_id=provider_id,
            connection_id=connection_id,
            redirect_uri=redirect_uri,
            scopes=requested,
            issuer=provider.issuer,
            sealed_verifier=None if verifier is None else self.vault.seal_verifier(tenant, key, verifier),
            create_time=now,
            expire_time=now + self.settings.state_ttl,
        )
        url = provider.authorization_url(
            AuthorizationRequest(
                state=state, redirect_uri=redirect_uri, scopes=requested, code_challenge=challenge, extra_params=extra
            )
        )
        await self.store.put_pending(pending)
        return AuthorizationStart(url, state, pending.expire_time, connection_id)

    async def exchange(
        self, tenant: str, *, state: str, code: str, iss: str, callback_params: Mapping[str, str]
    ) -> StoredConnection:
        validation.opaque_token("state", state, limit=validation.MAX_STATE)
        params = validation.string_map("callback_params", callback_params)
        repeated = sorted(CALLBACK_FIELDS & params.keys())
        if repeated:
            # A parameter given twice is ambiguous (which one did the provider send?): refused.
            raise InvalidArgument("callback_params", f"callback_params repeats the {repeated[0]} field")
        error = params.get("error", "")
        if not error:
            validation.opaque_token("code", code, limit=validation.MAX_CODE)
        if iss:
            validation.uri("iss", iss)

        with self.tracer.start_as_current_span("broker_gateway.exchange.take_state"):
            outcome, pending = await self.store.take_pending(tenant, state_key(state))
        if outcome is not TakeOutcome.TAKEN or pending is None:
            raise AuthzTransactionInvalid(outcome.value)
        if pending.expire_time <= self.clock():
            raise AuthzTransactionInvalid("expired")
        configured = self.providers.get(pending.provider_id)
        if configured is None:  # the provider was removed from the configuration meanwhile
            raise AuthzTransactionInvalid("unknown")
        provider = configured.provider
        metadata = {"provider": provider.context.provider_id}
        trace.get_current_span().set_attribute("broker_gateway.provider", pending.provider_id)

        # Mix-up defence (RFC 9207): compared as plain strings, before anything is sent.
        if pending.issuer is not None and (iss or provider.requires_iss) and iss != pending.issuer:
            raise IssuerMismatch("iss", "the callback's iss is not the issuer the authorization was sent to", metadata=metadata)
        if error:
            failure = UserDenied if error == "access_denied" else AuthorizationFailed
            raise failure(
                f"provider {pending.provider_id} reported an authorization error",
                metadata={**metadata, "upstream_code": callback_error_code(error)},
            )

        verifier = (
            None if pending.sealed_verifier is None else self.vault.open_verifier(tenant, pending.state_key, pending.sealed_verifier)
        )

        async def exchange_and_store() -> StoredConnection:
            with self.tracer.start_as_current_span("broker_gateway.exchange.token_request"):
                try:
                    grant = await provider.exchange_code(
                        code,
                        redirect_uri=pending.redirect_uri,
                        code_verifier=verifier,
                        scopes=pending.scopes,
                        callback_params=params,
                    )
                except InvalidGrant as refused:
                    raise AuthorizationCodeInvalid("the provider refused the authorization code", metadata=refused.metadata) from None
                except OutcomeUnknown:
                    raise AuthorizationExchangeUnknown(
                        "the code exchange was sent but its answer was lost; start a new Authorize", metadata=metadata
                    ) from None
            with self.tracer.start_as_current_span("broker_gateway.exchange.store_connection"):
                return await self._save_grant(pending, grant.tokens, grant.subject, grant.metadata)

        return await self.detached.run(exchange_and_store)

    async def _save_grant(
        self, pending: PendingAuthorization, tokens: TokenSet, subject: str, metadata: Mapping[str, str]
    ) -> StoredConnection:
        now = self.clock()
        for _ in range(3):
            existing = await self.store.get_connection(pending.tenant, pending.connection_id)
            if existing is not None and existing.provider_id != pending.provider_id:
                raise ConnectionIdInUse(
                    "connection_id names a connection of another provider", metadata={"provider": existing.provider_id}
                )
            connection = StoredConnection(
                tenant=pending.tenant,
                connection_id=pending.connection_id,
                provider_id=pending.provider_id,
                scopes=tokens.scopes or pending.scopes,
                subject=subject or _id_token_subject(tokens.id_token) or (existing.subject if existing else ""),
                status=ConnectionStatus.ACTIVE,
                status_reason="",
                metadata=dict(metadata),
                sealed_tokens=self.vault.seal_tokens(pending.tenant, pending.connection_id, tokens),
                access_token_expire_time=tokens.access_token_expire_time,
                refresh_token_expire_time=tokens.refresh_token_expire_time,
                create_time=existing.create_time if existing else now,
                update_time=now,
                version=existing.version + 1 if existing else 1,
                seq=existing.seq if existing else 0,
            )
            created = Change(EventType.CREATED, now)  # a new connection, or one authorized again
            if existing is None:
                if await self.store.insert_connection(connection, event=created):
                    self.events.poke()
                    return await self._reload(connection)
            elif await self.store.update_connection(connection, expected_version=existing.version, event=created):
                self.events.poke()
                return connection
        raise RefreshInProgress("the connection changed concurrently; retry", retry_after=0.1)

    async def _reload(self, connection: StoredConnection) -> StoredConnection:
        stored = await self.store.get_connection(connection.tenant, connection.connection_id)
        return stored or connection

    # -- connections -------------------------------------------------------------------------------

    async def get_connection(self, tenant: str, connection_id: str) -> StoredConnection:
        validation.identifier("connection_id", connection_id)
        connection = await self.store.get_connection(tenant, connection_id)
        if connection is None:
            raise ConnectionNotFound("no connection has this connection_id")
        audit.note_provider(connection.provider_id)
        return connection

    async def list_connections(
        self, tenant: str, *, provider_id: str, page_size: int, page_token: str
    ) -> tuple[list[StoredConnection], str]:
        if provider_id:
            self.provider(provider_id)
        if page_size < 0:
            raise InvalidArgument("page_size", "page_size must not be negative")
        limit = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        after = _decode_page_token(page_token, provider_id) if page_token else 0
        rows = await self.store.list_connections(tenant, provider_id=provider_id or None, after_seq=after, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        return page, _encode_page_token(page[-1].seq, provider_id) if more else ""

    async def delete_connection(self, tenant: str, connection_id: str) -> None:
        validation.identifier("connection_id", connection_id)
        deleted = await self.store.delete_connection(tenant, connection_id, event=Change(EventType.DELETED, self.clock()))
        self.token_cache.forget(tenant, connection_id)  # after the write: a call racing it may have cached the row
        if not deleted:
            raise ConnectionNotFound("no connection has this connection_id")
        self.events.poke()

    def watch_connections(
        self, tenant: str, caller_id: str, *, provider_id: str, after: str
    ) -> AsyncIterator[StoredEvent | Heartbeat]:
        """The tenant's connection events after the cursor ``after`` (from now when empty), only the
        provider's when one is given; see watch.py."""
        if provider_id:
            self.provider(provider_id)
        position = decode_cursor(tenant, after) if after else None
        return self.events.watch(tenant, caller_id, provider_id=provider_id or None, after=position)

    # -- tokens ------------------------------------------------------------------------------------

    async def access_token(self, tenant: str, connection_id: str) -> TokenSet:
        connection, tokens = await self._connection_with_tokens(tenant, connection_id)
        _, tokens = await self.token_lifecycle.usable_tokens(connection, tokens)
        return tokens

    async def _connection_with_tokens(self, tenant: str, connection_id: str) -> tuple[StoredConnection, TokenSet | None]:
        """The connection, with its opened tokens when the cache holds them for the row as it is now
        (confirmed by the store's stamp, never assumed: token_cache.py)."""
        cached = self.token_cache.lookup(tenant, connection_id)
        if cached is None:
            return await self.get_connection(tenant, connection_id), None
        stamp = await self.store.connection_stamp(tenant, connection_id)
        if stamp != cached.stamp:
            self.token_cache.forget(tenant, connection_id)
            return await self.get_connection(tenant, connection_id), None
        audit.note_provider(cached.connection.provider_id)
        return cached.connection, cached.tokens

    async def refresh(self, tenant: str, connection_id: str) -> StoredConnection:
        connection = await self.get_connection(tenant, connection_id)
        require_active(connection)
        refreshable = self.token_lifecycle.provider_of(connection).capabilities.refresh
        if not refreshable or not self.vault.open_tokens(connection).refresh_token:
            raise CapabilityUnsupported(
                f"the connection has no refresh token (provider {connection.provider_id})",
                metadata={"provider": connection.provider_id, "capability": "refresh"},
            )
        return await self.token_lifecycle.refresh(connection, force=True)

    async def revoke(self, tenant: str, connection_id: str) -> tuple[StoredConnection, bool]:
        """Revoke upstream where the provider can (RFC 7009), then end the connection REVOKED. An
        upstream failure leaves the connection as it was, so the caller can retry."""
        connection = await self.get_connection(tenant, connection_id)
        upstream_revoked = False
        configured = self.providers.get(connection.provider_id)
        if connection.sealed_tokens is not None and configured is not None and configured.provider.capabilities.revoke:
            tokens = self.vault.open_tokens(connection)
            with self.tracer.start_as_current_span("broker_gateway.revoke.upstream"):
                # RFC 7009 revocation is idempotent: a lost answer is worth a retry, not an unknown.
                upstream_revoked = await _repeatable(configured.provider.revoke(ConnectionCredentials(tokens, connection.metadata)))
        while True:
            revoked = dataclasses.replace(
                connection,
                status=ConnectionStatus.REVOKED,
                status_reason="REVOKED",
                sealed_tokens=None,
                access_token_expire_time=None,
                refresh_token_expire_time=None,
                update_time=self.clock(),
                version=connection.version + 1,
            )
            event = Change(EventType.REVOKED, revoked.update_time)
            if await self.store.update_connection(revoked, expected_version=connection.version, event=event):
                self.token_cache.forget(tenant, connection_id)  # after the write: nothing can cache it again
                self.events.poke()
                return revoked, upstream_revoked
            connection = await self.get_connection(tenant, connection_id)

    async def user_info(self, tenant: str, connection_id: str) -> UserInfo:
        connection, tokens = await self._connection_with_tokens(tenant, connection_id)
        provider = self.token_lifecycle.provider_of(connection)
        if not provider.capabilities.user_info:
            raise CapabilityUnsupported(
                f"provider {connection.provider_id} offers no user info",
                metadata={"provider": connection.provider_id, "capability": "user_info"},
            )
        deadlines.require_budget()
        limit = provider.user_info_rate_limit
        await self.rate_limiter.acquire(connection.provider_id, "user_info", limit, f"{tenant}/{connection_id}")
        info = await _repeatable(self.token_lifecycle.call_with_token(connection, provider.user_info, tokens))
        if info.subject and info.subject != connection.subject:
            await self._record_subject(connection, info.subject)
        return info

    async def invoke(
        self,
        tenant: str,
        *,
        provider_id: str,
        operation_name: str,
        connection_id: str,
        params: Mapping[str, Any],
        request_id: str,
    ) -> Any:
        configured = self.provider(provider_id)
        provider = configured.provider
        validation.required("operation", operation_name)
        validation.max_length("operation", operation_name, validation.MAX_ID)
        operation = _find_operation(provider.operations(), operation_name)
        if operation is None:
            raise UnknownOperation(
                "operation", f"provider {provider_id} has no operation of that name", metadata={"provider": provider_id}
            )
        if request_id:
            validation.opaque_token("request_id", request_id, limit=validation.MAX_ID)
        check_params(operation.params_schema, params)
        provider.check_params(operation, params)
        connection, tokens = None, None
        if operation.auth is OperationAuth.USER_TOKEN:
            connection, tokens = await self._connection_with_tokens(tenant, connection_id)
            if connection.provider_id != provider_id:
                raise InvalidArgument(
                    "connection_id",
                    f"the connection belongs to provider {connection.provider_id}, not {provider_id}",
                )
        deadlines.require_budget()
        sent_id = request_id or uuid.uuid4().hex

        async def send() -> Any:
            # Taken here, after a replay was ruled out: a replayed result costs the upstream nothing.
            await self.rate_limiter.acquire(provider_id, operation.name, operation.rate_limit, f"{tenant}/{connection_id}")
            with self.tracer.start_as_current_span("broker_gateway.invoke.upstream") as span:
                span.set_attribute("broker_gateway.provider", provider_id)
                span.set_attribute("broker_gateway.operation", operation.name)
                if connection is None:
                    return await provider.invoke(operation, params, credentials=None, request_id=sent_id)

                async def call(credentials: ConnectionCredentials) -> Any:
                    return await provider.invoke(operation, params, credentials=credentials, request_id=sent_id)

                return await self.token_lifecycle.call_with_token(connection, call, tokens)

        if operation.safe_to_retry:
            return await _repeatable(send())
        if not request_id:
            return await send()
        return await self._at_most_once(tenant, provider_id, operation.name, request_id, send)

    async def _at_most_once(
        self, tenant: str, provider_id: str, operation_name: str, request_id: str, send: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Send a side-effecting operation at most once per request id; a repeated call gets the
        stored result, or OUTCOME_UNKNOWN while the first call's outcome is not known."""
        key = hashlib.sha256(f"{provider_id}\0{operation_name}\0{request_id}".encode()).hexdigest()
        outcome, sealed = await self.store.claim_request(tenant, key, now=self.clock())
        if outcome is ClaimOutcome.DONE and sealed is not None:
            return self.vault.open_result(tenant, key, sealed)
        if outcome is ClaimOutcome.IN_PROGRESS:
            raise OutcomeUnknown(
                "a call with this request_id is in progress or its outcome is unknown; check before repeating it",
                metadata={"provider": provider_id},
            )
        try:
            result = await send()
        except OutcomeUnknown:
            raise  # the claim stays: it may have taken effect, so it is never sent again
        except BaseException:
            await self.store.release_request(tenant, key)  # certainly not done: may be sent again
            raise
        await self.store.complete_request(tenant, key, self.vault.seal_result(tenant, key, result))
        return result

    async def _record_subject(self, connection: StoredConnection, subject: str) -> None:
        latest = await self.store.get_connection(connection.tenant, connection.connection_id)
        if latest is None or latest.subject == subject:
            return
        updated = dataclasses.replace(latest, subject=subject, update_time=self.clock(), version=latest.version + 1)
        await self.store.update_connection(updated, expected_version=latest.version)

    async def purge_expired(self) -> None:
        """Forget pending authorizations past their expiry (with their sealed verifiers), request
        records past the replay window and connection events past their retention."""
        now = self.clock()
        await self.store.purge_pending(now)
        await self.store.purge_requests(now - self.settings.request_replay_window)
        await self.store.prune_events(now - self.settings.events.retention)

    async def drain(self, timeout: float) -> None:
        """Stop starting refreshes and let the running ones persist (bounded), for shutdown."""
        self.token_lifecycle.stop_refreshing()
        await self.events.close()
        await self.detached.drain(timeout)


async def _repeatable(call: Awaitable[T]) -> T:
    """Await an upstream request that is safe to repeat (a read, an RFC 7009 revocation): an answer
    lost after sending is then a provider to retry, UNAVAILABLE, not an unknown outcome."""
    try:
        return await call
    except OutcomeUnknown as lost:
        raise ProviderUnavailable(
            "the provider did not answer; the request is safe to repeat", metadata=lost.metadata, retry_after=1.0
        ) from None


def _find_operation(operations: Sequence[Operation], name: str) -> Operation | None:
    return next((operation for operation in operations if operation.name == name), None)


def _id_token_subject(id_token: str | None) -> str:
    """The ``sub`` of an ID token received directly from the token endpoint over TLS, which OIDC Core
    §3.1.3.7 allows to trust without checking the signature; empty when absent or unreadable."""
    if not id_token:
        return ""
    try:
        payload = id_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return ""
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return subject if isinstance(subject, str) else ""


def _encode_page_token(seq: int, provider_id: str) -> str:
    raw = json.dumps({"after": seq, "provider": provider_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_page_token(token: str, provider_id: str) -> int:
    try:
        validation.max_length("page_token", token, 256)
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after = data["after"]
        if data["provider"] != provider_id or not _is_cursor(after):
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidArgument("page_token", "page_token is not one this list returned") from None
    return after


def _is_cursor(after: Any) -> bool:
    """A row sequence number SQLite can compare: an int (not a bool) in 0 .. 2**63 - 1."""
    return type(after) is int and 0 <= after < 2**63
