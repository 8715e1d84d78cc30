"""The ``broker-gateway`` command as an operator runs it: a real subprocess, real files, real signals.

Why: ``check-config`` is how operators find every mistake in one go, ``serve`` must come up healthy
and leave cleanly on SIGTERM (docs/design/grpc.md), and ``generate-key`` must print a key the
configuration accepts.
"""

from __future__ import annotations

import base64
import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from broker_gateway.cli import freeze_startup_heap
from broker_gateway.testing import free_port
from grpc_health.v1 import health_pb2, health_pb2_grpc

CLI = Path(sys.executable).parent / "broker-gateway"
KEY_ENV = "BG_TEST_ENCRYPTION_KEY"
KEY = base64.b64encode(bytes(range(32))).decode()

PROVIDER = """
[[providers]]
id = "{id}"
type = "generic-oauth2"
redirect_uris = ["https://app.example/callback"]
client_id = "client-{id}"
client_secret = "secret-{id}"
authorization_endpoint = "https://{id}.as.example/authorize"
token_endpoint = "https://{id}.as.example/token"
{extra}
"""

VALID = f"""
[server]
reflection = false
shutdown_grace_seconds = 5

[store]
path = "data/gateway.db"

[[encryption.keys]]
id = "k1"
key = "env:{KEY_ENV}"
""" + PROVIDER.format(id="acme", extra='scopes = ["profile"]')

# Problems found while reading the file (secrets, ids, keys)...
FILE_PROBLEMS = {
    "providers[envsecret].client_secret: environment variable BG_TEST_UNSET_SECRET is not set": PROVIDER.format(
        id="envsecret", extra=""
    ).replace('client_secret = "secret-envsecret"', 'client_secret = "env:BG_TEST_UNSET_SECRET"'),
    "providers[dup]: the id is used twice": PROVIDER.format(id="dup", extra="") * 2,
    "encryption.keys[1].key": '[[encryption.keys]]\nid = "bad"\nkey = "not base64!"\n',
}
# ...and problems found by the provider types themselves.
PROVIDER_PROBLEMS = {
    "providers[mystery].type: no provider type 'no-such-type' is registered": (
        '[[providers]]\nid = "mystery"\ntype = "no-such-type"\nredirect_uris = ["https://app.example/callback"]\n'
    ),
    "providers[noclient].client_id: required": PROVIDER.format(id="noclient", extra="").replace(
        'client_id = "client-noclient"\n', ""
    ),
    "providers[plain].token_endpoint: plain http is refused": PROVIDER.format(id="plain", extra="").replace(
        "https://plain.as.example/token", "http://plain.as.example/token"
    ),
    "providers[issuer-b].issuer: the same issuer as provider issuer-a": PROVIDER.format(
        id="issuer-a", extra='issuer = "https://shared.example"'
    )
    + PROVIDER.format(id="issuer-b", extra='issuer = "https://shared.example"'),
}


def environment(**extra: str) -> dict[str, str]:
    """The test's environment without overrides that would change what the CLI reads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_GATEWAY_") and k != "BG_TEST_UNSET_SECRET"}
    env[KEY_ENV] = KEY
    env.update(extra)
    return env


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], env=environment(), capture_output=True, text=True, timeout=30, check=False)


def write_config(tmp_path: Path, *sections: str) -> Path:
    """A config made of a valid base (server, store, one key) plus ``sections``."""
    path = tmp_path / "gateway.toml"
    path.write_text(VALID.split("[[providers]]")[0] + "".join(sections))
    return path


def check_config(path: Path) -> tuple[int, str]:
    result = run_cli("check-config", str(path))
    return result.returncode, result.stderr + result.stdout


# -- check-config ----------------------------------------------------------------------------------


def test_check_config_accepts_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(VALID)
    code, output = check_config(path)
    assert (code, output.strip()) == (0, f"{path}: OK")


def test_check_config_reports_every_file_problem_at_once(tmp_path: Path) -> None:
    code, output = check_config(write_config(tmp_path, *FILE_PROBLEMS.values()))
    assert code == 1
    for problem in FILE_PROBLEMS:
        assert problem in output
    assert f"{len(FILE_PROBLEMS)} problem(s)" in output


def test_check_config_reports_every_provider_problem_at_once(tmp_path: Path) -> None:
    code, output = check_config(write_config(tmp_path, *PROVIDER_PROBLEMS.values()))
    assert code == 1
    for problem in PROVIDER_PROBLEMS:
        assert problem in output
    assert f"{len(PROVIDER_PROBLEMS)} problem(s)" in output


def test_check_config_reports_all_problems_of_both_kinds_at_once(tmp_path: Path) -> None:
    """One run lists everything, so an operator never fixes a file one error at a time."""
    problems = {**FILE_PROBLEMS, **PROVIDER_PROBLEMS}
    code, output = check_config(write_config(tmp_path, *problems.values()))
    assert code == 1
    missing = [problem for problem in problems if problem not in output]
    assert missing == []


def test_check_config_of_a_missing_file(tmp_path: Path) -> None:
    code, output = check_config(tmp_path / "absent.toml")
    assert code == 1
    assert "absent.toml" in output


# -- serve -----------------------------------------------------------------------------------------


def wait_until_serving(process: subprocess.Popen[bytes], address: str, timeout: float = 20.0) -> None:
    give_up = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            assert process.poll() is None, "the server exited before becoming healthy"
            try:
                if stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            assert time.monotonic() < give_up, "the server never reported SERVING"
            time.sleep(0.1)


def test_serve_becomes_healthy_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(VALID)
    address = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [str(CLI), "serve", "--config", str(config), "--listen", address], env=environment(), stdout=log, stderr=log
    )
    try:
        wait_until_serving(process, address)
        assert (tmp_path / "data" / "gateway.db").exists(), "the store path is relative to the config file"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0, (tmp_path / "serve.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


# -- generate-key ----------------------------------------------------------------------------------


def test_generate_key_prints_a_fresh_32_byte_key() -> None:
    first, second = run_cli("generate-key"), run_cli("generate-key")
    assert first.returncode == 0
    key = first.stdout.strip()
    assert len(base64.b64decode(key, validate=True)) == 32
    assert second.stdout.strip() != key


def test_the_startup_heap_is_frozen_out_of_the_collectors_sight() -> None:
    """``serve`` calls this once its server is up (the subprocess test above runs that path)."""
    before = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
