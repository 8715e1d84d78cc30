"""The Go, TypeScript, Java, Python and Rust clients: generated from protos/, reproducible, and run against
a live gateway.

- Generation: each language's buf template (``buf.gen.<lang>.yaml``) reproduces the checked-in stubs
  byte for byte, with plugins at the versions the packages' runtimes pin (the Python stubs, the server's
  and the Python client's, are checked the same way in test_protos.py).
- Compatibility: ``buf breaking`` passes against the last released API (``protos-released/``) and
  fails on a deliberately breaking change.
- Examples: one sandbox gateway with TLS and a caller key (the real CLI, as a user starts it:
  ``sandbox --secure``); each language's example program is built with that language's own toolchain
  and run against it, given the CA file and the key from sandbox.json. Each lists providers, authorizes,
  approves through the simulator's ``approve=<username>`` shortcut, exchanges, reads the user info,
  watches its connections while it revokes the new one (WatchConnections' REVOKED event), and then
  reads the ErrorInfo reason of a replayed Exchange; the test checks what it prints against the
  gateway itself. Given a key the gateway does not know, each fails at its first call, UNAUTHENTICATED.
  The Python and Rust examples also read an access token (printing only its type and expiry). The
  Python client is installed into a fresh venv, which must hold no server dependency.

The first Maven build downloads the Java dependencies into ~/.m2, the first Go build fills the Go
module and build caches and the first Cargo build compiles the Rust crates into clients/rust/target;
later runs reuse them, hence the generous timeouts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from broker_gateway.callers import new_key
from broker_gateway.sandbox.simkit import stable_user_id
from broker_gateway.testing import running_sandbox
from broker_gateway.v1 import broker_gateway_service_pb2 as api
from broker_gateway.v1 import broker_gateway_service_pb2_grpc as api_grpc
from broker_gateway.v1 import connection_pb2

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BUF = ROOT / "tools" / "node" / "node_modules" / ".bin" / "buf"
CLIENTS = ROOT / "clients"

# Template -> the directory it generates (relative to the repository root); nothing else may be written.
GENERATED = {
    "go": ("buf.gen.go.yaml", "clients/go/gen"),
    "typescript": ("buf.gen.typescript.yaml", "clients/typescript/src/gen"),
    "java": ("buf.gen.java.yaml", "clients/java/src/main/java/io/github/brokergateway/v1"),
    "rust": ("buf.gen.rust.yaml", "clients/rust/src/gen"),
}

BUILD_TIMEOUT = 900  # seconds; a first Maven build downloads a few dozen megabytes
RUST_BUILD_TIMEOUT = 2400  # a first Cargo build compiles tonic, rustls and hyper on two busy cores
RUN_TIMEOUT = 120


def execute(command: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, check=False)


def run(command: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    """Run a command, fail the test with its output if it fails, and return its standard output."""
    result = execute(command, cwd=cwd, timeout=timeout, env=env)
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # The Python template's local plugin runs as `python`: the interpreter running the tests.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env, check=False)


def tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# --- Generation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", sorted(GENERATED))
def test_checked_in_stubs_match_generation(language: str, tmp_path: Path) -> None:
    template, directory = GENERATED[language]
    result = buf("generate", "--template", template, "--output", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    stray = sorted(p for p in written if not p.startswith(directory + "/"))
    assert not stray, f"{template} writes outside {directory}: {stray}"
    generated, checked_in = tree(tmp_path / directory), tree(ROOT / directory)
    assert sorted(generated) == sorted(checked_in), f"{language} stub files differ; run `make generate`"
    stale = sorted(name for name in generated if generated[name] != checked_in[name])
    assert not stale, f"stale {language} stubs {stale}; run `make generate`"


def test_generators_match_the_runtimes_the_packages_pin() -> None:
    """Generated code must come from the plugin version that matches the runtime each package depends on."""
    go_mod = (CLIENTS / "go" / "go.mod").read_text()
    go_runtime = re.search(r"google\.golang\.org/protobuf (v\S+)", go_mod)
    go_header = (CLIENTS / "go" / "gen" / "broker_gateway" / "v1" / "connection.pb.go").read_text()
    assert go_runtime and f"protoc-gen-go {go_runtime.group(1)}\n" in go_header

    package = json.loads((CLIENTS / "typescript" / "package.json").read_text())
    es_runtime = package["dependencies"]["@bufbuild/protobuf"]
    assert package["devDependencies"]["@bufbuild/protoc-gen-es"] == es_runtime
    es_header = (CLIENTS / "typescript" / "src" / "gen" / "broker_gateway" / "v1" / "connection_pb.ts").read_text()
    assert f"@generated by protoc-gen-es v{es_runtime} " in es_header

    pom = (CLIENTS / "java" / "pom.xml").read_text()
    java_runtime = re.search(r"<protobuf\.version>([^<]+)</protobuf\.version>", pom)
    java_header = (ROOT / GENERATED["java"][1] / "Connection.java").read_text()
    assert java_runtime and f"// Protobuf Java Version: {java_runtime.group(1)}\n" in java_header
    makefile = (ROOT / "Makefile").read_text()
    grpc_java = re.search(r"<grpc\.version>([^<]+)</grpc\.version>", pom)
    assert java_runtime and grpc_java
    assert re.search(rf"^PROTOC_VERSION\s*:?=\s*{re.escape(java_runtime.group(1))}$", makefile, re.MULTILINE)
    assert re.search(rf"^GRPC_JAVA_VERSION\s*:?=\s*{re.escape(grpc_java.group(1))}$", makefile, re.MULTILINE)

    # The Python client's floors are what its stubs check at import.
    requirements = tomllib.loads((CLIENTS / "python" / "pyproject.toml").read_text())["project"]["dependencies"]
    stubs = CLIENTS / "python" / "src" / "broker_gateway_client" / "v1"
    grpc_generated = re.search(r"^GRPC_GENERATED_VERSION = '([^']+)'$", (stubs / "broker_gateway_service_pb2_grpc.py").read_text(), re.MULTILINE)
    protobuf_generated = re.search(r"Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),", (stubs / "connection_pb2.py").read_text())
    assert grpc_generated and protobuf_generated
    assert f"grpcio>={grpc_generated.group(1)}" in requirements, requirements
    assert f"grpcio-status>={grpc_generated.group(1)}" in requirements, requirements
    protobuf_floor = ".".join(protobuf_generated.groups())
    assert any(r.startswith(f"protobuf>={protobuf_floor},<{int(protobuf_generated.group(1)) + 1}") for r in requirements), requirements


# --- Compatibility with the last release --------------------------------------------------------------


def test_api_is_compatible_with_the_last_release() -> None:
    result = buf("breaking", "protos", "--against", "protos-released")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("change", "path", "before", "after"),
    [
        ("rename an RPC", "broker_gateway_service.proto", "rpc Exchange(", "rpc ExchangeCode("),
        ("renumber a field", "connection.proto", "string subject = 4;", "string subject = 40;"),
        ("rename an enum value", "error_reason.proto", "ERROR_REASON_REAUTH_REQUIRED =", "ERROR_REASON_REAUTH ="),
    ],
)
def test_a_breaking_change_fails_buf_breaking(change: str, path: str, before: str, after: str, tmp_path: Path) -> None:
    """The same command and configuration as the real check, on a copy of the workspace with one change."""
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copytree(ROOT / "protos-released", tmp_path / "protos-released")
    proto = tmp_path / "protos" / "broker_gateway" / "v1" / path
    source = proto.read_text()
    assert before in source, f"cannot {change}: {before!r} is not in {path}"
    proto.write_text(source.replace(before, after, 1))

    result = buf("breaking", "protos", "--against", "protos-released", cwd=tmp_path)
    assert result.returncode != 0, f"buf breaking accepted a change that breaks callers ({change})"
    assert path in result.stdout + result.stderr


# --- The examples against a live sandbox --------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_sandbox(tmp_path_factory.mktemp("sandbox"), secure=True) as description:
        yield description


def example_environment(sandbox: dict[str, Any], username: str, api_key: str | None = None) -> dict[str, str]:
    """What an example reads: the sandbox's address and redirect URI, its CA file and a caller key."""
    return {
        "BROKER_GATEWAY_ADDRESS": sandbox["gateway"],
        "BROKER_GATEWAY_REDIRECT_URI": sandbox["redirect_uri"],
        "BROKER_GATEWAY_USERNAME": username,
        "BROKER_GATEWAY_CA_FILE": sandbox["ca_file"],
        "BROKER_GATEWAY_API_KEY": sandbox["api_key"] if api_key is None else api_key,
    }


def run_example(command: list[str], *, cwd: Path, sandbox: dict[str, Any], username: str) -> dict[str, str]:
    """Run an example against the sandbox and return the `key: value` lines it printed."""
    output = run(command, cwd=cwd, timeout=RUN_TIMEOUT, env=example_environment(sandbox, username))
    printed: dict[str, str] = {}
    for line in output.splitlines():
        key, _, value = line.partition(": ")
        if key == "provider":
            printed["providers"] = f"{printed.get('providers', '')}{value}\n"
        else:
            printed.setdefault(key, value)
    return printed


def check_flow(printed: dict[str, str], sandbox: dict[str, Any], username: str) -> None:
    """What the example printed is what the gateway holds, and the replay's reason was read."""
    assert "wallet (generic-oauth2)" in printed.get("providers", "").splitlines(), printed
    assert printed["username"] == username
    assert printed["subject"] == str(stable_user_id(username)), printed
    assert printed["error_reason"] == "AUTHZ_TRANSACTION_INVALID", printed
    assert printed["error_domain"] == "broker-gateway", printed
    assert printed["error_code"].replace("_", "").lower() == "failedprecondition", printed
    assert printed["watch_event"].endswith("REVOKED") and printed["watch_connection_id"] == printed["connection_id"], printed
    assert printed["watch_cursor"], printed
    with caller_channel(sandbox) as channel:
        connection = (
            api_grpc.BrokerGatewayStub(channel)
            .GetConnection(api.GetConnectionRequest(connection_id=printed["connection_id"]), timeout=10)
            .connection
        )
    assert connection.subject == printed["subject"] and connection.provider == "wallet"
    assert connection.status == connection_pb2.CONNECTION_STATUS_REVOKED, "the example revoked it while watching"


def check_access_token(printed: dict[str, str]) -> None:
    """The example read an access token (it prints only the type and the expiry: the token is a secret)."""
    assert printed["token_type"] == "Bearer", printed
    assert int(printed["token_expire_seconds"]) > time.time(), printed


def caller_channel(sandbox: dict[str, Any]) -> grpc.Channel:
    """A channel to the secure sandbox as its caller: TLS to its CA, the key on every call."""
    credentials = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(root_certificates=Path(sandbox["ca_file"]).read_bytes()),
        grpc.access_token_call_credentials(sandbox["api_key"]),
    )
    return grpc.secure_channel(sandbox["gateway"], credentials)


def check_refused(command: list[str], *, cwd: Path, sandbox: dict[str, Any], unauthenticated: str) -> None:
    """With a key the gateway does not know, the example stops at its first call and reports the
    UNAUTHENTICATED code (spelled ``unauthenticated`` the way its language prints status codes)."""
    env = example_environment(sandbox, "mallory", api_key=new_key())
    result = execute(command, cwd=cwd, timeout=RUN_TIMEOUT, env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert unauthenticated in output, output
    assert "provider: " not in result.stdout, output


def test_go_example(sandbox: dict[str, Any], tmp_path: Path) -> None:
    go = CLIENTS / "go"
    # -mod=readonly: the checked-in go.mod and go.sum must be complete as they are.
    env = {"GOFLAGS": "-mod=readonly"}
    run(["go", "vet", "./..."], cwd=go, timeout=BUILD_TIMEOUT, env=env)
    run(["go", "build", "-o", str(tmp_path / "flow"), "./examples/flow"], cwd=go, timeout=BUILD_TIMEOUT, env=env)
    printed = run_example([str(tmp_path / "flow")], cwd=go, sandbox=sandbox, username="gopher")
    check_flow(printed, sandbox, "gopher")
    check_refused([str(tmp_path / "flow")], cwd=go, sandbox=sandbox, unauthenticated="code = Unauthenticated")


def test_typescript_example(sandbox: dict[str, Any]) -> None:
    typescript = CLIENTS / "typescript"
    assert (typescript / "node_modules" / ".bin" / "tsc").exists(), "run `make deps` (npm ci in clients/typescript)"
    shutil.rmtree(typescript / "dist", ignore_errors=True)
    run(["npm", "run", "--silent", "build"], cwd=typescript, timeout=BUILD_TIMEOUT)
    printed = run_example(["node", "dist/examples/flow.js"], cwd=typescript, sandbox=sandbox, username="tsnode")
    check_flow(printed, sandbox, "tsnode")
    check_refused(["node", "dist/examples/flow.js"], cwd=typescript, sandbox=sandbox, unauthenticated="[unauthenticated]")


def test_java_example(sandbox: dict[str, Any]) -> None:
    java = CLIENTS / "java"
    classpath_file = java / "target" / "example-classpath.txt"
    run(
        [
            "mvn",
            "--batch-mode",
            "--quiet",
            "-Dstyle.color=never",
            "test-compile",
            "dependency:build-classpath",
            "-Dmdep.includeScope=test",
            f"-Dmdep.outputFile={classpath_file}",
        ],
        cwd=java,
        timeout=BUILD_TIMEOUT,
    )
    classpath = os.pathsep.join(["target/classes", "target/test-classes", classpath_file.read_text().strip()])
    command = ["java", "-cp", classpath, "io.github.brokergateway.example.Flow"]
    printed = run_example(command, cwd=java, sandbox=sandbox, username="duke")
    check_flow(printed, sandbox, "duke")
    check_refused(command, cwd=java, sandbox=sandbox, unauthenticated="StatusRuntimeException: UNAUTHENTICATED")


# What `pip install ./clients/python` may bring into a fresh venv: the client, its three dependencies and
# theirs (googleapis-common-protos for google.rpc, typing-extensions for grpcio), and the venv's own pip
# and setuptools. Nothing of the server (cryptography, Starlette, OpenTelemetry, ...).
PYTHON_CLIENT_DISTRIBUTIONS = {
    "broker-gateway-client",
    "grpcio",
    "grpcio-status",
    "protobuf",
    "googleapis-common-protos",
    "typing-extensions",
}
VENV_SEED = {"pip", "setuptools"}


def test_python_example(sandbox: dict[str, Any], tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, timeout=BUILD_TIMEOUT)
    python = str(venv / "bin" / "python")
    # From a copy: an in-tree build would leave build/ behind in the checkout, whose stale files a later
    # build could package.
    source = tmp_path / "client"
    shutil.copytree(CLIENTS / "python", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)], cwd=tmp_path, timeout=BUILD_TIMEOUT)
    listed = run([python, "-c", "import importlib.metadata as m; print(*(d.metadata['Name'] for d in m.distributions()))"], cwd=tmp_path, timeout=RUN_TIMEOUT)
    installed = {re.sub(r"[-_.]+", "-", name).lower() for name in listed.split()}
    assert {"broker-gateway-client", "grpcio", "grpcio-status", "protobuf"} <= installed, installed
    assert installed - VENV_SEED <= PYTHON_CLIENT_DISTRIBUTIONS, f"server dependencies pulled in: {sorted(installed - VENV_SEED - PYTHON_CLIENT_DISTRIBUTIONS)}"

    # The example runs on the installed package, not on the checkout's src/.
    imported = run([python, "-c", "import broker_gateway_client; print(broker_gateway_client.__file__)"], cwd=tmp_path, timeout=RUN_TIMEOUT)
    assert Path(imported.strip()).is_relative_to(venv), imported
    command = [python, str(CLIENTS / "python" / "examples" / "flow.py")]
    printed = run_example(command, cwd=tmp_path, sandbox=sandbox, username="pythonista")
    check_flow(printed, sandbox, "pythonista")
    check_access_token(printed)
    check_refused(command, cwd=tmp_path, sandbox=sandbox, unauthenticated="StatusCode.UNAUTHENTICATED")


def test_rust_example(sandbox: dict[str, Any]) -> None:
    rust = CLIENTS / "rust"
    # `cargo test` runs the crate's unit tests and builds the examples. --locked: the checked-in
    # Cargo.lock must be complete as it is. The target directory stays in clients/rust/target (ignored
    # by git), so later runs build incrementally.
    run(["cargo", "test", "--locked", "--quiet"], cwd=rust, timeout=RUST_BUILD_TIMEOUT)
    command = [str(rust / "target" / "debug" / "examples" / "flow")]
    printed = run_example(command, cwd=rust, sandbox=sandbox, username="ferris")
    check_flow(printed, sandbox, "ferris")
    check_access_token(printed)
    check_refused(command, cwd=rust, sandbox=sandbox, unauthenticated="code: Unauthenticated")
