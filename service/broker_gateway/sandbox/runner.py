"""``broker-gateway sandbox``: the gateway on its embedded default against local simulators.

Each built-in plugin registers its simulators (``broker_gateway_register_sandboxes``); the sandbox
serves each on a loopback port, configures a provider against it with the shared redirect URI, serves
a callback page at that URI that shows the code and the grpcurl command completing the exchange, and
writes ``<data-dir>/sandbox.json`` with everything a client needs.

``sandbox --simulators-only --write-config FILE`` serves the simulators and the callback page alone and
writes a gateway configuration for them, so that gateways started apart (``serve``, several workers,
several replicas: examples/cluster) use the same simulators.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..app import build_application
from ..callers import DEFAULT_TENANT, CallerConfig, Permission, key_sha256, new_key
from ..config import Config, GatewaySettings, ProviderConfig, ServerConfig
from ..devpki import Authority
from ..plugins import plugin_manager, sandbox_upstreams
from ..private_files import make_private_dir, restrict, write_private_bytes, write_private_text
from ..server import RunningServer, start_server, termination_signal
from ..store.crypto import decode_key, generate_key
from ..tls import TlsConfig
from ..workers import cannot_listen, reserve_port
from . import DEFAULT_CALLBACK
from .asgi import start_asgi, stop_asgi
from .registration import SandboxEnvironment


def _bind(address: str) -> socket.socket:
    """A socket bound to ``address``; SO_REUSEADDR only for a fixed port (to rebind it at once after a
    restart): with it, the kernel may give port 0 a port another socket is about to listen on, and
    listen() then fails with EADDRINUSE."""
    host, _, port = address.rpartition(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if int(port):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host or "127.0.0.1", int(port)))
    except OSError as error:
        sock.close()
        raise cannot_listen(address, error, "--callback-listen") from None
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


def grpcurl_prefix(description: Mapping[str, Any]) -> str:
    """``grpcurl`` with the transport options this sandbox needs: plaintext, or its CA and the caller
    key (as ``$BROKER_GATEWAY_API_KEY``, so the key itself is printed only once, at start)."""
    if "ca_file" not in description:
        return "grpcurl -plaintext"
    return f'grpcurl -cacert {description["ca_file"]} -H "authorization: Bearer $BROKER_GATEWAY_API_KEY"'


def exchange_command(description: Mapping[str, Any], params: Mapping[str, str]) -> str:
    """The grpcurl command completing the Exchange for a callback with these query parameters."""
    rest = dict(params)
    state, code, iss = rest.pop("state", ""), rest.pop("code", ""), rest.pop("iss", "")
    body = {"state": state, "code": code, **({"iss": iss} if iss else {}), "callback_params": rest}
    return (
        f"{grpcurl_prefix(description)} -d '{json.dumps(body)}' {description['gateway']} broker_gateway.v1.BrokerGateway/Exchange"
    )


def callback_app(description: Mapping[str, Any], announce: Callable[[str], None] | None = None) -> Starlette:
    """The page at the sandbox redirect URI: shows the callback and the command that completes it, as
    HTML to a browser and as plain text (ready to paste) to anything else, such as curl; ``announce``
    also prints the command to the sandbox's console."""

    async def callback(request: Request) -> Response:
        params = dict(request.query_params)
        command = exchange_command(description, params)
        if announce is not None:
            announce(f"Callback received; complete the Exchange with:\n  {command}")
        headers = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'"}
        if "text/html" not in request.headers.get("accept", ""):
            text = f"The provider redirected back. Complete the exchange with:\n\n{command}\n"
            return PlainTextResponse(text, headers=headers)
        page = (
            "<!doctype html><meta charset=utf-8><title>BrokerGateway sandbox callback</title>"
            "<h1>Authorization callback</h1>"
            f"<p>The provider redirected back with these parameters:</p><pre>{html.escape(json.dumps(params, indent=2))}</pre>"
            f"<p>Complete the exchange with:</p><pre>{html.escape(command)}</pre>"
        )
        return HTMLResponse(page, headers=headers)

    return Starlette(routes=[Route("/callback", callback)])


def load_or_create_key(data_dir: Path) -> tuple[str, bytes]:
    """The sandbox's encryption key, kept in ``<data-dir>/keyring.json`` (mode 0600) across runs."""
    path = data_dir / "keyring.json"
    if path.exists():
        restrict(path)  # perhaps left with a wider mode by an earlier version
    else:
        write_private_text(path, json.dumps({"id": "sandbox-1", "key": generate_key()}))
    document = json.loads(path.read_text())
    return document["id"], decode_key(document["key"])


@dataclass
class Sandbox:
    """A running sandbox: simulators, callback page and gateway (none with ``--simulators-only``)."""

    running: RunningServer | None
    description: dict[str, Any]
    _servers: list[tuple[uvicorn.Server, asyncio.Task[None]]]

    async def stop(self) -> None:
        if self.running is not None:
            await self.running.stop(grace=1.0)
        for server, task in self._servers:
            await stop_asgi(server, task)


def secure_parts(data_dir: Path) -> tuple[TlsConfig, CallerConfig, dict[str, str]]:
    """TLS from a fresh throwaway CA (its certificate in ``<data-dir>/ca.crt`` for clients) and one
    caller with every permission in the default tenant, whose new key goes into sandbox.json."""
    authority = Authority("BrokerGateway sandbox CA")
    cert, key = authority.server().write(data_dir, "tls")
    ca_file = data_dir / "ca.crt"
    write_private_bytes(ca_file, authority.pem)
    api_key = new_key()
    caller = CallerConfig("sandbox", DEFAULT_TENANT, frozenset(Permission), key_sha256(api_key))
    return TlsConfig(cert=f"file:{cert}", key=f"file:{key}"), caller, {"ca_file": str(ca_file), "api_key": api_key}


async def start_sandbox(
    *,
    listen: str,
    data_dir: Path,
    callback: str = DEFAULT_CALLBACK,
    gateway_settings: GatewaySettings | None = None,
    secure: bool = False,
    announce: Callable[[str], None] | None = None,
) -> Sandbox:
    """Start every registered simulator, the callback page and the gateway; write sandbox.json. With
    ``secure``, the gateway serves TLS and needs the API key sandbox.json holds, as in production."""
    reserve_port(listen)[0].close()  # ports in use fail here, before anything is made in data_dir
    callback_socket = _bind(callback)
    make_private_dir(data_dir)
    manager = plugin_manager()
    redirect_uri = f"{_url(callback_socket)}/callback"
    servers, providers, upstreams = await _start_simulators(manager, redirect_uri)
    tls: TlsConfig | None = None
    callers: tuple[CallerConfig, ...] = ()
    access: dict[str, str] = {}
    if secure:
        tls, caller, access = secure_parts(data_dir)
        callers = (caller,)
    config = Config(
        server=ServerConfig(listen=listen, shutdown_grace_seconds=1.0, tls=tls),
        store_path=str(data_dir / "gateway.db"),
        encryption_keys=(load_or_create_key(data_dir),),
        providers=tuple(providers),
        gateway=gateway_settings or GatewaySettings(),
        callers=callers,
    )
    application = await build_application(config, manager=manager)
    running = await start_server(application, listen)
    gateway_address = f"{listen.rpartition(':')[0]}:{running.port}"
    description = {"gateway": gateway_address, "redirect_uri": redirect_uri, **access, "upstreams": upstreams}
    servers.append(await start_asgi(callback_app(description, announce), callback_socket))
    write_private_text(data_dir / "sandbox.json", json.dumps(description, indent=2) + "\n")
    return Sandbox(running, description, servers)


async def _start_simulators(
    manager: pluggy.PluginManager, redirect_uri: str
) -> tuple[list[tuple[uvicorn.Server, asyncio.Task[None]]], list[ProviderConfig], dict[str, Any]]:
    """Serve every registered simulator on a loopback port: the servers, a provider entry for each,
    and what sandbox.json reports of each."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
    providers: list[ProviderConfig] = []
    upstreams: dict[str, Any] = {}
    for upstream in sandbox_upstreams(manager):
        sock = _bind("127.0.0.1:0")
        parts = upstream.build(SandboxEnvironment(base_url=_url(sock), redirect_uri=redirect_uri))
        servers.append(await start_asgi(parts.app, sock))
        providers.append(
            ProviderConfig(
                id=upstream.provider_id,
                type=parts.provider_type,
                redirect_uris=(redirect_uri,),
                settings=parts.provider_settings,
                allow_insecure_http=True,
            )
        )
        upstreams[upstream.provider_id] = {"base_url": _url(sock), **parts.credentials}
    return servers, providers, upstreams


async def start_simulators_only(*, gateway: str, data_dir: Path, callback: str, config_file: Path) -> Sandbox:
    """Start the simulators and the callback page, and write ``config_file``: a gateway configuration
    for them (providers, the sandbox's encryption key, no ``[store]``: the gateways' operator adds it).
    ``gateway`` is the address the callback page tells the user to complete the exchange at."""
    make_private_dir(data_dir)
    callback_socket = _bind(callback)
    redirect_uri = f"{_url(callback_socket)}/callback"
    servers, providers, upstreams = await _start_simulators(plugin_manager(), redirect_uri)
    description = {"gateway": gateway, "redirect_uri": redirect_uri, "upstreams": upstreams}
    servers.append(await start_asgi(callback_app(description), callback_socket))
    write_private_text(config_file, gateway_config_toml(providers, load_or_create_key(data_dir)))
    write_private_text(data_dir / "sandbox.json", json.dumps(description, indent=2) + "\n")
    return Sandbox(None, description, servers)


def gateway_config_toml(providers: list[ProviderConfig], key: tuple[str, bytes]) -> str:
    """A gateway configuration with these providers and this encryption key, as TOML."""
    lines = [
        "# Written by `broker-gateway sandbox --simulators-only`: the sandbox's simulators as providers.",
        "# Add a [store]: path (SQLite; .broker-gateway/gateway.db beside this file by default) or url (PostgreSQL).",
        "",
        "[[encryption.keys]]",
        f"id = {_toml(key[0])}",
        f"key = {_toml(base64.b64encode(key[1]).decode())}",
    ]
    for provider in providers:
        entry = {
            "id": provider.id,
            "type": provider.type,
            "redirect_uris": list(provider.redirect_uris),
            "allow_insecure_http": provider.allow_insecure_http,
            **provider.settings,
        }
        lines += ["", "[[providers]]", *(f"{_toml_key(name)} = {_toml(value)}" for name, value in entry.items())]
    return "\n".join(lines) + "\n"


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _toml(value: Any) -> str:
    """A TOML value for what provider settings hold: strings (JSON's escapes are TOML's), booleans,
    numbers, lists and tables (inline)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(str(key))} = {_toml(item)}" for key, item in value.items()) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def instructions(description: Mapping[str, Any], data_dir: Path) -> str:
    """How to try the flow, printed when the sandbox is up."""
    gateway, redirect_uri = description["gateway"], description["redirect_uri"]
    provider = "wallet" if "wallet" in description["upstreams"] else next(iter(description["upstreams"]), "wallet")
    # The protobuf text format, for the request too (-format text applies to both): its output prints
    # the URL as it is, where JSON would escape each & as \u0026.
    authorize = f'provider: "{provider}" redirect_uri: "{redirect_uri}"'
    secure = (
        [
            f"TLS with the CA in {description['ca_file']}; calls need the caller key:",
            f"  export BROKER_GATEWAY_API_KEY={description['api_key']}",
            "",
        ]
        if "api_key" in description
        else []
    )
    return "\n".join(
        [
            f"BrokerGateway sandbox: gateway on {gateway}, providers {', '.join(description['upstreams'])}.",
            f"Everything a client needs is in {data_dir / 'sandbox.json'}.",
            "",
            *secure,
            "Try the flow:",
            f"  {grpcurl_prefix(description)} -format text -d '{authorize}' {gateway} broker_gateway.v1.BrokerGateway/Authorize",
            "  Open the authorization_url in a browser and approve (or append &approve=alice to it);",
            f"  the page at {redirect_uri} then shows the grpcurl command that completes the Exchange,",
            "  and this console prints it too.",
            "",
            "Stop with Ctrl-C.",
        ]
    )


async def run_simulators(
    gateway: str, data_dir: Path, callback: str, config_file: Path, announce: Callable[[str], None] = print
) -> None:
    """Run the simulators and the callback page alone until SIGTERM or SIGINT."""
    sandbox = await start_simulators_only(gateway=gateway, data_dir=data_dir, callback=callback, config_file=config_file)
    try:
        announce(
            f"BrokerGateway sandbox simulators: providers {', '.join(sandbox.description['upstreams'])}; "
            f"a gateway configuration for them is in {config_file}. Stop with Ctrl-C."
        )
        await termination_signal()
    finally:
        await sandbox.stop()


async def run_sandbox(
    listen: str, data_dir: Path, callback: str, announce: Callable[[str], None] = print, *, secure: bool = False
) -> None:
    """Run the sandbox until SIGTERM or SIGINT."""
    sandbox = await start_sandbox(listen=listen, data_dir=data_dir, callback=callback, secure=secure, announce=announce)
    try:
        announce(instructions(sandbox.description, data_dir))
        await termination_signal()
    finally:
        await sandbox.stop()
