"""The API definition: buf lint passes, and the checked-in stubs are exactly what generation makes (the
server's and the Python client's own copy, which may be loaded together)."""

from __future__ import annotations

import filecmp
import importlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / "tools" / "node" / "node_modules" / ".bin" / "buf"
STUBS = ROOT / "service" / "broker_gateway" / "v1"
# Where buf.gen.yaml writes each copy of the Python stubs (relative to the repository root).
PYTHON_STUBS = ["service/broker_gateway/v1", "clients/python/src/broker_gateway_client/v1"]


def buf(*args: str) -> subprocess.CompletedProcess[str]:
    # The local Python plugin runs as `python`: the interpreter running the tests.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([str(BUF), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_buf_lint_passes() -> None:
    result = buf("lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_checked_in_python_stubs_match_generation(tmp_path: Path) -> None:
    result = buf("generate", "--output", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    written = sorted({p.parent.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()})
    assert written == sorted(PYTHON_STUBS), "buf.gen.yaml writes elsewhere than the two copies of the stubs"
    for directory in PYTHON_STUBS:
        generated, stubs = tmp_path / directory, ROOT / directory
        names = sorted(p.name for p in generated.iterdir())
        checked_in = sorted(p.name for p in stubs.iterdir() if "_pb2" in p.name)
        assert names == checked_in, f"stub files differ in {directory}; run `make generate`"
        _, mismatch, errors = filecmp.cmpfiles(generated, stubs, names, shallow=False)
        assert not mismatch and not errors, f"stale stubs {mismatch + errors} in {directory}; run `make generate`"


def test_the_python_clients_stubs_describe_the_same_api_and_load_beside_the_servers() -> None:
    """Only the Python module paths differ: the embedded descriptors are the server's byte for byte, so
    one process can import both copies and their messages are the same classes."""
    for path in sorted(STUBS.glob("*_pb2.py")):
        server = importlib.import_module(f"broker_gateway.v1.{path.stem}")
        client = importlib.import_module(f"broker_gateway_client.v1.{path.stem}")
        assert client.DESCRIPTOR.serialized_pb == server.DESCRIPTOR.serialized_pb, path.name
        for name in server.DESCRIPTOR.message_types_by_name:
            assert getattr(client, name) is getattr(server, name), f"{path.stem}.{name}"


def test_every_error_reason_the_code_raises_is_declared() -> None:
    """ErrorInfo.reason is the ErrorReason value name without its ERROR_REASON_ prefix."""
    from broker_gateway import errors
    from broker_gateway.v1 import error_reason_pb2

    declared = {name.removeprefix("ERROR_REASON_") for name in error_reason_pb2.ErrorReason.keys()}  # noqa: SIM118 (an enum wrapper, not a dict)
    raised = {
        cls.reason for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.GatewayError)
    }
    assert raised <= declared, f"undeclared reasons: {sorted(raised - declared)}"
