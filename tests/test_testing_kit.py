"""The testing kit itself (broker_gateway.testing): its pytest plugin costs a run nothing until a test
uses it, and its checks fail when they should (a leak found wherever it is, a call that succeeds
where a failure was expected, the wrong reason)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from _pytest.fixtures import FixtureFunctionDefinition
from _pytest.outcomes import Failed
from broker_gateway.testing import (
    REDIRECT_URI,
    GatewayHarness,
    LeakWatch,
    ProviderConfig,
    assert_no_secret_leaks,
    expect_failure,
    provider_context,
)
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway_oauth2.provider import GenericOAuth2Provider

SECRET = "kit-planted-secret-6c1e9a3f"


def test_the_pytest_plugin_imports_nothing_of_the_gateway() -> None:
    """The plugin loads in every pytest run of anyone who installed the kit: it must stay light."""
    probe = "import sys, broker_gateway.testing.plugin, json; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout))
    heavy = {"grpc", "starlette", "uvicorn", "opentelemetry", "broker_gateway.app", "broker_gateway.gateway", "httpx"}
    assert not heavy & {name.split(".")[0] if not name.startswith("broker_gateway") else name for name in loaded}


def test_a_leak_is_found_wherever_it_is(tmp_path: Path) -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s", (SECRET,), None)
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "gateway.db").write_bytes(b"\x00" + SECRET.encode())
    places: dict[str, dict[str, Any]] = {
        "logs": {"logs": [record]},
        "errors": {"errors": [f"refused {SECRET}"]},
        "store": {"files": [tmp_path / "store"]},
    }
    for where, haystack in places.items():
        with pytest.raises(AssertionError, match=f"the secret appears in .*{where}"):
            assert_no_secret_leaks({"secret": SECRET}, **haystack)
    clean = logging.LogRecord("x", logging.INFO, __file__, 1, "token %s", ("elsewhere",), None)
    assert_no_secret_leaks({"secret": SECRET}, logs=[clean], errors=["refused"], files=[tmp_path / "nothing"])


def test_an_empty_secret_proves_nothing() -> None:
    with pytest.raises(AssertionError, match="empty"):
        assert_no_secret_leaks({"secret": ""})


async def test_expect_failure_fails_on_success_and_on_the_wrong_reason(wallet_gateway: GatewayHarness) -> None:
    with pytest.raises(Failed):
        await expect_failure(wallet_gateway.stub.ListProviders(api.ListProvidersRequest(), timeout=10))
    missing = wallet_gateway.stub.GetConnection(api.GetConnectionRequest(connection_id="conn_none"), timeout=10)
    with pytest.raises(AssertionError, match="CONNECTION_NOT_FOUND"):
        await expect_failure(missing, grpc.StatusCode.NOT_FOUND, "SOMETHING_ELSE")


async def test_the_leak_watch_sees_the_gateways_logs_spans_and_failures(start_gateway: Any, leak_watch: LeakWatch) -> None:
    entry = ProviderConfig("w", GenericOAuth2Provider.type, (REDIRECT_URI,), {
        "client_id": "c", "client_secret": SECRET, "authorization_endpoint": "http://127.0.0.1:9/a",
        "token_endpoint": "http://127.0.0.1:9/t",
    }, allow_insecure_http=True)
    harness: GatewayHarness = await start_gateway([entry], tracer_provider=leak_watch.tracer_provider)
    await leak_watch.fails(harness.stub.GetConnection(api.GetConnectionRequest(connection_id="conn_none"), timeout=10))
    assert leak_watch.spans and leak_watch.records and leak_watch.failures
    leak_watch.assert_no_leaks({"client secret": SECRET})
    logging.getLogger("broker_gateway.test").warning("leaked %s", SECRET)
    with pytest.raises(AssertionError, match="appears in logs"):
        leak_watch.assert_no_leaks({"client secret": SECRET})


async def test_a_provider_context_sends_through_the_upstream_client() -> None:
    """The context's HTTP is the gateway's UpstreamClient: a handler's answer comes back as an
    UpstreamResponse, read within the size cap."""
    import httpx

    context = provider_context("p", handler=lambda request: httpx.Response(200, json={"url": str(request.url)}))
    response = await context.http.request("GET", "https://upstream.example/x")
    assert response.json() == {"url": "https://upstream.example/x"}
    assert context.clock() == context.clock(), "a fake clock stands still"


def test_every_public_name_and_fixture_of_the_kit_is_documented() -> None:
    """As for hooks: a name a plugin author cannot find in docs/plugins.md does not exist for them."""
    from broker_gateway import testing
    from broker_gateway.testing import plugin

    guide = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text()
    section = guide[guide.index("## Testing your plugin") :]
    fixtures = [name for name, value in vars(plugin).items() if isinstance(value, FixtureFunctionDefinition)]
    assert {"fake_clock", "local_upstream", "start_gateway", "leak_watch"} <= set(fixtures)
    for name in [*testing.__all__, *fixtures, "ProviderConformance", "OperationsOnlyConformance"]:
        assert f"`{name}" in section, f"docs/plugins.md does not document {name}"
