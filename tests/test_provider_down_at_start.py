"""A provider whose issuer cannot be reached at start does not stop the gateway: it answers UNAVAILABLE
(PROVIDER_UNAVAILABLE, metadata cause = discovery) with a RetryInfo, the other providers and health
serve as usual, and discovery is retried in the background until the issuer answers."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import grpc
from broker_gateway.app import build_application
from broker_gateway.config import ProviderConfig
from broker_gateway.oauth2 import OAuth2Provider
from broker_gateway.sandbox.asgi import start_asgi, stop_asgi
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from conftest import REDIRECT_URI, GatewayHarness, Wallet, expect_failure, gateway_config, running_gateway
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def unserved_issuer() -> tuple[socket.socket, str, ProviderConfig]:
    """A loopback socket bound but not listening (connections are refused until it serves), the issuer
    URL at it, and a generic-oauth2 entry discovering that issuer."""
    idp_socket = socket.socket()
    idp_socket.bind(("127.0.0.1", 0))
    issuer = f"http://127.0.0.1:{idp_socket.getsockname()[1]}"
    idp = ProviderConfig(
        id="idp", type="generic-oauth2", redirect_uris=(REDIRECT_URI,), allow_insecure_http=True,
        settings={"issuer": issuer, "client_id": "c", "client_secret": "s"},
    )
    return idp_socket, issuer, idp


async def authorize_once_discovered(harness: GatewayHarness, issuer: str) -> None:
    """Authorize with the idp until its background discovery has succeeded (UNAVAILABLE until then,
    nothing else), and check the URL is the discovered one."""
    give_up = time.monotonic() + 90
    while True:
        try:
            start = await harness.stub.Authorize(api.AuthorizeRequest(provider="idp", redirect_uri=REDIRECT_URI), timeout=10)
            break
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < give_up, error
        await asyncio.sleep(0.5)
    assert start.authorization_url.startswith(issuer + "/authorize?")


def discovery_app(issuer: str) -> Starlette:
    async def document(request: Request) -> JSONResponse:
        return JSONResponse({
            "issuer": issuer,
            "authorization_endpoint": issuer + "/authorize",
            "token_endpoint": issuer + "/token",
            "code_challenge_methods_supported": ["S256"],
        })

    return Starlette(routes=[Route("/.well-known/openid-configuration", document)])


async def test_an_unreachable_issuer_is_retried_while_the_rest_serves(tmp_path: Path, wallet: Wallet) -> None:
    idp_socket, issuer, idp = unserved_issuer()
    config = gateway_config(tmp_path, [wallet.provider_config(), idp])
    async with running_gateway(config) as harness:
        down = await expect_failure(harness.stub.Authorize(api.AuthorizeRequest(provider="idp", redirect_uri=REDIRECT_URI), timeout=10))
        assert (down.code, down.reason) == (grpc.StatusCode.UNAVAILABLE, "PROVIDER_UNAVAILABLE")
        assert down.metadata["cause"] == "discovery"
        assert any(detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for detail in down.details)

        await harness.stub.Authorize(api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI), timeout=10)
        health = health_pb2_grpc.HealthStub(harness.channel)
        assert (await health.Check(health_pb2.HealthCheckRequest(), timeout=10)).status == health_pb2.HealthCheckResponse.SERVING

        server, serving = await start_asgi(discovery_app(issuer), idp_socket)
        try:
            await authorize_once_discovered(harness, issuer)
        finally:
            await stop_asgi(server, serving)


async def test_closing_the_gateway_ends_the_background_discovery(tmp_path: Path) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    idp = ProviderConfig(
        id="idp", type="generic-oauth2", redirect_uris=(REDIRECT_URI,), allow_insecure_http=True,
        settings={"issuer": f"http://127.0.0.1:{closed.getsockname()[1]}", "client_id": "c", "client_secret": "s"},
    )
    try:
        application = await build_application(gateway_config(tmp_path, [idp]))
        assert application.gateway.providers["idp"].provider.start_problem is not None

        def retrying() -> list[asyncio.Task[object]]:
            return [task for task in asyncio.all_tasks() if "_discover_until_done" in repr(task.get_coro())]

        assert retrying(), "no discovery is retried in the background"
        await application.close()
        assert retrying() == []
    finally:
        closed.close()


def flaky_discovery_app(issuer: str) -> Starlette:
    """Discovery as a misbehaving network gives it: first a 429, then a document of another issuer
    (with endpoints of its own), then the right one."""
    answers = iter(["busy", "another issuer"])

    async def document(request: Request) -> Response:
        answer = next(answers, "right")
        if answer == "busy":
            return Response(status_code=429, headers={"Retry-After": "1"})
        named = "http://elsewhere.invalid" if answer == "another issuer" else issuer
        return JSONResponse({
            "issuer": named,
            "authorization_endpoint": named + "/authorize",
            "token_endpoint": named + "/token",
            "code_challenge_methods_supported": ["S256"],
        })

    return Starlette(routes=[Route("/.well-known/openid-configuration", document)])


async def test_an_issuer_that_refuses_or_misanswers_is_retried_and_keeps_nothing_of_a_wrong_document(tmp_path: Path) -> None:
    """A 429 at start is "down", not a crash; a later document naming another issuer is refused
    without leaving its endpoints behind, so the right document's are the ones used."""
    idp_socket, issuer, idp = unserved_issuer()
    server, serving = await start_asgi(flaky_discovery_app(issuer), idp_socket)
    try:
        async with running_gateway(gateway_config(tmp_path, [idp])) as harness:
            await authorize_once_discovered(harness, issuer)
            provider = harness.application.gateway.providers["idp"].provider
            assert isinstance(provider, OAuth2Provider) and provider.endpoints["token_endpoint"] == issuer + "/token"
    finally:
        await stop_asgi(server, serving)
