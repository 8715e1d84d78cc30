"""``serve`` loads no simulator, Starlette or uvicorn, and ``sandbox`` says what to install when the
``sandbox`` extra is missing.

Why: a gateway in production should carry neither the simulators' code nor their web stack (issue 14:
"simulators out of the server"), so the plugins import their simulators only in the factories the
sandbox calls, and Starlette, uvicorn and python-multipart are the ``broker-gateway[sandbox]`` extra.
One eager import anywhere on ``serve``'s path would undo both, which is what the first test catches:
it runs ``broker-gateway serve`` under ``-X importtime`` (the issue's acceptance) with a provider of
each built-in type, and reads every module it imported until it was serving and had stopped.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from broker_gateway.cli import SANDBOX_EXTRA
from test_cli import VALID, environment, free_port
from test_config_strict import BYBIT, OKX
from test_logs import serve_log

#: The sandbox modules a plugin may import while the gateway loads it: the types it registers with.
LIGHT_SANDBOX_MODULES = {"broker_gateway.sandbox", "broker_gateway.sandbox.registration"}
#: python-multipart's older import name, which Starlette falls back to.
EXTRA_PACKAGES = {*SANDBOX_EXTRA, "multipart"}


#: A line of ``-X importtime``: the module's own and cumulative microseconds, then its name.
IMPORT_LINE = re.compile(r"import time:\s+\d+ \|\s+\d+ \|\s+(\S+)")


def imported_modules(importtime_output: str) -> list[str]:
    """The modules ``python -X importtime`` reported, in the order they were imported (other lines,
    such as the gateway's log, are passed over)."""
    return [match[1] for match in map(IMPORT_LINE.match, importtime_output.splitlines()) if match]


def sandbox_modules(modules: list[str]) -> list[str]:
    """Those of ``modules`` that belong to the sandbox extra or to a simulator (any module with a
    ``sandbox`` part in its name, built-in or not), but for the light ones plugins import."""
    return [
        name
        for name in modules
        if name.split(".")[0] in EXTRA_PACKAGES or ("sandbox" in name.split(".") and name not in LIGHT_SANDBOX_MODULES)
    ]


def test_serve_imports_no_simulator_starlette_or_uvicorn(tmp_path: Path) -> None:
    # PYTHONPROFILEIMPORTTIME is -X importtime for the installed ``broker-gateway`` command.
    modules = imported_modules("\n".join(serve_log(tmp_path, VALID + BYBIT + OKX, PYTHONPROFILEIMPORTTIME="1")))
    # The gateway loaded every built-in plugin and its provider, and the types plugins register with.
    for loaded in ("broker_gateway_oauth2.provider", "broker_gateway_bybit.provider", "broker_gateway_okx.provider"):
        assert loaded in modules
    assert "broker_gateway.sandbox.registration" in modules
    assert sandbox_modules(modules) == []


def test_the_check_sees_what_building_the_sandbox_imports() -> None:
    """What the test above would report if serve built the simulators or started the runner."""
    build_all = (
        "from broker_gateway.plugins import plugin_manager, sandbox_upstreams\n"
        "from broker_gateway.sandbox import SandboxEnvironment\n"
        "import broker_gateway.sandbox.runner\n"
        "for upstream in sandbox_upstreams(plugin_manager()):\n"
        "    upstream.build(SandboxEnvironment('http://127.0.0.1:1', 'http://127.0.0.1:2/callback'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", build_all], env=environment(), capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = set(sandbox_modules(imported_modules(result.stderr)))
    expected = {
        "broker_gateway.sandbox.runner",
        "broker_gateway.sandbox.simkit",
        "broker_gateway_oauth2.sandbox",
        "broker_gateway_bybit.sandbox",
        "broker_gateway_okx.sandbox",
        "starlette",
        "uvicorn",
        "python_multipart",
    }
    assert expected <= found


@pytest.mark.parametrize("missing", SANDBOX_EXTRA)
def test_sandbox_without_its_extra_says_what_to_install(tmp_path: Path, missing: str) -> None:
    """The module is blocked in the subprocess (``sys.modules[name] = None`` makes importing it fail, as
    when it is not installed), so nothing needs uninstalling."""
    data_dir = tmp_path / "sandbox-data"
    run_without = (
        "import sys\n"
        f"sys.modules[{missing!r}] = None\n"
        "from broker_gateway.cli import main\n"
        f"sys.exit(main(['sandbox', '--listen', '127.0.0.1:{free_port()}', '--data-dir', {str(data_dir)!r}]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", run_without], env=environment(), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert result.stderr == f"broker-gateway: the sandbox needs {missing}: pip install 'broker-gateway[sandbox]'\n"
    assert not data_dir.exists()
