"""The flows: authorize, exchange, refresh, revoke, user info, access token, operations, connections.

Independent of gRPC: the servicer translates messages and calls these methods, and tests can drive
them without a server. Refresh follows oauth-security 2.2: refresh ahead of expiry, single-flight in
the process, a lease in the store across processes, a re-read after taking the lease, a
version-checked write, and the refresh detached from the caller's deadline so a caller giving up never
loses a rotated token.
"""

from __future__ import annotations

import asyncio
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
from datetime import datetime, timedelta
from typing import Any, TypeVar

from opentelemetry import trace

from . import audit, deadlines, validation
from .errors import (
    AccessTokenRejected,
    AuthorizationCodeInvalid,
    AuthorizationExchangeUnknown,
    AuthorizationFailed,
    AuthzTransactionInvalid,
    CapabilityUnsupported,
    ConnectionIdInUse,
    ConnectionNotFound,
    ConnectionRevoked,
    GatewayError,
    InternalError,
    InvalidArgument,
    InvalidGrant,
    InvalidRedirectUri,
    IssuerMismatch,
    OutcomeUnknown,
    ParameterNotAllowed,
    ProviderUnavailable,
    ReauthRequired,
    RefreshInProgress,
    ScopeNotAllowed,
    StoreUnavailable,
    UnknownOperation,
    UnknownProvider,
    UserDenied,
)
from .metrics import GatewayMetrics, RefreshOutcome
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
from .vault import Vault
from .watch import EventHub, EventSettings, Heartbeat, decode_cursor

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Callback parameters that have their own ExchangeRequest field and so may not also be in the map.
CALLBACK_FIELDS = frozenset({"state", "code", "iss"})
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
#: The store lease that makes keep-alive one job for the whole deployment (Gateway.keep_alive). Its
#: tenant is one no caller's can be (tenant names begin with a letter or a digit), so it never meets
#: the refresh lease of a connection.
KEEPALIVE_LEASE = ("#jobs", "keep-alive")
#: Authorization parameters the core sets itself; a caller's extra_params can never override them.
RESERVED_PARAMS = frozenset(
    {"response_type", "client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method"}
)


@dataclass(frozen=True)
class GatewaySettings:
    """Timing of the flows; the defaults suit providers with access tokens of an hour or more."""

    state_ttl: timedelta = timedelta(minutes=10)
    #: Pending authorizations the store may hold in all, and per tenant (pending_budget.py).
    max_pending_authorizations: int = 100_000
    max_pending_authorizations_per_tenant: int = 10_000
    #: Refresh when less than this is left of the access token, or less than a quarter of its life
    #: for tokens so short-lived that the margin would cover most of it.
    refresh_margin: timedelta = timedelta(minutes=5)
    #: The budget of a detached refresh or code exchange, independent of any caller's deadline.
    upstream_budget: float = 15.0
    #: A refresh lease is short and renewed every third of it while its refresh runs, so a live
    #: holder keeps it for as long as the refresh takes, while the lease of a holder that died
    #: (kill -9, power loss) blocks its connection for at most this long.
    lease_ttl: timedelta = timedelta(seconds=5)
    #: How long a caller waits for another process's lease before REFRESH_IN_PROGRESS; longer than
    #: lease_ttl, so a caller always outwaits the lease of a dead holder.
    lease_wait: float = 10.0
    #: How long the result of a side-effecting operation is replayed to a repeated request_id.
    request_replay_window: timedelta = timedelta(hours=24)
    #: How often idle connections are checked for a keep-alive refresh, and how many per pass.
    keepalive_interval: float = 600.0
    keepalive_batch: int = 500
    #: Connection events and WatchConnections ([events]).
    events: EventSettings = dataclasses.field(default_factory=EventSettings)


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
        settings: GatewaySettings = GatewaySettings(),
        tracer: trace.Tracer | None = None,
        rate_limiter: Limiter | None = None,
        metrics: GatewayMetrics | None = None,
    ) -> None:
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
        self._inflight: dict[tuple[str, str, bool], asyncio.Task[StoredConnection]] = {}
        self._detached: set[asyncio.Task[Any]] = set()
        self._draining = False

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

        return await self._run_detached(exchange_and_store)

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
        _, tokens = await self._usable_tokens(connection, tokens)
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
        _require_active(connection)
        refreshable = self._provider_of(connection).provider.capabilities.refresh
        if not refreshable or not self.vault.open_tokens(connection).refresh_token:
            raise CapabilityUnsupported(
                f"the connection has no refresh token (provider {connection.provider_id})",
                metadata={"provider": connection.provider_id, "capability": "refresh"},
            )
        return await self._refresh(connection, force=True)

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
        configured = self._provider_of(connection)
        if not configured.provider.capabilities.user_info:
            raise CapabilityUnsupported(
                f"provider {connection.provider_id} offers no user info",
                metadata={"provider": connection.provider_id, "capability": "user_info"},
            )
        deadlines.require_budget()
        limit = configured.provider.user_info_rate_limit
        await self.rate_limiter.acquire(connection.provider_id, "user_info", limit, f"{tenant}/{connection_id}")
        info = await _repeatable(self._with_user_token(connection, configured.provider.user_info, tokens))
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

                return await self._with_user_token(connection, call, tokens)

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

    # -- refresh machinery -------------------------------------------------------------------------

    def _provider_of(self, connection: StoredConnection) -> ConfiguredProvider:
        configured = self.providers.get(connection.provider_id)
        if configured is None:
            raise ReauthRequired(
                f"provider {connection.provider_id} is no longer configured", metadata={"provider": connection.provider_id}
            )
        return configured

    async def _with_user_token(
        self,
        connection: StoredConnection,
        call: Callable[[ConnectionCredentials], Awaitable[T]],
        opened: TokenSet | None = None,
    ) -> T:
        """Call upstream with a fresh token; a token the upstream refuses gets one forced refresh and
        one retry (oauth-security G2), never a loop. ``opened``: the connection's tokens, already opened."""
        connection, tokens = await self._usable_tokens(connection, opened)
        deadlines.require_budget()
        try:
            return await call(ConnectionCredentials(tokens, connection.metadata))
        except AccessTokenRejected:
            if not self._provider_of(connection).provider.capabilities.refresh or not tokens.refresh_token:
                raise
        connection = await self._refresh(connection, force=True)
        tokens = self.token_cache.open(connection)
        return await call(ConnectionCredentials(tokens, connection.metadata))

    async def _usable_tokens(
        self, connection: StoredConnection, opened: TokenSet | None = None
    ) -> tuple[StoredConnection, TokenSet]:
        _require_active(connection)
        tokens = self.token_cache.open(connection) if opened is None else opened
        if not self._needs_refresh(tokens):
            return connection, tokens
        provider = self._provider_of(connection).provider
        if not provider.capabilities.refresh or not tokens.refresh_token:
            if tokens.expires_within(self.clock(), timedelta(0)):
                raise ReauthRequired(
                    "the access token expired and cannot be refreshed", metadata={"provider": connection.provider_id}
                )
            return connection, tokens
        connection = await self._refresh(connection, force=False)
        return connection, self.token_cache.open(connection)

    def _needs_refresh(self, tokens: TokenSet) -> bool:
        margin = self.settings.refresh_margin
        expire, issued = tokens.access_token_expire_time, tokens.issue_time
        if expire is None:
            return False
        if issued is not None:
            margin = min(margin, (expire - issued) / 4)
        return tokens.expires_within(self.clock(), margin)

    async def _refresh(self, connection: StoredConnection, *, force: bool) -> StoredConnection:
        """Join or start the one refresh of this connection in this process, and wait for it within
        the caller's deadline; the refresh itself runs to completion either way."""
        deadlines.require_budget()  # a refresh nobody can wait for is not started
        key = (connection.tenant, connection.connection_id, force)
        task = self._inflight.get(key)
        if task is None:
            if self._draining:
                raise RefreshInProgress("the gateway is shutting down", retry_after=1.0)
            task = self._start_detached(lambda: self._refresh_under_lease(connection, force=force))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await self._wait(task)

    async def _refresh_under_lease(self, seen: StoredConnection, *, force: bool) -> StoredConnection:
        tenant, connection_id = seen.tenant, seen.connection_id
        holder = uuid.uuid4().hex
        with self.tracer.start_as_current_span("broker_gateway.refresh") as span:
            span.set_attribute("broker_gateway.provider", seen.provider_id)
            span.set_attribute("broker_gateway.refresh.forced", force)
            await self._acquire_lease(tenant, connection_id, holder)
            heartbeat = asyncio.get_running_loop().create_task(self._renew_lease(tenant, connection_id, holder))
            try:
                current = await self.store.get_connection(tenant, connection_id)
                if current is None:
                    raise ConnectionNotFound("the connection no longer exists")
                _require_active(current)
                tokens = self.vault.open_tokens(current)
                if current.version != seen.version or (not force and not self._needs_refresh(tokens)):
                    span.set_attribute("broker_gateway.refresh.skipped", True)
                    return current  # refreshed meanwhile by another caller or process
                provider = self._provider_of(current).provider
                try:
                    new_tokens = await self._send_refresh(provider, ConnectionCredentials(tokens, current.metadata))
                except InvalidGrant as refused:
                    self._count_refresh(current.provider_id, RefreshOutcome.REAUTH_REQUIRED)
                    return await self._mark_reauth_required(current, refused)
                except GatewayError as failed:
                    unknown = isinstance(failed.__cause__, OutcomeUnknown)
                    self._count_refresh(current.provider_id, RefreshOutcome.OUTCOME_UNKNOWN if unknown else RefreshOutcome.UNAVAILABLE)
                    raise
                self._count_refresh(current.provider_id, RefreshOutcome.OK)
                updated = dataclasses.replace(
                    current,
                    scopes=new_tokens.scopes or current.scopes,
                    sealed_tokens=self.vault.seal_tokens(tenant, connection_id, new_tokens),
                    access_token_expire_time=new_tokens.access_token_expire_time,
                    refresh_token_expire_time=new_tokens.refresh_token_expire_time,
                    update_time=self.clock(),
                    version=current.version + 1,
                )
                # Written before the lease is released and before any caller sees the new token.
                event = Change(EventType.REFRESHED, updated.update_time)
                if not await self.store.update_connection(updated, expected_version=current.version, event=event):
                    log.error("refresh of %s lost its version check; the lease was exceeded", connection_id)
                    raise RefreshInProgress("the connection changed during the refresh", retry_after=0.5)
                self.events.poke()
                return updated
            finally:
                heartbeat.cancel()
                await asyncio.wait([heartbeat])  # no renewal may land after the release
                await self.store.release_lease(tenant, connection_id, holder=holder)

    async def _send_refresh(self, provider: Provider, credentials: ConnectionCredentials) -> TokenSet:
        """Send the refresh; when its outcome is unknown (a timeout or reset after the request left),
        send the same stored refresh token once more while the budget allows.

        Why: the lost request may never have reached the upstream, and many providers accept a
        just-rotated refresh token again for a grace period, so one repeat usually saves the grant.
        Only ``invalid_grant`` on the repeat means the grant is gone (REAUTH_REQUIRED). A repeat that
        is unknown too, or no budget left for one, leaves the connection ACTIVE with its old tokens
        and answers PROVIDER_UNAVAILABLE: the next refresh tries the stored token again.
        """
        try:
            return await provider.refresh(credentials)
        except OutcomeUnknown as lost:
            unanswered = lost
            log.warning("refresh sent to %s got no answer; repeating it once", provider.context.provider_id)
        left = deadlines.remaining()
        if left is None or left >= deadlines.MINIMUM_BUDGET:
            try:
                return await provider.refresh(credentials)
            except OutcomeUnknown as lost:
                unanswered = lost
        raise ProviderUnavailable(
            f"provider {provider.context.provider_id} did not answer the refresh; retry shortly",
            metadata={"provider": provider.context.provider_id},
            retry_after=1.0,
        ) from unanswered  # the cause tells the refresh metrics it was unanswered, not refused

    def _count_refresh(self, provider_id: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.refresh(provider_id, outcome)

    async def _renew_lease(self, tenant: str, connection_id: str, holder: str, ttl: timedelta | None = None) -> None:
        """Renew the lease every third of its TTL (the refresh lease's unless given) while the work
        runs (cancelled when it ends).

        A renewal that fails means the lease lapsed (the process stalled longer than the TTL) and
        another holder took it: renewing stops, and the version-checked write of the refresh stays
        the fence that keeps a stale holder's tokens out of the store.
        """
        ttl = ttl or self.settings.lease_ttl
        while True:
            await asyncio.sleep(ttl.total_seconds() / 3)
            try:
                renewed = await self.store.acquire_lease(tenant, connection_id, holder=holder, ttl=ttl, now=self.clock())
            except StoreUnavailable:
                renewed = False
            if not renewed:
                log.warning("the refresh lease of %s lapsed; the version check fences its write", connection_id)
                return

    async def _acquire_lease(self, tenant: str, connection_id: str, holder: str) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.settings.lease_wait
        delay = 0.01
        while not await self.store.acquire_lease(
            tenant, connection_id, holder=holder, ttl=self.settings.lease_ttl, now=self.clock()
        ):
            if loop.time() >= give_up:
                raise RefreshInProgress("another process is refreshing this connection", retry_after=1.0)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def _mark_reauth_required(self, current: StoredConnection, refused: GatewayError) -> StoredConnection:
        """``invalid_grant`` on refresh: unless another writer changed the connection meanwhile (a
        won race, not a dead grant), the connection needs a new authorization. Never retried."""
        latest = await self.store.get_connection(current.tenant, current.connection_id)
        if latest is not None and latest.version != current.version:
            return latest
        upstream_code = refused.metadata.get("upstream_code", "invalid_grant")
        marked = dataclasses.replace(
            current,
            status=ConnectionStatus.REAUTH_REQUIRED,
            status_reason=f"REAUTH_REQUIRED:{upstream_code}",
            update_time=self.clock(),
            version=current.version + 1,
        )
        if await self.store.update_connection(
            marked, expected_version=current.version, event=Change(EventType.REAUTH_REQUIRED, marked.update_time)
        ):
            self.token_cache.forget(marked.tenant, marked.connection_id)  # dead tokens leave memory now
            self.events.poke()
        raise ReauthRequired(
            "the provider no longer accepts this connection's grant; authorize it again",
            metadata=refused.metadata,
        )

    async def _record_subject(self, connection: StoredConnection, subject: str) -> None:
        latest = await self.store.get_connection(connection.tenant, connection.connection_id)
        if latest is None or latest.subject == subject:
            return
        updated = dataclasses.replace(latest, subject=subject, update_time=self.clock(), version=latest.version + 1)
        await self.store.update_connection(updated, expected_version=latest.version)

    # -- detached work -----------------------------------------------------------------------------

    def _start_detached(self, work: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """Run ``work`` as a task with its own budget instead of the caller's deadline (oauth-security
        decision 5): once a token request is sent, its answer must be stored even if nobody waits."""

        async def run() -> T:
            with deadlines.deadline_in(self.settings.upstream_budget):
                return await work()

        task = asyncio.get_running_loop().create_task(run())
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)
        task.add_done_callback(_retrieve_outcome)
        return task

    async def _run_detached(self, work: Callable[[], Awaitable[T]]) -> T:
        deadlines.require_budget()
        return await self._wait(self._start_detached(work))

    async def _wait(self, task: asyncio.Task[T]) -> T:
        """The task's result, or REFRESH_IN_PROGRESS just before the caller's deadline (the task goes
        on and stores its outcome), so the caller gets a reason and a RetryInfo, not a bare
        DEADLINE_EXCEEDED. asyncio.wait never cancels the task, whether time runs out or the caller
        gives up."""
        left = deadlines.remaining()
        timeout = None if left is None else max(left - deadlines.SAFETY_MARGIN, 0.0)
        done, _ = await asyncio.wait((task,), timeout=timeout)
        if not done:
            raise RefreshInProgress("the upstream call is still running; retry shortly", retry_after=0.5)
        error = task.exception()
        if error is None or isinstance(error, GatewayError):
            return task.result()
        # Unexpected: _retrieve_outcome logged it once, with its traceback, for all its waiters.
        raise InternalError("internal error; the gateway's log has the details")

    async def purge_expired(self) -> None:
        """Forget pending authorizations past their expiry (with their sealed verifiers), request
        records past the replay window and connection events past their retention."""
        now = self.clock()
        await self.store.purge_pending(now)
        await self.store.purge_requests(now - self.settings.request_replay_window)
        await self.store.prune_events(now - self.settings.events.retention)

    async def keep_alive(self) -> int:
        """Refresh idle connections whose refresh token would otherwise expire unused, under the
        same single-flight and lease as any refresh; the number refreshed.

        Every process of a deployment (workers, replicas) runs this on its own timer, yet one pass
        per interval refreshes: a pass first takes the deployment's keep-alive lease in the store for
        one interval under a holder of its own (renewed while it runs), and leaves it to expire rather
        than releasing it. Every other process finds it held until the interval is over and skips its
        turn (0); the process that ran the pass sleeps a whole interval before it looks again.
        """
        holder, ttl = uuid.uuid4().hex, timedelta(seconds=self.settings.keepalive_interval)
        if not await self.store.acquire_lease(*KEEPALIVE_LEASE, holder=holder, ttl=ttl, now=self.clock()):
            log.debug("keep-alive: another process ran this interval's pass")
            return 0
        heartbeat = asyncio.get_running_loop().create_task(self._renew_lease(*KEEPALIVE_LEASE, holder, ttl))
        try:
            refreshed = await self._keep_alive_pass()
            await self._announce_expiring()
            return refreshed
        finally:
            heartbeat.cancel()
            await asyncio.wait([heartbeat])

    async def _keep_alive_pass(self) -> int:
        """One keep-alive pass over every provider's due connections, soonest expiry first."""
        refreshed = 0
        for configured in self.providers.values():
            provider = configured.provider
            window = provider.keepalive_window
            if window is None or not provider.capabilities.refresh:
                continue
            due = await self.store.connections_to_keep_alive(
                configured.id, refresh_expiring_before=self.clock() + window, limit=self.settings.keepalive_batch
            )
            for connection in due:
                try:
                    await self._refresh(connection, force=True)
                    refreshed += 1
                except GatewayError as error:
                    log.warning("keep-alive refresh of %s failed: %s", connection.connection_id, error.reason)
        return refreshed

    async def _announce_expiring(self) -> int:
        """Record REFRESH_TOKEN_EXPIRING for every ACTIVE connection whose refresh token expires within
        the lead time, once per refresh token (the store checks); run after the keep-alive pass, so a
        connection that pass renewed is not announced. The number recorded."""
        now = self.clock()
        announced = 0
        for configured in self.providers.values():
            due = await self.store.connections_to_keep_alive(
                configured.id, refresh_expiring_before=now + self.settings.events.expiring_lead, limit=self.settings.keepalive_batch
            )
            for connection in due:
                if await self.store.record_expiring(connection.tenant, connection.connection_id, version=connection.version, time=now):
                    announced += 1
        if announced:
            self.events.poke()
        return announced

    async def drain(self, timeout: float) -> None:
        """Stop starting refreshes and let the running ones persist (bounded), for shutdown."""
        self._draining = True
        await self.events.close()
        if self._detached:
            await asyncio.wait(set(self._detached), timeout=timeout)


async def _repeatable(call: Awaitable[T]) -> T:
    """Await an upstream request that is safe to repeat (a read, an RFC 7009 revocation): an answer
    lost after sending is then a provider to retry, UNAVAILABLE, not an unknown outcome."""
    try:
        return await call
    except OutcomeUnknown as lost:
        raise ProviderUnavailable(
            "the provider did not answer; the request is safe to repeat", metadata=lost.metadata, retry_after=1.0
        ) from None


def _retrieve_outcome(task: asyncio.Task[Any]) -> None:
    """Retrieve a detached task's outcome, also when its caller gave up, so asyncio never reports
    "Task exception was never retrieved". An expected failure (the one any waiting caller received)
    is logged at INFO by its reason only; an unexpected one at ERROR, once, with its traceback."""
    if task.cancelled():
        return
    error = task.exception()
    if error is None:
        return
    if isinstance(error, GatewayError):
        log.info("a detached refresh or code exchange failed: %s (provider %s)", error.reason, error.metadata.get("provider", "?"))
    else:
        log.error("a detached refresh or code exchange failed unexpectedly", exc_info=error)


def _require_active(connection: StoredConnection) -> None:
    metadata = {"provider": connection.provider_id}
    if connection.status is ConnectionStatus.REVOKED:
        raise ConnectionRevoked("the connection was revoked", metadata=metadata)
    if connection.status is ConnectionStatus.REAUTH_REQUIRED:
        _, _, upstream_code = connection.status_reason.partition(":")
        if upstream_code:
            metadata["upstream_code"] = upstream_code
        raise ReauthRequired("the connection must be authorized again", metadata=metadata)


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
