"""What the gateway under test is given: its configuration, its connections and its pending states.

The gateway runs as ``broker-gateway serve --config <generated toml>`` with a ``generic-oauth2``
provider (id ``bench``) whose endpoints are the canned nginx, and a SQLite store in a temporary
directory. Connections and states are made through the gateway's own gRPC API (Authorize, then
Exchange, whose token request nginx answers with a fixed token set valid for a year), except for the
100 000 connections of the memory figure, which are written through the Store and Vault API (the same
sealing as the gateway's) because making them one by one over gRPC would take minutes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from broker_gateway.store.crypto import generate_key
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import broker_gateway_service_pb2_grpc as api_grpc

from . import okx
from .transport import PLAINTEXT, Transport
from .upstream import ACCESS_TOKEN, AUTHORIZE_PATH, REFRESH_TOKEN, SUBJECT, TOKEN_PATH, USERINFO_PATH

PROVIDER = "bench"
REDIRECT_URI = "http://127.0.0.1:9/callback"
KEY_ID = "bench-1"


@dataclass(frozen=True)
class GatewaySetup:
    """A generated configuration and where its store lives."""

    config_path: Path
    store_path: Path
    key: str
    with_okx: bool


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)  # dotted names are quoted


def _table(name: str, entries: dict[str, Any]) -> str:
    return f"[{name}]\n" + "".join(f"{_toml_key(key)} = {_toml_value(value)}\n" for key, value in entries.items())


def _array_entry(name: str, entries: dict[str, Any]) -> str:
    """One ``[[name]]`` table of an array of tables."""
    return f"[[{name}]]\n" + _table(name, entries).split("\n", 1)[1]


def bench_provider(upstream: str) -> dict[str, Any]:
    return {
        "id": PROVIDER,
        "type": "generic-oauth2",
        "redirect_uris": [REDIRECT_URI],
        "allow_insecure_http": True,  # loopback nginx
        "client_id": "bench-client",
        "client_secret": "bench-client-secret",
        "authorization_endpoint": upstream + AUTHORIZE_PATH,
        "token_endpoint": upstream + TOKEN_PATH,
        "userinfo_endpoint": upstream + USERINFO_PATH,
        "token_endpoint_auth_method": "client_secret_post",
        "scopes": ["profile"],
        "claims": {"subject": "id", "username": "username", "email": "email"},
    }


def write_config(
    directory: Path,
    upstream: str,
    *,
    with_okx: bool,
    tls: dict[str, str] | None = None,
    callers: Sequence[dict[str, Any]] = (),
    store_url: str | None = None,
    rate_limits_url: str | None = None,
    metrics_listen: str | None = None,
) -> GatewaySetup:
    """A gateway configuration in ``directory`` whose providers all point at ``upstream``; with
    ``tls``, its ``[server.tls]``, and its ``[[callers]]`` (it listens on loopback, so neither is
    required). Its store is SQLite in ``directory``, or the PostgreSQL database at ``store_url``; its
    rate limits are in memory, or shared through the Redis at ``rate_limits_url``; with ``metrics_listen``,
    metrics are on, served for scraping there."""
    directory.mkdir(parents=True, exist_ok=True)
    store = directory / "gateway.db"
    key = generate_key()
    providers = [bench_provider(upstream)] + ([okx.provider_entry(upstream)] if with_okx else [])
    text = (
        _table("server", {"listen": "127.0.0.1:0", "reflection": True, "shutdown_grace_seconds": 2})
        + (_table("server.tls", tls) if tls else "")
        + _table("store", {"url": store_url} if store_url else {"path": str(store)})
        + (_table("rate_limits", {"url": rate_limits_url}) if rate_limits_url else "")
        + (_table("metrics", {"listen": metrics_listen}) if metrics_listen else "")
        # The Authorize rows send far more than the default limits within a state's ten minutes.
        + _table("limits", {"max_pending_authorizations": 100_000_000, "max_pending_authorizations_per_tenant": 100_000_000})
        + "[[encryption.keys]]\n" + f"id = {_toml_value(KEY_ID)}\nkey = {_toml_value(key)}\n"
        + "".join(_array_entry("providers", p) for p in providers)
        + "".join(_array_entry("callers", c) for c in callers)
    )
    path = directory / "gateway.toml"
    path.write_text(text)
    path.chmod(0o600)
    return GatewaySetup(path, store, key, with_okx)


async def _bounded(jobs: Sequence[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    """Run the jobs, at most ``limit`` at once (each call starts only when it gets a slot)."""
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await job()

    return await asyncio.gather(*(run(job) for job in jobs))


async def authorize_states(address: str, count: int, *, concurrency: int = 32, transport: Transport = PLAINTEXT) -> list[str]:
    """``count`` fresh single-use states, each from a real Authorize."""
    async with transport.channel(address) as channel:
        stub = api_grpc.BrokerGatewayStub(channel)
        request = api.AuthorizeRequest(provider=PROVIDER, redirect_uri=REDIRECT_URI, scopes=["profile"])
        call = functools.partial(stub.Authorize, request, timeout=30, metadata=transport.metadata())
        starts = await _bounded([call] * count, concurrency)
    return [start.state for start in starts]


async def connect(address: str, count: int, *, concurrency: int = 32, transport: Transport = PLAINTEXT) -> list[str]:
    """``count`` ACTIVE connections made by Authorize + Exchange, each read once with GetUserInfo (so
    the one-time write recording the subject is not part of any timed run); their ids. Through
    ``transport``, so a gateway with callers stores them under its caller's tenant."""
    states = await authorize_states(address, count, concurrency=concurrency, transport=transport)
    metadata = transport.metadata()
    async with transport.channel(address) as channel:
        stub = api_grpc.BrokerGatewayStub(channel)

        async def one(state: str) -> str:
            response = await stub.Exchange(api.ExchangeRequest(state=state, code="bench-code"), timeout=30, metadata=metadata)
            connection_id = response.connection.connection_id
            info = await stub.GetUserInfo(api.GetUserInfoRequest(connection_id=connection_id), timeout=30, metadata=metadata)
            assert info.user_info.subject == SUBJECT, info
            return connection_id

        return await _bounded([functools.partial(one, state) for state in states], concurrency)


async def check_call(address: str, method: str, request: Any) -> str | None:
    """None when one call succeeds, else what went wrong (so a row can say why it is skipped)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = api_grpc.BrokerGatewayStub(channel)
        try:
            await getattr(stub, method)(request, timeout=10)
        except grpc.aio.AioRpcError as error:
            return f"{error.code().name}: {error.details()}"
    return None


async def seed_connections_directly(setup: GatewaySetup, count: int, *, batch: int = 5000) -> float:
    """Write ``count`` connections straight into the store with the gateway's Store and Vault API, as
    Exchange would have stored them; the seconds it took. Batched in transactions for speed."""
    from broker_gateway.provider import TokenSet
    from broker_gateway.store.base import ConnectionStatus, StoredConnection
    from broker_gateway.store.crypto import Keyring, decode_key
    from broker_gateway.store.sqlite import SQLiteStore
    from broker_gateway.vault import Vault

    started = asyncio.get_running_loop().time()
    store = SQLiteStore(setup.store_path)
    vault = Vault(Keyring([(KEY_ID, decode_key(setup.key))]))
    now = datetime.now(UTC)
    tokens = TokenSet(
        access_token=ACCESS_TOKEN,
        refresh_token=REFRESH_TOKEN,
        access_token_expire_time=now + timedelta(days=365),
        scopes=("profile",),
        issue_time=now,
    )
    try:
        for start in range(0, count, batch):
            store._db.execute("BEGIN")  # the benchmark's shortcut: one transaction per batch
            for index in range(start, min(start + batch, count)):
                connection_id = memory_connection_id(index)
                await store.insert_connection(
                    StoredConnection(
                        tenant="default",
                        connection_id=connection_id,
                        provider_id=PROVIDER,
                        scopes=("profile",),
                        subject=SUBJECT,
                        status=ConnectionStatus.ACTIVE,
                        status_reason="",
                        metadata={},
                        sealed_tokens=vault.seal_tokens("default", connection_id, tokens),
                        access_token_expire_time=tokens.access_token_expire_time,
                        refresh_token_expire_time=None,
                        create_time=now,
                        update_time=now,
                    )
                )
            store._db.execute("COMMIT")
    finally:
        await store.close()
    return asyncio.get_running_loop().time() - started


def memory_connection_id(index: int) -> str:
    return f"conn_mem{index:07d}"


def gateway_environment(*, with_okx: bool, tracing_endpoint: str | None) -> dict[str, str]:
    """The environment of a gateway under test: only the plugins it needs, tracing on or off."""
    env = {
        "BROKER_GATEWAY_LOAD_PLUGINS": "oauth2,okx" if with_okx else "oauth2",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    if tracing_endpoint:
        env.update(
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=tracing_endpoint,
            OTEL_EXPORTER_OTLP_INSECURE="true",
            OTEL_SERVICE_NAME="broker-gateway-bench",
        )
    return env
