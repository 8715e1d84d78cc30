"""The sandbox as a new user meets it: the real CLI, driven by the real grpcurl binary.

grpcurl works through server reflection alone (no proto files), so this also proves reflection
serves every descriptor a caller needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from broker_gateway.testing import running_sandbox

BIN = Path(sys.executable).parent
SERVICE = "broker_gateway.v1.BrokerGateway"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("sandbox")
    with running_sandbox(data_dir) as description:
        yield {**description, "data_dir": data_dir}


def grpcurl(gateway: str, *args: str, data: dict[str, Any] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "grpcurl"), "-plaintext", "-max-time", "10"]
    if data is not None:
        command += ["-d", json.dumps(data)]
    result = subprocess.run([*command, gateway, *args], capture_output=True, text=True, timeout=30, env=os.environ.copy(), check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def call(gateway: str, method: str, data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(grpcurl(gateway, f"{SERVICE}/{method}", data=data).stdout)


def test_reflection_lists_and_describes_the_services(sandbox: dict[str, Any]) -> None:
    services = grpcurl(sandbox["gateway"], "list").stdout.split()
    assert SERVICE in services and "grpc.health.v1.Health" in services
    described = grpcurl(sandbox["gateway"], "describe", SERVICE).stdout
    for rpc in ("Authorize", "Exchange", "Refresh", "Revoke", "GetUserInfo", "GetAccessToken", "InvokeOperation"):
        assert f"rpc {rpc} (" in described
    message = grpcurl(sandbox["gateway"], "describe", "broker_gateway.v1.Connection").stdout
    assert "access_token_expire_time" in message and "ConnectionStatus" in message
    health = json.loads(grpcurl(sandbox["gateway"], "grpc.health.v1.Health/Check", data={}).stdout)
    assert health == {"status": "SERVING"}


def test_sandbox_json_describes_the_wallet(sandbox: dict[str, Any]) -> None:
    wallet = sandbox["upstreams"]["wallet"]
    assert wallet["base_url"].startswith("http://127.0.0.1:") and wallet["client_id"] and wallet["client_secret"]
    assert sandbox["redirect_uri"].endswith("/callback")
    assert oct((sandbox["data_dir"] / "sandbox.json").stat().st_mode & 0o777) == "0o600"


def test_whole_flow_through_grpcurl(sandbox: dict[str, Any]) -> None:
    gateway, redirect_uri = sandbox["gateway"], sandbox["redirect_uri"]
    providers = call(gateway, "ListProviders", {})["providers"]
    assert {"wallet", "bybit", "okx"} <= {p["id"] for p in providers}

    start = call(gateway, "Authorize", {"provider": "wallet", "redirect_uri": redirect_uri, "scopes": ["profile", "balance"]})
    approval = httpx.get(start["authorizationUrl"] + "&approve=carol")
    assert approval.status_code == 302
    callback = dict(parse_qsl(urlsplit(approval.headers["location"]).query))

    page = httpx.get(approval.headers["location"])
    assert page.status_code == 200 and f"{SERVICE}/Exchange" in page.text and callback["code"] in page.text

    connection = call(gateway, "Exchange", {"state": callback["state"], "code": callback["code"]})["connection"]
    assert connection["status"] == "CONNECTION_STATUS_ACTIVE"
    connection_id = connection["connectionId"]

    info = call(gateway, "GetUserInfo", {"connection_id": connection_id})["userInfo"]
    assert info["username"] == "carol" and info["raw"]["balance"]["currency"] == "USD"

    refreshed = call(gateway, "Refresh", {"connection_id": connection_id})["connection"]
    assert refreshed["updateTime"] >= connection["updateTime"]

    revoked = call(gateway, "Revoke", {"connection_id": connection_id})
    assert revoked["connection"]["status"] == "CONNECTION_STATUS_REVOKED"

    replay = grpcurl(gateway, f"{SERVICE}/Exchange", data={"state": callback["state"], "code": callback["code"]}, check=False)
    assert replay.returncode != 0
    assert "FailedPrecondition" in replay.stderr and '"reason":"AUTHZ_TRANSACTION_INVALID"' in replay.stderr.replace(" ", "")
