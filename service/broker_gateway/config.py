"""Typed configuration: a TOML file, a few environment overrides, and secrets by reference.

Any string setting of the form ``env:NAME`` or ``file:/path`` is replaced by that environment variable
or file's content (trailing newline removed), so secrets stay out of the file. Loading reports every
problem at once (``ConfigError.problems``), which ``broker-gateway check-config`` prints.

Environment overrides: ``BROKER_GATEWAY_LISTEN``, ``BROKER_GATEWAY_STORE_PATH``, and
``BROKER_GATEWAY_ENCRYPTION_KEYS`` (``id:base64key,...``, the first encrypts).

The store is SQLite at ``[store] path`` unless ``[store] url`` names a PostgreSQL database (giving both
is an error). The URL is libpq's, so the ``PG*`` variables, ``sslmode`` and ``.pgpass`` apply; its
password may itself be a reference (``postgresql://gw:env:GW_DB_PASSWORD@db/gw``), or the whole URL one.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .callers import CallerConfig, Permission
from .errors import ConfigError
from .ratelimit import OnUnavailable
from .references import UnresolvedReference, resolve_reference
from .store.crypto import KeyringError, decode_key
from .store.url import password_reference, with_password
from .tls import TlsConfig, tls_problems
from .watch import EventSettings

DEFAULT_LISTEN = "127.0.0.1:50051"


@dataclass(frozen=True)
class ServerConfig:
    listen: str = DEFAULT_LISTEN
    #: Server reflection lets grpcurl work without proto files; turn it off on a public port.
    reflection: bool = True
    max_receive_message_bytes: int = 256 * 1024
    max_concurrent_rpcs: int | None = None
    shutdown_grace_seconds: float = 20.0
    #: A connection with no call for this long is closed (GOAWAY), so idle clients hold no socket.
    max_connection_idle_seconds: float = 300.0
    #: Every connection is closed after about this long (clients reconnect), then given the grace
    #: below to finish its calls: at least the longest deadline a call gets (handler_wrapper.MAX_DEADLINE).
    max_connection_age_seconds: float = 1800.0
    max_connection_age_grace_seconds: float = 30.0
    #: Concurrent calls on one connection (HTTP/2 streams); a client queues any beyond.
    max_concurrent_streams: int = 128
    #: TLS on the gRPC port ([server.tls]); plaintext without it.
    tls: TlsConfig | None = None
    #: Listening beyond loopback needs callers and TLS, unless these say otherwise explicitly.
    allow_unauthenticated: bool = False
    allow_plaintext: bool = False
    #: Gateway processes sharing the port (``serve --workers``); one process uses one core.
    workers: int = 1


@dataclass(frozen=True)
class ProviderConfig:
    """One provider entry: what callers name (``id``), its registered ``type``, and its settings."""

    id: str
    type: str
    redirect_uris: tuple[str, ...]
    settings: Mapping[str, Any] = field(repr=False)
    #: Allows plain-http endpoints; meant only for loopback sandboxes and tests.
    allow_insecure_http: bool = False


@dataclass(frozen=True)
class RateLimitsConfig:
    """``[rate_limits]``: upstream rate limits shared by every replica through Redis (ratelimit.py)."""

    url: str = field(repr=False)  # may carry a password
    on_unavailable: OnUnavailable = OnUnavailable.REFUSE
    #: Replicas of the deployment; with ``local-share`` each process sends limit / (replicas x workers).
    replicas: int = 1


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: the Prometheus scrape endpoint (metrics_export.py); OTLP is set by ``OTEL_*``."""

    #: HOST:PORT of the scrape endpoint (path ``/metrics``); None: no endpoint.
    listen: str | None = None
    #: How often the connections gauge is counted again in the store (scrapes read the last count).
    connections_interval_seconds: float = 15.0


#: ``[logging] format`` (and ``--log-format``): human-readable lines, or one JSON object per line.
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class LoggingConfig:
    format: str = "text"


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
    events: EventSettings = field(default_factory=EventSettings)


@dataclass(frozen=True)
class Config:
    server: ServerConfig
    store_path: str
    encryption_keys: tuple[tuple[str, bytes], ...] = field(repr=False)
    providers: tuple[ProviderConfig, ...]
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    #: Who may call; none configured means every call is the anonymous caller of the default tenant.
    callers: tuple[CallerConfig, ...] = ()
    #: Where audit records go as JSON lines; without it, to the log (logger broker_gateway.audit).
    audit_file: str | None = None
    #: A PostgreSQL URL (``[store] url``), references resolved; None means SQLite at ``store_path``.
    store_url: str | None = field(default=None, repr=False)
    #: None: every process keeps its own rate limits in memory.
    rate_limits: RateLimitsConfig | None = None
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


def resolve_secret(value: str, where: str, problems: list[str]) -> str:
    """Replace an ``env:`` or ``file:`` reference by what it names. An unresolvable reference is a
    problem and stays as it is, so checks further on do not report it a second time."""
    try:
        return resolve_reference(value)
    except UnresolvedReference as error:
        problems.append(f"{where}: {error}")
        return value


def _resolve_all(value: Any, where: str, problems: list[str]) -> Any:
    if isinstance(value, str):
        return resolve_secret(value, where, problems)
    if isinstance(value, dict):
        return {key: _resolve_all(item, f"{where}.{key}", problems) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve_all(item, f"{where}[{index}]", problems) for index, item in enumerate(value)]
    return value


def _redirect_uri_problems(uri: Any, where: str) -> list[str]:
    if not isinstance(uri, str):
        return [f"{where}: expected a string"]
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment or "#" in uri:
        return [f"{where}: expected an absolute http(s) URI without a fragment"]
    return []


def _providers(entries: Any, problems: list[str]) -> tuple[ProviderConfig, ...]:
    if not isinstance(entries, list):
        problems.append("providers: expected an array of tables ([[providers]])")
        return ()
    providers: list[ProviderConfig] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"providers[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a table")
            continue
        provider_id, provider_type = entry.get("id"), entry.get("type")
        if not isinstance(provider_id, str) or not provider_id:
            problems.append(f"{where}.id: required")
            continue
        where = f"providers[{provider_id}]"
        if provider_id in seen:
            problems.append(f"{where}: the id is used twice")
        seen.add(provider_id)
        if not isinstance(provider_type, str) or not provider_type:
            problems.append(f"{where}.type: required")
            continue
        redirect_uris = entry.get("redirect_uris", [])
        if not isinstance(redirect_uris, list) or not redirect_uris:
            problems.append(f"{where}.redirect_uris: expected a non-empty list")
            redirect_uris = []
        for position, uri in enumerate(redirect_uris):
            problems.extend(_redirect_uri_problems(uri, f"{where}.redirect_uris[{position}]"))
        settings = {k: v for k, v in entry.items() if k not in ("id", "type", "redirect_uris", "allow_insecure_http")}
        providers.append(
            ProviderConfig(
                id=provider_id,
                type=provider_type,
                redirect_uris=tuple(u for u in redirect_uris if isinstance(u, str)),
                settings=_resolve_all(settings, where, problems),
                allow_insecure_http=_flag(entry, "allow_insecure_http", where, problems),
            )
        )
    return tuple(providers)


_CALLER_KEYS = frozenset({"id", "tenant", "key_sha256", "tls_subject", "permissions"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


#: The tables and keys a configuration may hold, beyond those whose own readers check them (providers'
#: settings are their provider type's; [[callers]], [server.tls], [store], [audit], [rate_limits],
#: [metrics], [logging] and [events] check their own keys).
_TOP_LEVEL = frozenset({"server", "store", "encryption", "refresh", "limits", "providers", "callers", "audit", "rate_limits",
                        "metrics", "logging", "events"})
_SERVER_KEYS = frozenset({
    "listen", "reflection", "max_receive_message_bytes", "max_concurrent_rpcs", "shutdown_grace_seconds",
    "max_connection_idle_seconds", "max_connection_age_seconds", "max_connection_age_grace_seconds",
    "max_concurrent_streams", "tls", "allow_unauthenticated", "allow_plaintext", "workers",
})
_REFRESH_KEYS = frozenset({"margin_seconds", "budget_seconds", "keepalive_interval_seconds"})
_LIMITS_KEYS = frozenset({"max_pending_authorizations", "max_pending_authorizations_per_tenant"})


def unknown_keys(table: Mapping[str, Any], known: frozenset[str], where: str, problems: list[str]) -> None:
    """Report every key of ``table`` that is not ``known``, with the known key it was probably meant
    to be: a misspelt setting silently left at its default is worse than a refused file."""
    if not isinstance(table, Mapping):
        return  # the table's own reader reports what it should have been
    for key in sorted(set(table) - known):
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"{where + '.' if where else ''}{key}: unknown setting{hint}")


def _callers(entries: Any, problems: list[str], *, mutual_tls: bool) -> tuple[CallerConfig, ...]:
    """The ``[[callers]]`` entries; every problem of every entry is reported, none of them repeating a
    key hash (a hash is not the key, but it has no business in a log either)."""
    if not isinstance(entries, list):
        problems.append("callers: expected an array of tables ([[callers]])")
        return ()
    callers: list[CallerConfig] = []
    ids: set[str] = set()
    hashes: set[str] = set()
    subjects: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"callers[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a table")
            continue
        caller_id, tenant = entry.get("id"), entry.get("tenant")
        if not isinstance(caller_id, str) or not _NAME.fullmatch(caller_id):
            problems.append(f"{where}.id: required: letters, digits and . _ : @ / - (at most 128)")
            continue
        where = f"callers[{caller_id}]"
        if caller_id in ids:
            problems.append(f"{where}: the id is used twice")
        ids.add(caller_id)
        unknown_keys(entry, _CALLER_KEYS, where, problems)
        if not isinstance(tenant, str) or not _NAME.fullmatch(tenant):
            problems.append(f"{where}.tenant: required: letters, digits and . _ : @ / - (at most 128)")
            tenant = ""
        key_hash, subject = entry.get("key_sha256"), entry.get("tls_subject")
        if key_hash is None and subject is None:
            problems.append(f"{where}: give key_sha256 (an API key's hash) or tls_subject (a client certificate)")
        if key_hash is not None:
            if not isinstance(key_hash, str) or not _SHA256_HEX.fullmatch(key_hash):
                problems.append(f"{where}.key_sha256: expected 64 hex digits (broker-gateway new-caller-key prints one)")
                key_hash = None
            else:
                key_hash = key_hash.lower()
                if key_hash in hashes:
                    problems.append(f"{where}.key_sha256: another caller has the same key")
                hashes.add(key_hash)
        if subject is not None:
            if not isinstance(subject, str) or not subject:
                problems.append(f"{where}.tls_subject: expected a non-empty string")
                subject = None
            elif not mutual_tls:
                problems.append(f"{where}.tls_subject: needs [server.tls] client_ca (mutual TLS)")
            elif subject in subjects:
                problems.append(f"{where}.tls_subject: another caller has the same subject")
            if subject:
                subjects.add(subject)
        permissions = _permissions(entry.get("permissions"), where, problems)
        callers.append(CallerConfig(caller_id, tenant, permissions, key_hash, subject))
    return tuple(callers)


def _permissions(value: Any, where: str, problems: list[str]) -> frozenset[Permission]:
    known = {permission.value: permission for permission in Permission}
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.append(f"{where}.permissions: expected a list out of {', '.join(known)}")
        return frozenset()
    for item in value:
        if item not in known:
            problems.append(f"{where}.permissions: unknown permission {item!r} (known: {', '.join(known)})")
    return frozenset(known[item] for item in value if item in known)


def _flag(table: Mapping[str, Any], key: str, where: str, problems: list[str]) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        problems.append(f"{where}.{key}: expected true or false")
        return False
    return value


_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def address_problem(address: Any) -> str | None:
    """Why ``address`` is not a HOST:PORT listen address (an IPv4 address, ``[IPv6]`` or a host name, and
    a port from 0 to 65535), or None when it is one."""
    expected = "expected HOST:PORT, e.g. 127.0.0.1:50051 or [::1]:50051"
    if not isinstance(address, str):
        return expected
    host, colon, port = address.rpartition(":")
    if not colon or not port.isascii() or not port.isdigit() or int(port) > 65535:
        return f"{expected} (the port is a number from 0 to 65535)"
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return expected
        return None
    if not _HOSTNAME.fullmatch(host):
        return expected
    return None


def _address(value: Any, where: str, problems: list[str], default: str) -> str:
    problem = address_problem(value)
    if problem is not None:
        problems.append(f"{where}: {problem}")
        return default
    return str(value)


def _keys(entries: Any, problems: list[str]) -> tuple[tuple[str, bytes], ...]:
    override = os.environ.get("BROKER_GATEWAY_ENCRYPTION_KEYS")
    if override is not None:
        entries = [dict(zip(("id", "key"), item.split(":", 1))) for item in override.split(",") if item]
    if not isinstance(entries, list) or not entries:
        problems.append("encryption.keys: at least one key is required ([[encryption.keys]] with id and key)")
        return ()
    keys: list[tuple[str, bytes]] = []
    for index, entry in enumerate(entries):
        where = f"encryption.keys[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not isinstance(entry.get("key"), str):
            problems.append(f"{where}: expected a table with string id and key")
            continue
        unknown_keys(entry, frozenset({"id", "key"}), where, problems)
        known = len(problems)
        secret = resolve_secret(entry["key"], f"{where}.key", problems)
        if len(problems) > known:
            continue
        try:
            keys.append((entry["id"], decode_key(secret)))
        except KeyringError as error:
            problems.append(f"{where}.key: {error}")
    if len({key_id for key_id, _ in keys}) != len(keys):
        problems.append("encryption.keys: key ids must be unique")
    return tuple(keys)


def _number(table: Mapping[str, Any], key: str, default: float, where: str, problems: list[str]) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        problems.append(f"{where}.{key}: expected a positive number")
        return default
    return float(value)


def _count(table: Mapping[str, Any], key: str, default: int, where: str, problems: list[str]) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        problems.append(f"{where}.{key}: expected a positive integer")
        return default
    return value


def _table(document: Mapping[str, Any], name: str, problems: list[str]) -> Mapping[str, Any]:
    """The table ``[name]`` (empty when absent); anything else is a problem, read as empty."""
    table = document.get(name, {})
    if not isinstance(table, dict):
        problems.append(f"{name}: expected a table ([{name}])")
        return {}
    return table


def parse_config(document: Mapping[str, Any], *, base_dir: Path = Path(".")) -> Config:
    """A Config from a parsed TOML document; raises ConfigError listing every problem."""
    config, problems = _parse(document, base_dir)
    if problems:
        raise ConfigError(problems)
    return config


def _parse(document: Mapping[str, Any], base_dir: Path) -> tuple[Config, list[str]]:
    """The config with whatever parts are valid, and every problem found."""
    problems: list[str] = []
    server_table = _table(document, "server", problems)
    store_table = _table(document, "store", problems)
    refresh_table = _table(document, "refresh", problems)
    limits_table = _table(document, "limits", problems)
    unknown_keys(document, _TOP_LEVEL, "", problems)
    for name, table, known in (("server", server_table, _SERVER_KEYS), ("refresh", refresh_table, _REFRESH_KEYS),
                               ("limits", limits_table, _LIMITS_KEYS)):
        unknown_keys(table, known, name, problems)
    defaults = ServerConfig()
    tls = _tls(server_table.get("tls"), problems)
    listen_override = os.environ.get("BROKER_GATEWAY_LISTEN")
    server = ServerConfig(
        listen=_address(
            server_table.get("listen", DEFAULT_LISTEN) if listen_override is None else listen_override,
            "server.listen" if listen_override is None else "BROKER_GATEWAY_LISTEN",
            problems,
            DEFAULT_LISTEN,
        ),
        reflection=_flag(server_table, "reflection", "server", problems) if "reflection" in server_table else True,
        max_receive_message_bytes=_count(
            server_table, "max_receive_message_bytes", defaults.max_receive_message_bytes, "server", problems
        ),
        max_concurrent_rpcs=(
            _count(server_table, "max_concurrent_rpcs", 1, "server", problems) if "max_concurrent_rpcs" in server_table else None
        ),
        shutdown_grace_seconds=_number(server_table, "shutdown_grace_seconds", defaults.shutdown_grace_seconds, "server", problems),
        max_connection_idle_seconds=_number(
            server_table, "max_connection_idle_seconds", defaults.max_connection_idle_seconds, "server", problems
        ),
        max_connection_age_seconds=_number(
            server_table, "max_connection_age_seconds", defaults.max_connection_age_seconds, "server", problems
        ),
        max_connection_age_grace_seconds=_number(
            server_table, "max_connection_age_grace_seconds", defaults.max_connection_age_grace_seconds, "server", problems
        ),
        max_concurrent_streams=_count(server_table, "max_concurrent_streams", defaults.max_concurrent_streams, "server", problems),
        tls=tls,
        allow_unauthenticated=_flag(server_table, "allow_unauthenticated", "server", problems),
        allow_plaintext=_flag(server_table, "allow_plaintext", "server", problems),
        workers=_count(server_table, "workers", defaults.workers, "server", problems),
    )
    store_path = os.environ.get("BROKER_GATEWAY_STORE_PATH", store_table.get("path", ".broker-gateway/gateway.db"))
    if not isinstance(store_path, str) or not store_path:
        problems.append("store.path: expected a file path")
        store_path = ".broker-gateway/gateway.db"
    if store_path != ":memory:" and not Path(store_path).is_absolute():
        store_path = str(base_dir / store_path)
    store_url = _store_url(store_table, problems)
    settings = GatewaySettings(
        refresh_margin=timedelta(
            seconds=_number(refresh_table, "margin_seconds", GatewaySettings.refresh_margin.total_seconds(), "refresh", problems)
        ),
        upstream_budget=_number(refresh_table, "budget_seconds", GatewaySettings.upstream_budget, "refresh", problems),
        keepalive_interval=_number(
            refresh_table, "keepalive_interval_seconds", GatewaySettings.keepalive_interval, "refresh", problems
        ),
        max_pending_authorizations=_count(
            limits_table, "max_pending_authorizations", GatewaySettings.max_pending_authorizations, "limits", problems
        ),
        max_pending_authorizations_per_tenant=_count(
            limits_table,
            "max_pending_authorizations_per_tenant",
            GatewaySettings.max_pending_authorizations_per_tenant,
            "limits",
            problems,
        ),
        events=_events(document.get("events", {}), problems),
    )
    config = Config(
        server=server,
        store_path=store_path,
        encryption_keys=_keys(_encryption(document.get("encryption", {}), problems).get("keys"), problems),
        providers=_providers(document.get("providers", []), problems),
        gateway=settings,
        callers=_callers(document.get("callers", []), problems, mutual_tls=tls is not None and tls.client_ca is not None),
        audit_file=_audit_file(document.get("audit", {}), base_dir, problems),
        store_url=store_url,
        rate_limits=_rate_limits(document.get("rate_limits"), problems),
        metrics=_metrics(document.get("metrics", {}), problems),
        logging=_logging(document.get("logging", {}), problems),
    )
    return config, problems


def _encryption(table: Any, problems: list[str]) -> Mapping[str, Any]:
    """``[encryption]``: only ``keys`` (``[[encryption.keys]]``)."""
    if not isinstance(table, dict):
        problems.append("encryption: expected a table ([[encryption.keys]] with id and key)")
        return {}
    unknown_keys(table, frozenset({"keys"}), "encryption", problems)
    return table


def _store_url(table: Mapping[str, Any], problems: list[str]) -> str | None:
    """``[store] url``, its references resolved; None for SQLite. Problems never quote the URL: it may
    hold a password."""
    unknown_keys(table, frozenset({"path", "url"}), "store", problems)
    url = table.get("url")
    if url is None:
        return None
    if "path" in table or "BROKER_GATEWAY_STORE_PATH" in os.environ:
        problems.append("store: give path (SQLite) or url (PostgreSQL), not both")
    if not isinstance(url, str) or not url:
        problems.append("store.url: expected a postgresql:// URL")
        return None
    known = len(problems)
    url = resolve_secret(url, "store.url", problems)
    reference = password_reference(url)
    if reference is not None:
        url = with_password(url, resolve_secret(reference, "store.url password", problems))
    if len(problems) > known:
        return None
    try:
        from .store.postgres import url_problems
    except ImportError:
        problems.append("store.url: PostgreSQL needs the driver: pip install 'broker-gateway[postgres]'")
        return None
    wrong = url_problems(url)
    problems.extend(wrong)
    return None if wrong else url


def _tls(table: Any, problems: list[str]) -> TlsConfig | None:
    """``[server.tls]``: the certificate, key and optional client CA, each inline PEM or an ``env:`` or
    ``file:`` reference, kept as given so that ``file:`` ones can be re-read when they change."""
    if table is None:
        return None
    if not isinstance(table, dict):
        problems.append("server.tls: expected a table with cert and key")
        return None
    unknown_keys(table, frozenset({"cert", "key", "client_ca"}), "server.tls", problems)
    cert, key, client_ca = table.get("cert"), table.get("key"), table.get("client_ca")
    for name, value in (("cert", cert), ("key", key)):
        if not isinstance(value, str) or not value:
            problems.append(f"server.tls.{name}: required (PEM, or an env: or file: reference)")
    if client_ca is not None and (not isinstance(client_ca, str) or not client_ca):
        problems.append("server.tls.client_ca: expected PEM, or an env: or file: reference")
    if not (isinstance(cert, str) and cert and isinstance(key, str) and key):
        return None
    config = TlsConfig(cert=cert, key=key, client_ca=client_ca if isinstance(client_ca, str) and client_ca else None)
    problems.extend(tls_problems(config))
    return config


def _audit_file(table: Any, base_dir: Path, problems: list[str]) -> str | None:
    if not isinstance(table, dict):
        problems.append("audit: expected a table")
        return None
    unknown_keys(table, frozenset({"file"}), "audit", problems)
    path = table.get("file")
    if path is None:
        return None
    if not isinstance(path, str) or not path:
        problems.append("audit.file: expected a file path")
        return None
    return path if Path(path).is_absolute() else str(base_dir / path)


_EVENTS_KEYS = frozenset(
    {"retention_seconds", "expiring_lead_seconds", "heartbeat_interval_seconds", "max_watchers_per_caller"}
)


def _events(table: Any, problems: list[str]) -> EventSettings:
    """``[events]``: connection events and WatchConnections (watch.py)."""
    defaults = EventSettings()
    if not isinstance(table, dict):
        problems.append("events: expected a table")
        return defaults
    unknown_keys(table, _EVENTS_KEYS, "events", problems)
    return EventSettings(
        retention=timedelta(
            seconds=_number(table, "retention_seconds", defaults.retention.total_seconds(), "events", problems)
        ),
        expiring_lead=timedelta(
            seconds=_number(table, "expiring_lead_seconds", defaults.expiring_lead.total_seconds(), "events", problems)
        ),
        heartbeat_interval=_number(table, "heartbeat_interval_seconds", defaults.heartbeat_interval, "events", problems),
        max_watchers_per_caller=_count(table, "max_watchers_per_caller", defaults.max_watchers_per_caller, "events", problems),
    )


_RATE_LIMITS_KEYS = frozenset({"url", "on_unavailable", "replicas"})
_REDIS_SCHEMES = ("redis", "rediss")


def _rate_limits(table: Any, problems: list[str]) -> RateLimitsConfig | None:
    """``[rate_limits]``, checked strictly: an unnoticed typo here would silently leave limits per process."""
    if table is None:
        return None
    if not isinstance(table, dict):
        problems.append("rate_limits: expected a table")
        return None
    unknown_keys(table, _RATE_LIMITS_KEYS, "rate_limits", problems)
    url = _redis_url(table.get("url"), problems)
    policies = {policy.value: policy for policy in OnUnavailable}
    policy = table.get("on_unavailable", OnUnavailable.REFUSE.value)
    if policy not in policies:
        problems.append(f"rate_limits.on_unavailable: expected one of {', '.join(repr(name) for name in policies)}")
        policy = OnUnavailable.REFUSE.value
    replicas = 1
    if policies[policy] is OnUnavailable.LOCAL_SHARE:
        if "replicas" not in table:
            problems.append("rate_limits.replicas: required with on_unavailable = 'local-share' (how many replicas share a limit)")
        replicas = _count(table, "replicas", 1, "rate_limits", problems)
    elif "replicas" in table:
        problems.append("rate_limits.replicas: only used with on_unavailable = 'local-share'")
    return None if url is None else RateLimitsConfig(url, policies[policy], replicas)


def _redis_url(value: Any, problems: list[str]) -> str | None:
    if not isinstance(value, str) or not value:
        problems.append('rate_limits.url: required, e.g. "redis://host:6379/0" (or an env: or file: reference)')
        return None
    known = len(problems)
    url = resolve_secret(value, "rate_limits.url", problems)
    if len(problems) > known:
        return None
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    database = parts.path.lstrip("/")
    if parts.scheme not in _REDIS_SCHEMES or not parts.hostname or not port_ok or not (database == "" or database.isdigit()):
        problems.append("rate_limits.url: expected redis://[:password@]host[:port][/db] (or rediss:// for TLS)")
        return None
    return url


def host_and_port(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9464`` for IPv6) split; ValueError when it is not that."""
    host, separator, port = listen.rpartition(":")
    if not separator or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(listen)
    return host.strip("[]"), int(port)


def _metrics(table: Any, problems: list[str]) -> MetricsConfig:
    if not isinstance(table, dict):
        problems.append("metrics: expected a table")
        return MetricsConfig()
    unknown_keys(table, frozenset({"listen", "connections_interval_seconds"}), "metrics", problems)
    listen = table.get("listen")
    if listen is not None:
        try:
            host_and_port(listen if isinstance(listen, str) else "")
        except ValueError:
            problems.append('metrics.listen: expected HOST:PORT, e.g. "127.0.0.1:9464"')
            listen = None
    interval = _number(table, "connections_interval_seconds", MetricsConfig.connections_interval_seconds, "metrics", problems)
    return MetricsConfig(listen=listen, connections_interval_seconds=interval)


def _logging(table: Any, problems: list[str]) -> LoggingConfig:
    if not isinstance(table, dict):
        problems.append("logging: expected a table")
        return LoggingConfig()
    unknown_keys(table, frozenset({"format"}), "logging", problems)
    log_format = table.get("format", "text")
    if log_format not in LOG_FORMATS:
        problems.append(f"logging.format: expected one of {', '.join(repr(name) for name in LOG_FORMATS)}")
        log_format = "text"
    return LoggingConfig(format=log_format)


def read_config(path: str | Path) -> tuple[Config | None, list[str]]:
    """Read a TOML configuration file: the config (partial when there are problems, None when the file
    cannot be read) and every problem found. Relative store paths are relative to the file."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text())
    except OSError as error:
        return None, [f"{path}: {error.strerror}"]
    except tomllib.TOMLDecodeError as error:
        return None, [f"{path}: not valid TOML: {error}"]
    return _parse(document, path.parent)


def load_config(path: str | Path) -> Config:
    """Read and check a TOML configuration file; raises ConfigError listing every problem."""
    config, problems = read_config(path)
    if problems or config is None:
        raise ConfigError(problems)
    return config
