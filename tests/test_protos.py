"""The API definition: buf lint passes, and the checked-in stubs are exactly what generation makes."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / "tools" / "node" / "node_modules" / ".bin" / "buf"
STUBS = ROOT / "service" / "broker_gateway" / "v1"


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
    generated = tmp_path / "service" / "broker_gateway" / "v1"
    names = sorted(p.name for p in generated.iterdir())
    checked_in = sorted(p.name for p in STUBS.iterdir() if "_pb2" in p.name)
    assert names == checked_in, "stub files differ; run `make generate`"
    _, mismatch, errors = filecmp.cmpfiles(generated, STUBS, names, shallow=False)
    assert not mismatch and not errors, f"stale stubs {mismatch + errors}; run `make generate`"


def test_every_error_reason_the_code_raises_is_declared() -> None:
    """ErrorInfo.reason is the ErrorReason value name without its ERROR_REASON_ prefix."""
    from broker_gateway import errors
    from broker_gateway.v1 import error_reason_pb2

    declared = {name.removeprefix("ERROR_REASON_") for name in error_reason_pb2.ErrorReason.keys()}  # noqa: SIM118 (an enum wrapper, not a dict)
    raised = {
        cls.reason for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.GatewayError)
    }
    assert raised <= declared, f"undeclared reasons: {sorted(raised - declared)}"
