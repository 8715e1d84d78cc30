"""Keeping connections' tokens usable: refresh, single flight, leases and keep-alive.

The flows (gateway.py) ask this module for a usable token set; it refreshes ahead of expiry following
docs/design/refresh.md: single flight in the process, a lease in the store across processes, a
re-read after taking the lease, a version-checked write, and the refresh detached from the caller's
deadline (detached.py) so a caller giving up never loses a rotated token. A token the upstream
refuses gets one forced refresh and one retry; a grant the provider no longer accepts ends the
connection REAUTH_REQUIRED. Keep-alive refreshes idle connections before their refresh token expires
unused, once per interval for the whole deployment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TypeVar

from opentelemetry import trace

from . import deadlines
from .config import GatewaySettings
from .detached import DetachedWork
from .errors import (
    AccessTokenRejected,
    ConnectionNotFound,
    ConnectionRevoked,
    GatewayError,
    InvalidGrant,
    OutcomeUnknown,
    ProviderUnavailable,
    ReauthRequired,
    RefreshInProgress,
    StoreUnavailable,
)
from .metrics import GatewayMetrics, RefreshOutcome
from .provider import ConnectionCredentials, Provider, TokenSet
from .store.base import Change, ConnectionStatus, EventType, Store, StoredConnection
from .token_cache import TokenCache
from .vault import Vault
from .watch import EventHub

T = TypeVar("T")
log = logging.getLogger(__name__)

#: The store lease that makes keep-alive one job for the whole deployment (TokenLifecycle.keep_alive).
#: Its tenant is one no caller's can be (tenant names begin with a letter or a digit), so it never
#: meets the refresh lease of a connection.
KEEPALIVE_LEASE = ("#jobs", "keep-alive")


class TokenLifecycle:
    """The tokens of a gateway's connections, kept usable: refreshed when due (once per connection at
    a time, in the process and across the deployment), refreshed once more when the upstream refuses
    one, and kept alive while idle."""

    def __init__(
        self,
        *,
        providers: Mapping[str, Provider],
        store: Store,
        vault: Vault,
        clock: Callable[[], datetime],
        settings: GatewaySettings,
        tracer: trace.Tracer,
        token_cache: TokenCache,
        detached: DetachedWork,
        events: EventHub,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.providers = providers
        self.store = store
        self.vault = vault
        self.clock = clock
        self.settings = settings
        self.tracer = tracer
        self.token_cache = token_cache
        self.detached = detached
        self.events = events
        self.metrics = metrics
        self._inflight: dict[tuple[str, str, bool], asyncio.Task[StoredConnection]] = {}
        self._draining = False

    def provider_of(self, connection: StoredConnection) -> Provider:
        """The connection's provider; REAUTH_REQUIRED when it is no longer configured."""
        provider = self.providers.get(connection.provider_id)
        if provider is None:
            raise ReauthRequired(
                f"provider {connection.provider_id} is no longer configured", metadata={"provider": connection.provider_id}
            )
        return provider

    async def call_with_token(
        self,
        connection: StoredConnection,
        call: Callable[[ConnectionCredentials], Awaitable[T]],
        opened: TokenSet | None = None,
    ) -> T:
        """Call upstream with a fresh token; a token the upstream refuses gets one forced refresh and
        one retry (docs/design/refresh.md), never a loop. ``opened``: the connection's tokens, already opened."""
        connection, tokens = await self.usable_tokens(connection, opened)
        deadlines.require_budget()
        try:
            return await call(ConnectionCredentials(tokens, connection.metadata))
        except AccessTokenRejected:
            if not self.provider_of(connection).capabilities.refresh or not tokens.refresh_token:
                raise
        connection = await self.refresh(connection, force=True)
        tokens = self.token_cache.open(connection)
        return await call(ConnectionCredentials(tokens, connection.metadata))

    async def usable_tokens(
        self, connection: StoredConnection, opened: TokenSet | None = None
    ) -> tuple[StoredConnection, TokenSet]:
        """The connection and its tokens, refreshed first when the access token is close to expiry.
        ``opened``: the connection's tokens, already opened (the token cache's hit: nothing more is
        done then unless a refresh is due)."""
        require_active(connection)
        tokens = self.token_cache.open(connection) if opened is None else opened
        if not self._needs_refresh(tokens):
            return connection, tokens
        provider = self.provider_of(connection)
        if not provider.capabilities.refresh or not tokens.refresh_token:
            if tokens.expires_within(self.clock(), timedelta(0)):
                raise ReauthRequired(
                    "the access token expired and cannot be refreshed", metadata={"provider": connection.provider_id}
                )
            return connection, tokens
        connection = await self.refresh(connection, force=False)
        return connection, self.token_cache.open(connection)

    def _needs_refresh(self, tokens: TokenSet) -> bool:
        """Due within the refresh margin, or a quarter of the token's lifetime when that is shorter
        (divided only then: every token read asks)."""
        expire = tokens.access_token_expire_time
        if expire is None:
            return False
        margin, issued = self.settings.refresh_margin, tokens.issue_time
        if issued is not None and expire - issued < 4 * margin:
            margin = (expire - issued) / 4
        return tokens.expires_within(self.clock(), margin)

    async def refresh(self, connection: StoredConnection, *, force: bool) -> StoredConnection:
        """Join or start the one refresh of this connection in this process, and wait for it within
        the caller's deadline; the refresh itself runs to completion either way. Without ``force``,
        a refresh finds nothing to do when the token is no longer due once the lease is held."""
        deadlines.require_budget()  # a refresh nobody can wait for is not started
        key = (connection.tenant, connection.connection_id, force)
        task = self._inflight.get(key)
        if task is None:
            if self._draining:
                raise RefreshInProgress("the gateway is shutting down", retry_after=1.0)
            task = self.detached.start(lambda: self._refresh_under_lease(connection, force=force))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await self.detached.wait(task)

    def stop_refreshing(self) -> None:
        """Start no more refreshes (shutdown); the running ones go on to store their outcome."""
        self._draining = True

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
                require_active(current)
                tokens = self.vault.open_tokens(current)
                if current.version != seen.version or (not force and not self._needs_refresh(tokens)):
                    span.set_attribute("broker_gateway.refresh.skipped", True)
                    return current  # refreshed meanwhile by another caller or process
                provider = self.provider_of(current)
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

    # -- keep-alive --------------------------------------------------------------------------------

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
        for provider_id, provider in self.providers.items():
            window = provider.keepalive_window
            if window is None or not provider.capabilities.refresh:
                continue
            due = await self.store.connections_to_keep_alive(
                provider_id, refresh_expiring_before=self.clock() + window, limit=self.settings.keepalive_batch
            )
            for connection in due:
                try:
                    await self.refresh(connection, force=True)
                    refreshed += 1
                except GatewayError as error:
                    log.warning("keep-alive refresh of %s failed: %s", connection.connection_id, error.reason)
        return refreshed

    async def _announce_expiring(self) -> int:
        """Record REFRESH_TOKEN_EXPIRING for every ACTIVE connection whose refresh token expires within
        the lead time, once per refresh token (the store checks), a batch of those not yet announced per
        pass; run after the keep-alive pass, so a connection that pass renewed is not announced. The
        number recorded."""
        now = self.clock()
        announced = 0
        for provider_id in self.providers:
            due = await self.store.connections_to_announce(
                provider_id, refresh_expiring_before=now + self.settings.events.expiring_lead, limit=self.settings.keepalive_batch
            )
            for connection in due:
                if await self.store.record_expiring(connection.tenant, connection.connection_id, version=connection.version, time=now):
                    announced += 1
        if announced:
            self.events.poke()
        return announced


def require_active(connection: StoredConnection) -> None:
    """Refuse a connection whose tokens may not be used: revoked, or waiting for a new authorization."""
    if connection.status is ConnectionStatus.ACTIVE:
        return
    metadata = {"provider": connection.provider_id}
    if connection.status is ConnectionStatus.REVOKED:
        raise ConnectionRevoked("the connection was revoked", metadata=metadata)
    if connection.status is ConnectionStatus.REAUTH_REQUIRED:
        _, _, upstream_code = connection.status_reason.partition(":")
        if upstream_code:
            metadata["upstream_code"] = upstream_code
        raise ReauthRequired("the connection must be authorized again", metadata=metadata)
