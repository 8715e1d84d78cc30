"""Assembling a gateway from its configuration: plugins, providers, store, keyring and HTTP client.

Used by ``serve``, ``sandbox``, ``check-config`` and the tests alike, so they all run the same checks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pluggy
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from . import __version__, tracing
from .config import Config, RateLimitsConfig, unknown_keys
from .errors import ConfigError, TokenDecryptFailed
from .gateway import ConfiguredProvider, Gateway
from .light_spans import gateway_tracer
from .metrics import GatewayMetrics
from .metrics_export import MetricsExport, start_metrics
from .plugins import plugin_manager, provider_types
from .provider import Provider, ProviderContext
from .ratelimit import Limiter, RateLimiter, RedisRateLimiter
from .store import open_store
from .store.base import Store
from .store.crypto import Keyring, envelope_key_id, key_check_problems, key_check_value
from .upstream import UpstreamClient
from .vault import Vault

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def http_client() -> httpx.AsyncClient:
    """The shared upstream client: certificates always verified, redirects never followed."""
    return httpx.AsyncClient(
        verify=True,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": f"broker-gateway/{__version__}"},
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )


def instantiate_providers(
    config: Config,
    registry: dict[str, type[Provider]],
    http: httpx.AsyncClient,
    clock: Callable[[], datetime],
    tracer: trace.Tracer | None = None,
    metrics: GatewayMetrics | None = None,
) -> list[ConfiguredProvider]:
    """Every configured provider, or a ConfigError listing every problem of every entry."""
    problems: list[str] = []
    configured: list[ConfiguredProvider] = []
    for entry in config.providers:
        provider_class = registry.get(entry.type)
        if provider_class is None:
            known = ", ".join(sorted(registry)) or "none"
            problems.append(f"providers[{entry.id}].type: no provider type {entry.type!r} is registered (registered: {known})")
            continue
        if provider_class.settings_keys is not None:
            unknown_keys(entry.settings, provider_class.settings_keys, f"providers[{entry.id}]", problems)
        context = ProviderContext(
            provider_id=entry.id,
            http=UpstreamClient(http, entry.id, tracer=tracer, meter=None if metrics is None else metrics.upstream(entry.id)),
            clock=clock,
            logger=logging.getLogger(f"broker_gateway.providers.{entry.id}"),
            allow_insecure_http=entry.allow_insecure_http,
        )
        try:
            provider = provider_class(context, entry.settings)
        except ConfigError as error:
            problems.extend(f"providers[{entry.id}].{problem}" for problem in error.problems)
            continue
        configured.append(ConfiguredProvider(provider=provider, redirect_uris=entry.redirect_uris))
    issuers: dict[str, str] = {}
    for item in configured:
        issuer = item.provider.issuer
        if issuer is not None and issuer in issuers:
            # RFC 9207 §4: the mix-up defence needs every issuer to be distinct.
            problems.append(f"providers[{item.id}].issuer: the same issuer as provider {issuers[issuer]}")
        elif issuer is not None:
            issuers[issuer] = item.id
    if problems:
        raise ConfigError(problems)
    return configured


@dataclass
class Application:
    """A gateway with what it owns, so it can be closed in one call."""

    config: Config
    gateway: Gateway
    http: httpx.AsyncClient
    #: None when tracing is off (no exporter configured): nothing is instrumented then.
    tracer_provider: TracerProvider | None
    #: The tracer the gateway's own spans come from (``light_spans.gateway_tracer``); None when off.
    tracer: trace.Tracer | None
    #: The instruments and where they are exported; both None when metrics are off.
    metrics: GatewayMetrics | None = None
    metrics_export: MetricsExport | None = None

    async def close(self) -> None:
        await self.gateway.drain(timeout=self.config.gateway.upstream_budget)
        for item in self.gateway.providers.values():
            await item.provider.stop()
        await self.http.aclose()
        await self.gateway.store.close()
        await self.gateway.rate_limiter.close()
        if self.metrics_export is not None:
            self.metrics_export.close()


async def build_application(
    config: Config,
    *,
    extra_plugins: Sequence[object] = (),
    manager: pluggy.PluginManager | None = None,
    clock: Callable[[], datetime] = utc_now,
    tracer_provider: TracerProvider | None = None,
) -> Application:
    """Load plugins, instantiate and start providers, open the store and check the keyring. Tracing
    is on when ``tracer_provider`` is given or the environment configures an exporter; metrics when
    ``[metrics] listen`` or ``OTEL_METRICS_EXPORTER`` asks for them (metrics_export.py)."""
    manager = manager or plugin_manager(extra_plugins)
    tracer_provider = tracer_provider or tracing.tracer_provider_from_environment()
    tracer = None if tracer_provider is None else gateway_tracer(tracer_provider)
    http = http_client()
    metrics_export = None
    try:
        metrics_export = start_metrics(config.metrics.listen)
        metrics = None if metrics_export is None else GatewayMetrics(metrics_export.provider)
        providers = instantiate_providers(config, provider_types(manager), http, clock, tracer, metrics)
        for item in providers:
            await item.provider.start()
        keyring = Keyring(config.encryption_keys)
        store = await open_store(config)
        await store.purge_pending(clock())  # expired verifiers must not hold back a key's removal
        await store.purge_requests(clock() - config.gateway.request_replay_window)
        missing = await store.key_ids_in_use() - keyring.key_ids
        if missing:
            await store.close()
            raise ConfigError(
                [f"encryption.keys: stored tokens were sealed with keys not in the keyring: {', '.join(sorted(missing))}"]
            )
        try:
            await check_keys(store, config.encryption_keys)
        except ConfigError:
            await store.close()
            raise
        rate_limiter = rate_limiter_of(config) if metrics is None else metrics.counting(rate_limiter_of(config))
        await rate_limiter.start()
    except BaseException:
        await http.aclose()
        if metrics_export is not None:
            metrics_export.close()
        raise
    gateway = Gateway(
        providers=providers,
        store=store,
        vault=Vault(keyring),
        clock=clock,
        settings=config.gateway,
        tracer=tracer or trace.NoOpTracer(),
        rate_limiter=rate_limiter,
        metrics=metrics,
    )
    return Application(config=config, gateway=gateway, http=http, tracer_provider=tracer_provider, tracer=tracer,
                       metrics=metrics, metrics_export=metrics_export)


async def check_keys(store: Store, keys: Sequence[tuple[str, bytes]]) -> None:
    """Refuse keys whose bytes differ from those the store was used with under the same id, and record
    the check values of keys it has not seen yet."""
    recorded = await store.key_check_values()
    problems = key_check_problems(recorded, keys)
    unproven = (await store.key_ids_in_use()) - recorded.keys()
    if not problems and unproven:
        problems = await _opening_problems(store, keys, unproven)
    if problems:
        raise ConfigError(problems)
    await store.record_key_check_values({key_id: key_check_value(key) for key_id, key in keys})


async def _opening_problems(store: Store, keys: Sequence[tuple[str, bytes]], key_ids: set[str]) -> list[str]:
    """Keys that already seal tokens but have no check value (a store from before check values): each is
    proven by opening one connection sealed under it, once, so that a wrong key is never recorded as the
    reference the right one would then be refused against."""
    vault = Vault(Keyring(keys))
    unopened = set(key_ids)
    problems = []
    async for connection in store.all_connections():  # read to the end: the generator closes itself
        key_id = None if connection.sealed_tokens is None else envelope_key_id(connection.sealed_tokens)
        if key_id not in unopened:
            continue
        unopened.discard(key_id)
        try:
            vault.open_sealed_tokens(connection)
        except TokenDecryptFailed:
            problems.append(
                f"encryption.keys: the key with id {key_id!r} does not open the tokens stored under that id "
                "(wrong bytes under a known id: configure the key they were sealed with)"
            )
    return problems


def rate_limiter_of(config: Config) -> Limiter:
    """Redis-backed limits when ``[rate_limits]`` is configured, else this process's own."""
    settings = config.rate_limits
    if settings is None:
        return RateLimiter()
    return RedisRateLimiter(settings.url, on_unavailable=settings.on_unavailable, processes=_processes(config, settings))


def _processes(config: Config, settings: RateLimitsConfig) -> int:
    """How many processes share a limit: replicas x each replica's workers."""
    return settings.replicas * config.server.workers
