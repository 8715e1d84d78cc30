"""The plugin API imports without grpc, as pyproject.toml promises plugin authors: ``errors`` carries
its status codes as ``errors.Code``, which the handler wrapper alone turns into gRPC statuses."""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import pytest
from broker_gateway.errors import Code, GatewayError, ProviderUnavailable, ReauthRequired
from broker_gateway.handler_wrapper import to_status
from grpc_status import rpc_status

PLUGIN_API = ("provider", "oauth2", "errors", "upstream", "hookspecs")


def test_importing_the_plugin_api_loads_no_grpc() -> None:
    """Why: a plugin package depends on httpx, pluggy and the OpenTelemetry API only; were grpc (or
    the protobuf runtime) imported on the way, the promise in pyproject.toml would be false."""
    script = (
        "import json, sys\n"
        + "".join(f"import broker_gateway.{module}\n" for module in PLUGIN_API)
        + "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60).stdout)
    assert {f"broker_gateway.{module}" for module in PLUGIN_API} <= set(loaded)
    assert [name for name in loaded if name.split(".")[0] in ("grpc", "grpc_status", "google")] == []


def test_every_code_is_grpcs_code_of_the_same_name_and_number() -> None:
    """Why: the handler wrapper sends ``Code``'s number as the status code; a code that differed
    from grpc's would reach callers as another status."""
    assert [(code.name, code.value) for code in Code] == [(code.name, code.value[0]) for code in grpc.StatusCode]


def test_an_errors_code_reaches_grpc_as_the_status_of_that_name() -> None:
    for error in (ReauthRequired("gone"), ProviderUnavailable("down", retry_after=1.0), GatewayError("unexpected")):
        status = rpc_status.to_status(to_status(error))
        assert status.code is grpc.StatusCode[error.code.name], error


def test_an_error_class_written_with_grpcs_code_gets_the_code_of_that_name() -> None:
    """A plugin's error class from before ``Code`` keeps its status, retry advice and metrics."""

    class LegacyOutage(GatewayError):
        code = grpc.StatusCode.UNAVAILABLE
        reason = "LEGACY_OUTAGE"

    assert LegacyOutage.code is Code.UNAVAILABLE
    status = rpc_status.to_status(to_status(LegacyOutage("down", retry_after=2.0)))
    assert status.code is grpc.StatusCode.UNAVAILABLE


def test_an_error_class_whose_code_names_no_status_is_refused_when_made() -> None:
    with pytest.raises(TypeError, match="must be a broker_gateway.errors.Code"):

        class Nonsense(GatewayError):
            code = 14  # type: ignore[assignment]
