"""Setting callers and TLS up, and what goes wrong: the configuration's checks, `new-caller-key`,
refusing an exposed port, certificates from elsewhere and rotated ones, hostile authorization headers,
the audit log, and planted API keys that must never show anywhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from broker_gateway.callers import Authenticator, CallerConfig, Permission, key_sha256, new_key
from broker_gateway.config import parse_config
from broker_gateway.devpki import Authority
from broker_gateway.errors import CallerUnauthenticated, ConfigError
from broker_gateway.server import is_loopback
from broker_gateway.tls import TlsConfig
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import broker_gateway_service_pb2_grpc as api_grpc
from conftest import FakeClock, GatewayHarness, Wallet, connect_wallet, expect_failure, gateway_config, running_gateway
from cryptography import x509
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_cli import KEY, run_cli, write_config

HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def parse(extra: str) -> list[str]:
    """The problems of a minimal document plus ``extra`` TOML."""
    import tomllib

    document = tomllib.loads(f'[[encryption.keys]]\nid = "k"\nkey = "{KEY}"\n' + extra)
    try:
        parse_config(document)
    except ConfigError as error:
        return error.problems
    return []


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ('[[callers]]\ntenant = "t"\nkey_sha256 = "' + HASH + '"\npermissions = []', "callers[0].id: required"),
        ('[[callers]]\nid = "a"\nkey_sha256 = "' + HASH + '"\npermissions = []', "callers[a].tenant: required"),
        ('[[callers]]\nid = "a"\ntenant = "t"\npermissions = []', "callers[a]: give key_sha256"),
        ('[[callers]]\nid = "a"\ntenant = "t"\nkey_sha256 = "abc"\npermissions = []', "callers[a].key_sha256: expected 64 hex"),
        ('[[callers]]\nid = "a"\ntenant = "t"\nkey_sha256 = "' + HASH + '"\npermissions = ["tokens", "admin"]',
         "callers[a].permissions: unknown permission 'admin'"),
        ('[[callers]]\nid = "a"\ntenant = "t"\nkey_sha256 = "' + HASH + '"\npermissions = []\napi_key = "x"',
         "callers[a].api_key: unknown setting"),
        ('[[callers]]\nid = "a"\ntenant = "t"\ntls_subject = "spiffe://x"\npermissions = []',
         "callers[a].tls_subject: needs [server.tls] client_ca"),
        ('[[callers]]\nid = "a"\ntenant = "t"\nkey_sha256 = "' + HASH + '"\npermissions = []\n'
         '[[callers]]\nid = "a"\ntenant = "t"\nkey_sha256 = "' + "0" * 64 + '"\npermissions = []', "callers[a]: the id is used twice"),
        ('[[callers]]\nid = "a"\ntenant = "t"\nkey_sha256 = "' + HASH + '"\npermissions = []\n'
         '[[callers]]\nid = "b"\ntenant = "t"\nkey_sha256 = "' + HASH.upper() + '"\npermissions = []',
         "callers[b].key_sha256: another caller has the same key"),
        ('[server]\nallow_plaintext = "yes"', "server.allow_plaintext: expected true or false"),
        ('[server.tls]\ncert = "file:/nonexistent/tls.crt"\nkey = "x"', "server.tls.cert: cannot read /nonexistent/tls.crt"),
        ('[server.tls]\ncert = "not a certificate"\nkey = "not a key"', "server.tls.cert: not a PEM certificate"),
        ('[server.tls]\ncert = "x"\nkey = "y"\ntls_cert = "z"', "server.tls.tls_cert: unknown setting"),
    ],
)
def test_the_configuration_refuses_broken_callers_and_tls(entries: str, problem: str) -> None:
    problems = parse(entries)
    assert any(found.startswith(problem) for found in problems), problems
    assert all(HASH not in found and HASH.upper() not in found for found in problems)


def test_a_key_and_a_certificate_that_do_not_belong_together_are_refused(tmp_path: Path) -> None:
    authority = Authority("test CA")
    cert, _ = authority.server().write(tmp_path, "one")
    _, key = authority.server().write(tmp_path, "two")
    problems = parse(f'[server.tls]\ncert = "file:{cert}"\nkey = "file:{key}"')
    assert problems == ["server.tls.key: does not belong to the certificate in server.tls.cert"]


def test_new_caller_key_prints_a_key_and_the_line_that_configures_it() -> None:
    result = run_cli("new-caller-key")
    assert result.returncode == 0
    key = re.search(r"(bgk_[A-Za-z0-9_-]{43})\b", result.stdout)
    line = re.search(r'^key_sha256 = "([0-9a-f]{64})"$', result.stdout, re.MULTILINE)
    assert key and line
    assert hashlib.sha256(key.group(1).encode()).hexdigest() == line.group(1)
    assert new_key() != new_key()


@pytest.mark.parametrize(
    ("address", "loopback"),
    [("127.0.0.1:1", True), ("127.9.9.9:1", True), ("[::1]:1", True), ("localhost:1", True), ("0.0.0.0:1", False),
     ("[::]:1", False), ("10.0.0.5:1", False), ("gateway.example:1", False)],
)
def test_loopback_addresses_are_told_from_exposed_ones(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


CALLER = f'\n[[callers]]\nid = "billing"\ntenant = "acme"\nkey_sha256 = "{HASH}"\npermissions = ["tokens"]\n'


def config_with(tmp_path: Path, server_lines: str = "", sections: str = "") -> Path:
    """test_cli's valid configuration with lines added to its [server] table and sections appended."""
    path = write_config(tmp_path, sections)
    path.write_text(path.read_text().replace("[server]\n", "[server]\n" + server_lines, 1))
    return path


@pytest.mark.parametrize(
    ("server_lines", "sections", "refusal"),
    [
        ("", "", "refusing to listen on 0.0.0.0:0 without callers"),
        ("", CALLER, "refusing to listen on 0.0.0.0:0 in plaintext"),
        ("allow_unauthenticated = true\n", "", "refusing to listen on 0.0.0.0:0 in plaintext"),
    ],
)
def test_serve_refuses_an_exposed_port_without_callers_or_tls_in_one_line(
    tmp_path: Path, server_lines: str, sections: str, refusal: str
) -> None:
    result = run_cli("serve", "--config", str(config_with(tmp_path, server_lines, sections)), "--listen", "0.0.0.0:0")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and refusal in lines[0], result.stderr
    assert not (tmp_path / "data" / "gateway.db").exists(), "nothing is created before the refusal"


def test_check_config_reports_an_exposed_listen_address(tmp_path: Path) -> None:
    result = run_cli("check-config", str(config_with(tmp_path, 'listen = "0.0.0.0:50051"\n')))
    assert result.returncode == 1 and "refusing to listen on 0.0.0.0:50051 without callers" in result.stderr


# -- TLS -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TlsGateway:
    harness: GatewayHarness
    authority: Authority
    server_cert: Path
    server_key: Path
    key: str


@pytest.fixture
async def tls_gateway(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> AsyncIterator[TlsGateway]:
    authority = Authority("test CA")
    cert, key = authority.server().write(tmp_path, "server")
    ca = tmp_path / "ca.crt"
    ca.write_bytes(authority.pem)
    caller_key = new_key()
    config = gateway_config(tmp_path, [wallet.provider_config()])
    callers = (CallerConfig("billing", "acme", frozenset(Permission), key_sha256(caller_key), "spiffe://acme.example/billing"),)
    tls = TlsConfig(cert=f"file:{cert}", key=f"file:{key}", client_ca=f"file:{ca}")
    config = dataclasses.replace(config, server=dataclasses.replace(config.server, tls=tls), callers=callers)
    async with running_gateway(config, clock) as harness:
        yield TlsGateway(harness, authority, cert, key, caller_key)


async def list_providers(address: str, credentials: grpc.ChannelCredentials, metadata: tuple[tuple[str, str], ...] = ()) -> None:
    async with grpc.aio.secure_channel(address, credentials) as channel:
        await api_grpc.BrokerGatewayStub(channel).ListProviders(api.ListProvidersRequest(), metadata=metadata, timeout=10)


async def test_client_certificates_from_another_ca_or_expired_are_refused_at_the_handshake(tls_gateway: TlsGateway) -> None:
    authority = tls_gateway.authority
    good = authority.client("billing", "spiffe://acme.example/billing")
    await list_providers(tls_gateway.harness.address, grpc.ssl_channel_credentials(authority.pem, good.key, good.cert))
    elsewhere = Authority("another CA").client("billing", "spiffe://acme.example/billing")
    expired = authority.client("billing", "spiffe://acme.example/billing", expired=True)
    for pem in (elsewhere, expired):
        credentials = grpc.ssl_channel_credentials(authority.pem, pem.key, pem.cert)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await list_providers(tls_gateway.harness.address, credentials, (("authorization", f"Bearer {tls_gateway.key}"),))
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE  # no call got through, even with a valid key


def served_certificate(port: int, authority: Authority, client_cert: Path, client_key: Path) -> x509.Certificate:
    """The certificate a fresh TLS handshake with the gateway is shown."""
    context = ssl.create_default_context(cadata=authority.pem.decode())
    context.load_cert_chain(client_cert, client_key)
    context.set_alpn_protocols(["h2"])
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


async def test_a_rotated_server_certificate_is_served_without_a_restart(tls_gateway: TlsGateway, tmp_path: Path) -> None:
    client_cert, client_key = tls_gateway.authority.client("billing", "spiffe://acme.example/billing").write(tmp_path, "client")
    port = tls_gateway.harness.running.port
    before = await asyncio.to_thread(served_certificate, port, tls_gateway.authority, client_cert, client_key)
    rotated = tls_gateway.authority.server()
    rotated_cert, _ = rotated.write(tmp_path, "rotated")
    tls_gateway.server_key.write_bytes(rotated.key)
    tls_gateway.server_cert.write_bytes(rotated.cert)
    after = await asyncio.to_thread(served_certificate, port, tls_gateway.authority, client_cert, client_key)
    assert before.serial_number != after.serial_number
    assert after == x509.load_pem_x509_certificate(rotated_cert.read_bytes())
    # A half-written rotation (a key without its certificate) keeps the last good pair in service.
    tls_gateway.server_key.write_bytes(tls_gateway.authority.server().key)
    kept = await asyncio.to_thread(served_certificate, port, tls_gateway.authority, client_cert, client_key)
    assert kept.serial_number == after.serial_number


# -- hostile headers, audit, planted keys ----------------------------------------------------------


@dataclasses.dataclass
class KeyedGateway:
    harness: GatewayHarness
    wallet: Wallet
    key: str
    spans: InMemorySpanExporter


@pytest.fixture
async def keyed_gateway(tmp_path: Path, wallet: Wallet, clock: FakeClock) -> AsyncIterator[KeyedGateway]:
    key = new_key()
    config = gateway_config(tmp_path, [wallet.provider_config()])
    config = dataclasses.replace(config, callers=(CallerConfig("billing", "acme", frozenset(Permission), key_sha256(key)),))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with running_gateway(config, clock, tracer_provider=provider) as harness:
        yield KeyedGateway(harness, wallet, key, exporter)


HOSTILE_HEADERS = {
    "huge": [("authorization", "Bearer " + "k" * 4000)],
    "two headers": [("authorization", "Bearer {key}"), ("authorization", "Bearer {key}")],
    "basic scheme": [("authorization", "Basic {key}")],
    "no scheme": [("authorization", "{key}")],
    "empty bearer": [("authorization", "Bearer ")],
    "key with a suffix": [("authorization", "Bearer {key}x")],
}


@pytest.mark.parametrize("case", list(HOSTILE_HEADERS))
async def test_hostile_authorization_headers_are_unauthenticated_and_never_logged(
    keyed_gateway: KeyedGateway, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    metadata = tuple((name, value.format(key=keyed_gateway.key)) for name, value in HOSTILE_HEADERS[case])
    failure = await expect_failure(keyed_gateway.harness.stub.ListProviders(api.ListProvidersRequest(), metadata=metadata, timeout=10))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CALLER_UNAUTHENTICATED")
    presented = [value for _, value in metadata]
    assert not any(value.split(" ")[-1][:20] in caplog.text for value in presented if len(value) > 10)


def test_headers_no_grpc_client_sends_are_refused_too() -> None:
    """Values gRPC clients refuse to send (non-ASCII) or that are not text at all, given to the
    authenticator as a hand-made HTTP/2 request would deliver them."""
    key = new_key()
    authenticator = Authenticator([CallerConfig("billing", "acme", frozenset(Permission), key_sha256(key))])
    assert authenticator.authenticate([("authorization", f"Bearer {key}")], dict).id == "billing"
    assert authenticator.authenticate([("authorization", f"bearer   {key} ")], dict).id == "billing"  # RFC 7235: any case
    for value in (f"Bearer {key}\u00e9", f"Bearer \u00e9{key}", key.encode(), None):
        with pytest.raises(CallerUnauthenticated):
            authenticator.authenticate([("authorization", value)], dict)


async def test_api_keys_never_appear_in_logs_audit_spans_or_errors(
    keyed_gateway: KeyedGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    harness, key = keyed_gateway.harness, keyed_gateway.key
    wrong = new_key()
    good = (("authorization", f"Bearer {key}"),)
    connection = await connect_wallet_as(harness, keyed_gateway.wallet, good)
    await harness.stub.GetAccessToken(api.GetAccessTokenRequest(connection_id=connection), metadata=good, timeout=10)
    errors = []
    for metadata in ((("authorization", f"Bearer {wrong}"),), good):
        call = harness.stub.GetAccessToken(api.GetAccessTokenRequest(connection_id="conn_absent"), metadata=metadata, timeout=10)
        failure = await expect_failure(call)
        errors.append(f"{failure.message} {failure.metadata}")
    seen = caplog.text + "".join(errors) + "".join(span.to_json() for span in keyed_gateway.spans.get_finished_spans())
    for secret in (key, wrong, key_sha256(key), key_sha256(wrong)):
        assert secret not in seen
    audit = [json.loads(record.getMessage()) for record in caplog.records if record.name == "broker_gateway.audit"]
    assert [(entry["rpc"], entry["caller"], entry["outcome"]["code"]) for entry in audit] == [
        ("Exchange", "billing", "OK"),
        ("GetAccessToken", "billing", "OK"),
        ("GetAccessToken", "", "UNAUTHENTICATED"),
        ("GetAccessToken", "billing", "NOT_FOUND"),
    ]
    token_call = audit[1]
    assert token_call["tenant"] == "acme" and token_call["provider"] == "wallet" and token_call["connection_id"] == connection
    assert re.fullmatch(r"[0-9a-f]{32}", token_call["trace_id"])
    assert audit[2]["outcome"]["reason"] == "CALLER_UNAUTHENTICATED"
    server_spans = [span for span in keyed_gateway.spans.get_finished_spans() if span.name.endswith("/GetAccessToken")]
    assert any((span.attributes or {}).get("broker_gateway.caller") == "billing" for span in server_spans)


async def connect_wallet_as(harness: GatewayHarness, wallet: Wallet, metadata: tuple[tuple[str, str], ...]) -> str:
    """``connect_wallet`` with credentials: the new connection's id."""
    start = await harness.stub.Authorize(
        api.AuthorizeRequest(provider="wallet", redirect_uri=wallet.provider_config().redirect_uris[0]), metadata=metadata, timeout=10
    )
    callback = await wallet.approve(start.authorization_url, "alice")
    response = await harness.stub.Exchange(
        api.ExchangeRequest(state=callback["state"], code=callback["code"]), metadata=metadata, timeout=10
    )
    return response.connection.connection_id


async def test_without_callers_every_call_is_the_default_tenants(wallet_gateway: GatewayHarness, wallet: Wallet) -> None:
    connection = await connect_wallet(wallet_gateway, wallet)
    assert await wallet_gateway.application.gateway.store.get_connection("default", connection.connection_id) is not None


def test_an_audit_file_gets_json_lines_readable_only_by_the_owner(tmp_path: Path) -> None:
    from broker_gateway import audit
    from broker_gateway.callers import ANONYMOUS

    path = tmp_path / "audit" / "audit.jsonl"
    logger = logging.getLogger("broker_gateway.audit")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    try:
        audit.write_to_file(str(path))
        audit.record("Revoke", ANONYMOUS, api.RevokeRequest(connection_id="conn_1\nforged"), None, None)
        for handler in logger.handlers:
            handler.flush()
    finally:
        for handler in logger.handlers[len(handlers):]:
            handler.close()
        logger.handlers, logger.level, logger.propagate = handlers, level, propagate
    lines = path.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["connection_id"] == "conn_1\nforged"
    assert path.stat().st_mode & 0o777 == 0o600
