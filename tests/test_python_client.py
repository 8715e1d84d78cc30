"""The Python client's helpers (clients/python) against a real gateway on loopback: its channels carry
the caller's key over TLS or a client certificate over mutual TLS, and its error reader gives the
ErrorInfo reason, metadata and RetryInfo delay of a failure raised by a blocking call (``grpc.RpcError``)
and by ``grpc.aio`` (``AioRpcError``) alike. The stubs used are the client's own copy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from broker_gateway.callers import CallerConfig, Permission, key_sha256, new_key
from broker_gateway.devpki import Authority
from broker_gateway.tls import TlsConfig
from broker_gateway_client import (
    ErrorDetails,
    aio_secure_channel,
    error_details,
    error_info,
    reason,
    secure_channel,
)
from broker_gateway_client.v1 import broker_gateway_service_pb2 as api
from broker_gateway_client.v1 import broker_gateway_service_pb2_grpc as api_grpc
from conftest import REDIRECT_URI, FakeClock, Wallet, gateway_config, running_gateway

CALLER_SUBJECT = "spiffe://acme.example/billing"
CLIENT_SOURCES = Path(__file__).resolve().parent.parent / "clients" / "python" / "src"


def closed_port() -> int:
    """A loopback port nothing listens on (bound once to pick it, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def list_providers_blocking(channel: grpc.Channel) -> list[str]:
    with channel:
        response = api_grpc.BrokerGatewayStub(channel).ListProviders(api.ListProvidersRequest(), timeout=10)
    return [provider.id for provider in response.providers]


async def list_providers(channel: grpc.aio.Channel) -> list[str]:
    async with channel:
        response = await api_grpc.BrokerGatewayStub(channel).ListProviders(api.ListProvidersRequest(), timeout=10)
    return [provider.id for provider in response.providers]


async def failures(aio_call: Callable[[], Any], blocking_call: Callable[[], Any]) -> list[grpc.RpcError]:
    """The error of the same call made through grpc.aio and through a blocking channel (in a thread,
    since the gateway serves on this event loop)."""
    with pytest.raises(grpc.aio.AioRpcError) as aio_failure:
        await aio_call()
    with pytest.raises(grpc.RpcError) as blocking_failure:
        await asyncio.to_thread(blocking_call)
    assert not isinstance(blocking_failure.value, grpc.aio.AioRpcError)
    return [aio_failure.value, blocking_failure.value]


@pytest.mark.parametrize("credential", ["api key", "client certificate"])
async def test_secure_channels_present_the_callers_key_or_certificate(
    credential: str, tmp_path: Path, wallet: Wallet, clock: FakeClock
) -> None:
    authority = Authority("test CA")
    server_cert, server_key = authority.server().write(tmp_path, "server")
    ca = tmp_path / "ca.crt"
    ca.write_bytes(authority.pem)
    mutual = credential == "client certificate"
    key = new_key()
    caller = CallerConfig(
        id="acme",
        tenant="acme",
        permissions=frozenset(Permission),
        key_sha256=None if mutual else key_sha256(key),
        tls_subject=CALLER_SUBJECT if mutual else None,
    )
    tls = TlsConfig(cert=f"file:{server_cert}", key=f"file:{server_key}", client_ca=f"file:{ca}" if mutual else None)
    config = gateway_config(tmp_path, [wallet.provider_config()])
    config = dataclasses.replace(config, server=dataclasses.replace(config.server, tls=tls), callers=(caller,))
    # The right credential, and a stranger: no key, or a certificate of the same CA for another subject.
    if mutual:
        cert_file, key_file = authority.client("acme", CALLER_SUBJECT).write(tmp_path, "acme")
        stranger_cert, stranger_key = authority.client("stranger", "spiffe://stranger.example/x").write(tmp_path, "stranger")
        right: dict[str, Any] = {"cert_file": cert_file, "key_file": key_file}
        stranger: dict[str, Any] = {"cert_file": stranger_cert, "key_file": stranger_key}
    else:
        right, stranger = {"api_key": key}, {}

    async with running_gateway(config, clock) as harness:
        assert await list_providers(aio_secure_channel(harness.address, ca, **right)) == ["wallet"]
        assert await asyncio.to_thread(list_providers_blocking, secure_channel(harness.address, ca, **right)) == ["wallet"]

        refused = await failures(
            lambda: list_providers(aio_secure_channel(harness.address, ca, **stranger)),
            lambda: list_providers_blocking(secure_channel(harness.address, ca, **stranger)),
        )
    for failure in refused:
        details = error_details(failure)
        assert details is not None
        assert (details.code, details.reason, details.retry_delay) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "CALLER_UNAUTHENTICATED",
            None,
        )
        assert reason(failure) == "CALLER_UNAUTHENTICATED"
        info = error_info(failure)
        assert info is not None and info.domain == "broker-gateway"


def test_mutual_tls_needs_both_the_certificate_and_its_key(tmp_path: Path) -> None:
    pem = Authority("test CA").client("acme")
    cert_file, key_file = pem.write(tmp_path, "acme")
    (tmp_path / "ca.crt").write_bytes(pem.cert)
    with pytest.raises(ValueError, match="cert_file and key_file"):
        secure_channel("127.0.0.1:1", tmp_path / "ca.crt", cert_file=cert_file)
    with pytest.raises(ValueError, match="cert_file and key_file"):
        aio_secure_channel("127.0.0.1:1", tmp_path / "ca.crt", key_file=key_file)


async def test_a_retryable_failure_gives_its_reason_metadata_and_retry_delay(
    tmp_path: Path, wallet: Wallet, clock: FakeClock
) -> None:
    """The wallet's token endpoint is unreachable: Exchange fails UNAVAILABLE with a RetryInfo. (Each
    Exchange spends its state, so each of the two calls has its own.)"""
    provider = wallet.provider_config(token_endpoint=f"http://127.0.0.1:{closed_port()}/token")
    async with running_gateway(gateway_config(tmp_path, [provider]), clock) as harness:
        stub = api_grpc.BrokerGatewayStub(harness.channel)

        async def exchange_request() -> api.ExchangeRequest:
            start = await stub.Authorize(api.AuthorizeRequest(provider="wallet", redirect_uri=REDIRECT_URI), timeout=10)
            return api.ExchangeRequest(state=start.state, code="a-code-the-provider-never-sees")

        aio_exchange, blocking_exchange = await exchange_request(), await exchange_request()

        def exchange_blocking() -> None:
            with grpc.insecure_channel(harness.address) as channel:
                api_grpc.BrokerGatewayStub(channel).Exchange(blocking_exchange, timeout=10)

        refused = await failures(lambda: stub.Exchange(aio_exchange, timeout=10), exchange_blocking)
    for failure in refused:
        assert error_details(failure) == ErrorDetails(
            code=grpc.StatusCode.UNAVAILABLE,
            message=failure.details() or "",
            reason="PROVIDER_UNAVAILABLE",
            metadata={"provider": "wallet"},
            retry_delay=timedelta(seconds=1),
        )


async def test_a_failure_the_gateway_did_not_answer_has_no_details() -> None:
    """Nothing listens at the address: the transport fails before any gateway could answer."""
    address = f"127.0.0.1:{closed_port()}"

    async def aio_call() -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            await api_grpc.BrokerGatewayStub(channel).ListProviders(api.ListProvidersRequest(), timeout=5)

    for failure in await failures(aio_call, lambda: list_providers_blocking(grpc.insecure_channel(address))):
        assert failure.code() is grpc.StatusCode.UNAVAILABLE
        assert (error_details(failure), error_info(failure), reason(failure)) == (None, None, "")


def test_the_stubs_are_typed_so_a_type_checker_sees_a_misspelt_rpc(tmp_path: Path) -> None:
    """The service stubs' .pyi (mypy-protobuf's, through the generator's grpc_pyi option) type both the
    blocking and the grpc.aio stub: a misspelt RPC is a type error, the correct calls are not."""
    caller = tmp_path / "caller.py"
    caller.write_text(
        "import grpc\n"
        "from broker_gateway_client.v1 import broker_gateway_service_pb2 as api\n"
        "from broker_gateway_client.v1 import broker_gateway_service_pb2_grpc as api_grpc\n"
        "\n"
        "def blocking(channel: grpc.Channel) -> None:\n"
        "    stub = api_grpc.BrokerGatewayStub(channel)\n"
        "    stub.ListProviders(api.ListProvidersRequest())\n"
        "    stub.ListProvider(api.ListProvidersRequest())\n"
        "\n"
        "async def asynchronous(channel: grpc.aio.Channel) -> None:\n"
        "    stub = api_grpc.BrokerGatewayAsyncStub(channel)\n"
        "    await stub.GetAccessToken(api.GetAccessTokenRequest(connection_id='c'))\n"
        "    await stub.GetAccesToken(api.GetAccessTokenRequest(connection_id='c'))\n"
    )
    # Read through MYPYPATH the stubs count as the checked code, and without types-grpcio (a caller's
    # choice: the README) grpc.Channel and grpc.aio.Channel are both Any, which makes the stub's two
    # constructor overloads overlap; installed in site-packages, mypy reports nothing inside them.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--ignore-missing-imports", "--config-file", os.devnull,
         "--disable-error-code", "overload-cannot-match", str(caller)],
        check=False, capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "MYPYPATH": str(CLIENT_SOURCES)}, timeout=300,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["8", "13"], result.stdout + result.stderr
    assert '"BrokerGatewayStub" has no attribute "ListProvider"' in errors[0]
    assert '"BrokerGatewayAsyncStub" has no attribute "GetAccesToken"' in errors[1]
