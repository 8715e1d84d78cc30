"""The grpc.aio server: the BrokerGateway servicer, health, reflection, the handler wrapper and shutdown.

Health reports SERVING only while the store answers. On SIGTERM the server goes NOT_SERVING first,
lets in-flight calls finish within the grace period, lets running refreshes persist, then closes the
store (docs/design/grpc.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from .app import Application
from .callers import RPC_PERMISSIONS, Authenticator
from .config import Config, host_and_port
from .errors import ConfigError, GatewayError
from .handler_wrapper import add_authenticated_service, add_wrapped_servicer
from .metrics import GatewayMetrics, keep_counting_connections
from .servicer import BrokerGatewayServicer
from .tls import ServerCertificates
from .v1 import broker_gateway_service_pb2, broker_gateway_service_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = broker_gateway_service_pb2.DESCRIPTOR.services_by_name["BrokerGateway"].full_name
HEALTH_INTERVAL = 5.0
PURGE_INTERVAL = 300.0
#: How often the pending-authorization counts are taken again from the store (pending_budget.py),
#: so rows other processes add or remove count here too.
PENDING_RECOUNT_INTERVAL = 30.0


@dataclass
class RunningServer:
    """A started server and what its shutdown must stop."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    application: Application
    _background: list[asyncio.Task[None]]

    async def stop(self, grace: float | None = None) -> None:
        grace = self.application.config.server.shutdown_grace_seconds if grace is None else grace
        await self.health.enter_graceful_shutdown()
        await self.application.gateway.events.close()  # watch streams end now, not after the grace
        for task in self._background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.server.stop(grace)
        await self.application.close()


async def _watch_store(application: Application, servicer: health.aio.HealthServicer) -> None:
    """SERVING while the store answers, NOT_SERVING while it does not."""
    while True:
        try:
            await application.gateway.store.ping()
            status = health_pb2.HealthCheckResponse.SERVING
        except GatewayError:
            status = health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            await servicer.set(name, status)
        await asyncio.sleep(HEALTH_INTERVAL)


async def _every(interval: float, work: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``work`` every ``interval`` seconds; a failing pass is logged and the next one tried."""
    while True:
        await asyncio.sleep(interval)
        try:
            await work()
        except GatewayError as error:
            log.warning("%s failed: %s", what, error.reason)


def _milliseconds(seconds: float) -> int:
    """A duration as gRPC's channel arguments take it: a C int, whose largest value means never."""
    return min(round(seconds * 1000), 2**31 - 1)


async def start_server(application: Application, listen: str | None = None, *, share_port: bool = False) -> RunningServer:
    """Build, bind and start the server; ``listen`` overrides the configuration (port 0 picks one).

    A lone process refuses a port another process holds (no SO_REUSEPORT), so a second gateway
    started by mistake fails instead of quietly taking half the connections. The workers of
    ``serve --workers`` share theirs (``share_port``), their parent having checked that no one else
    holds it (workers.py).
    """
    config = application.config.server
    options = [
        ("grpc.max_receive_message_length", config.max_receive_message_bytes),
        ("grpc.so_reuseport", 1 if share_port else 0),
        ("grpc.max_connection_idle_ms", _milliseconds(config.max_connection_idle_seconds)),
        ("grpc.max_connection_age_ms", _milliseconds(config.max_connection_age_seconds)),
        ("grpc.max_connection_age_grace_ms", _milliseconds(config.max_connection_age_grace_seconds)),
        ("grpc.max_concurrent_streams", config.max_concurrent_streams),
    ]
    address = listen or config.listen
    check_exposure(address, application.config)
    certificates = None if config.tls is None else ServerCertificates(config.tls)
    authenticator = Authenticator(application.config.callers) if application.config.callers else None
    # No grpc.aio interceptors: the servicer's handlers are wrapped once instead (handler_wrapper.py).
    server = grpc.aio.server(options=options, maximum_concurrent_rpcs=config.max_concurrent_rpcs)
    add_wrapped_servicer(
        server,
        broker_gateway_service_pb2_grpc.add_BrokerGatewayServicer_to_server,
        BrokerGatewayServicer(application.gateway),
        application.tracer,
        authenticator=authenticator,
        permissions=RPC_PERMISSIONS,
        metrics=application.metrics,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    if config.reflection:
        _add_reflection(server, authenticator, application.metrics)
    try:
        port = server.add_insecure_port(address) if certificates is None else server.add_secure_port(address, certificates.credentials())
    except RuntimeError:  # what grpc raises when the port is taken
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {address}: the address is in use or not this machine's")
    await server.start()
    loop = asyncio.get_running_loop()
    gateway, settings = application.gateway, application.config.gateway
    background = [
        loop.create_task(_watch_store(application, health_servicer)),
        loop.create_task(_every(PURGE_INTERVAL, gateway.purge_expired, "purging expired records")),
        loop.create_task(_every(PENDING_RECOUNT_INTERVAL, gateway.pending_budget.recount, "counting pending authorizations")),
        loop.create_task(_every(settings.keepalive_interval, gateway.token_lifecycle.keep_alive, "keep-alive refresh")),
    ]
    if application.metrics is not None:
        interval = application.config.metrics.connections_interval_seconds
        background.append(loop.create_task(keep_counting_connections(application.metrics, gateway.store, interval)))
    log.info("BrokerGateway listening on %s", address.rsplit(":", 1)[0] + f":{port}")
    if application.metrics_export is not None and application.metrics_export.port is not None:
        log.info("metrics at http://%s:%d/metrics", host_and_port(application.config.metrics.listen or "")[0],
                 application.metrics_export.port)
    return RunningServer(server, port, health_servicer, application, background)


def _add_reflection(server: grpc.aio.Server, authenticator: Authenticator | None, metrics: GatewayMetrics | None) -> None:
    """Server reflection, behind the same caller authentication as the API once callers exist."""
    names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
    if authenticator is None:
        reflection.enable_server_reflection(names, server)
        return
    servicer = reflection.aio.ReflectionServicer(names)
    add_authenticated_service(
        server, lambda target: reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, target), authenticator,
        metrics,
    )


def check_exposure(address: str, config: Config) -> None:
    """Refuse to listen beyond loopback with no callers or without TLS, unless the configuration says
    so explicitly: a token vault open to its network hands every user's token to anyone there."""
    if is_loopback(address):
        return
    if not config.callers and not config.server.allow_unauthenticated:
        raise ConfigError([
            (
                f"refusing to listen on {address} without callers: configure [[callers]] (or, knowing that anyone "
                "who reaches the port can then take every token, set [server] allow_unauthenticated = true)"
            )
        ])
    if config.server.tls is None and not config.server.allow_plaintext:
        raise ConfigError([
            (
                f"refusing to listen on {address} in plaintext: configure [server.tls] (or, behind a sidecar that "
                "terminates TLS, set [server] allow_plaintext = true)"
            )
        ])
    if not config.callers:
        log.warning("listening on %s with no callers configured: anyone who reaches it can take every token", address)


def is_loopback(address: str) -> bool:
    """Whether a HOST:PORT listen address binds loopback only (127.0.0.0/8, ::1 or localhost)."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def termination_signal() -> None:
    """Return when SIGTERM or SIGINT arrives."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
