"""Plugins: a separately installed distribution is discovered through the entry-point group, the
allow- and block-lists work, and every hook is documented and tested (datasette's rule)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from broker_gateway import hookspecs
from broker_gateway.plugins import PluginError, plugin_manager, provider_types, sandbox_upstreams
from broker_gateway.provider import Provider, hookimpl
from broker_gateway.store.crypto import generate_key
from broker_gateway.testing import free_port
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import broker_gateway_service_pb2_grpc as api_grpc
from conftest import failure_of
from google.protobuf import json_format
from support.distributions import install_distribution

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "fixtures" / "sample_plugin"
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("broker_gateway_"))


@pytest.fixture(scope="module")
def installed_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample plugin installed with pip into its own directory, as a separate distribution."""
    _, site = install_distribution(SAMPLE, tmp_path_factory.mktemp("sample"))
    return site


def test_installed_plugin_serves_its_provider_type(installed_sample: Path, tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"""
[store]
path = "gateway.db"

[[encryption.keys]]
id = "k1"
key = "{generate_key()}"

[[providers]]
id = "echo"
type = "sample-echo"
redirect_uris = ["https://app.example/callback"]
"""
    )
    address = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONPATH": str(installed_sample)}
    command = [str(Path(sys.executable).parent / "broker-gateway"), "serve", "--config", str(config), "--listen", address]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with grpc.insecure_channel(address) as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            stub = api_grpc.BrokerGatewayStub(channel)
            providers = stub.ListProviders(api.ListProvidersRequest(), timeout=10).providers
            assert [(p.id, p.type) for p in providers] == [("echo", "sample-echo")]
            assert providers[0].operations[0].name == "echo"
            request = api.InvokeOperationRequest(provider="echo", operation="echo")
            request.params.update({"text": "hello"})
            result = json_format.MessageToDict(stub.InvokeOperation(request, timeout=10).result)
            assert result == {"echo": "hello", "provider": "echo"}
            # An operations-only type has no user flow: the caller is told so, not INTERNAL.
            with pytest.raises(grpc.RpcError) as refused:
                stub.Authorize(api.AuthorizeRequest(provider="echo", redirect_uri="https://app.example/callback"), timeout=10)
            failure = failure_of(refused.value)
            assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CAPABILITY_UNSUPPORTED")
            assert failure.metadata == {"provider": "echo", "capability": "authorize"}
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output


def test_hook_broker_gateway_register_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    class Throwaway(Provider):
        type = "throwaway"

    class Plugin:
        @hookimpl
        def broker_gateway_register_providers(self, register):
            register(Throwaway)

    registry = provider_types(plugin_manager([Plugin()]))
    assert registry["throwaway"] is Throwaway and "generic-oauth2" in registry

    class Twice:
        @hookimpl
        def broker_gateway_register_providers(self, register):
            register(Throwaway)

    with pytest.raises(PluginError, match="registered twice"):
        provider_types(plugin_manager([Plugin(), Twice()]))


def test_hook_broker_gateway_register_sandboxes() -> None:
    assert {"wallet", "bybit", "okx"} <= {upstream.provider_id for upstream in sandbox_upstreams(plugin_manager())}


def test_allow_and_block_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER_GATEWAY_LOAD_PLUGINS", "")
    assert provider_types(plugin_manager()) == {}
    monkeypatch.setenv("BROKER_GATEWAY_LOAD_PLUGINS", "oauth2")
    assert set(provider_types(plugin_manager())) == {"generic-oauth2"}
    monkeypatch.delenv("BROKER_GATEWAY_LOAD_PLUGINS")
    monkeypatch.setenv("BROKER_GATEWAY_BLOCK_PLUGINS", "oauth2")
    assert "generic-oauth2" not in provider_types(plugin_manager())


def test_a_misspelt_hook_fails_loudly() -> None:
    class Typo:
        @hookimpl
        def broker_gateway_register_provider(self, register):
            pass

    with pytest.raises(Exception, match="unknown hook"):
        plugin_manager([Typo()])


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    guide = (ROOT / "docs" / "plugins.md").read_text()
    arguments = ", ".join(getattr(hookspecs, hook).__code__.co_varnames[: getattr(hookspecs, hook).__code__.co_argcount])
    assert re.search(rf"^#+ `{hook}\({re.escape(arguments)}\)`", guide, re.MULTILINE), f"docs/plugins.md lacks {hook}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook: str) -> None:
    assert f"test_hook_{hook}" in globals()
