"""docs/grpcurl.md cannot rot: every command in it runs, in order, with the real grpcurl, against a sandbox.

Each ```sh block of the guide is one command, run by bash exactly as written (with `set -u`, so a
variable the guide does not define fails the test). The placeholders are the shell variables the guide's
table documents, and nothing else:

- ``GATEWAY`` and ``REDIRECT_URI`` come from the sandbox this module starts (the guide gives
  ``make run``'s values);
- ``AUTHORIZATION_URL``, ``STATE``, ``CODE`` and ``CONNECTION_ID`` are read from the output of the
  commands before, the way the guide tells a reader to: ``authorization_url`` from Authorize, ``code``
  and ``state`` from the approval's callback URL, ``connectionId`` from Exchange.

A block preceded by ``<!-- expect-failure: REASON -->`` must exit non-zero and print an ErrorInfo with
that reason; every other block must succeed. The blocks after ``<!-- secure-sandbox -->`` run against a
second sandbox, started with ``--secure``: ``GATEWAY`` is its address, and ``BROKER_GATEWAY_CA_FILE`` and
``BROKER_GATEWAY_API_KEY`` are the ``ca_file`` and ``api_key`` of its sandbox.json. The guide must also
cover every RPC of the service.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from broker_gateway.testing import running_sandbox
from broker_gateway.v1 import broker_gateway_service_pb2 as api

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "grpcurl.md"
BIN = Path(sys.executable).parent
PLACEHOLDERS = {
    "GATEWAY",
    "REDIRECT_URI",
    "AUTHORIZATION_URL",
    "STATE",
    "CODE",
    "CONNECTION_ID",
    "BROKER_GATEWAY_CA_FILE",
    "BROKER_GATEWAY_API_KEY",
}
SECURE_MARKER = "<!-- secure-sandbox -->"


@dataclass
class Command:
    line: int
    script: str
    expect_failure: str | None
    #: After the secure-sandbox marker: runs against the sandbox with TLS and a caller key.
    secure: bool


def commands(text: str | None = None) -> list[Command]:
    """The ```sh blocks of ``text`` (the guide by default), in order, each with the expect-failure marker
    right before it, if any; those after the secure-sandbox marker, if any, are ``secure``."""
    text = GUIDE.read_text() if text is None else text
    secure_from = text.find(SECURE_MARKER)
    secure_from = len(text) if secure_from < 0 else secure_from
    found = []
    pattern = r"(?:<!-- expect-failure: (?P<reason>[A-Z_]+) -->\n)?```sh\n(?P<script>.*?)```"
    for match in re.finditer(pattern, text, re.DOTALL):
        line = text.count("\n", 0, match.start("script"))
        found.append(Command(line, match["script"], match["reason"], secure=match.start() > secure_from))
    return found


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_sandbox(tmp_path_factory.mktemp("sandbox")) as description:
        yield description


@pytest.fixture(scope="module")
def secure_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_sandbox(tmp_path_factory.mktemp("secure-sandbox"), secure=True) as description:
        yield description


def run_script(script: str, variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run one block as a reader would paste it into a terminal with ``.venv/bin`` on PATH (where
    `make test` installs grpcurl) and ``variables`` set."""
    return subprocess.run(
        ["bash", "-u", "-o", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **variables},
        check=False,
    )


def capture(output: str, variables: dict[str, str]) -> None:
    """Read the variables the guide tells the reader to set from a command's output."""
    if url := re.search(r'^authorization_url: "(.+)"$', output, re.MULTILINE):
        variables["AUTHORIZATION_URL"] = url[1]
    if callback := re.search(r"^https?://\S*[?&]code=\S+$", output, re.MULTILINE):
        query = dict(re.findall(r"[?&]([^=&]+)=([^&]*)", callback[0]))
        variables["CODE"], variables["STATE"] = query["code"], query["state"]
    if "CONNECTION_ID" not in variables and (connection := re.search(r'"connectionId": "([^"]+)"', output)):
        variables["CONNECTION_ID"] = connection[1]


def test_the_guide_uses_only_documented_placeholders() -> None:
    used = {name for command in commands() for name in re.findall(r"\$\{?([A-Z_]+)", command.script)}
    assert used <= PLACEHOLDERS, f"undocumented variables {sorted(used - PLACEHOLDERS)}"
    table = GUIDE.read_text()
    assert all(f"`{name}`" in table for name in PLACEHOLDERS)


def test_the_guide_covers_every_rpc() -> None:
    scripts = "\n".join(command.script for command in commands())
    service = api.DESCRIPTOR.services_by_name["BrokerGateway"]
    missing = [m.name for m in service.methods if not re.search(rf"broker_gateway\.v1\.BrokerGateway/{m.name}\b", scripts)]
    assert not missing, f"docs/grpcurl.md has no command for {missing}"


def test_every_command_in_the_guide_runs(sandbox: dict[str, Any], secure_sandbox: dict[str, Any]) -> None:
    """Run the guide top to bottom, as a reader would paste it into one terminal (and, for the secure
    section, into a terminal set up for the secure sandbox)."""
    found = commands()
    assert len(found) >= 15, "the guide's ```sh blocks were not found"
    assert any("-format-error" in c.script and c.expect_failure for c in found), "no command shows ErrorInfo as JSON"
    assert any(c.secure and c.expect_failure == "CALLER_UNAUTHENTICATED" for c in found), "no command shows a refused caller"
    assert all("-plaintext" not in c.script for c in found if c.secure), "a secure-section command uses plaintext"
    variables = {"GATEWAY": sandbox["gateway"], "REDIRECT_URI": sandbox["redirect_uri"]}
    secure_variables = {
        "GATEWAY": secure_sandbox["gateway"],
        "BROKER_GATEWAY_CA_FILE": secure_sandbox["ca_file"],
        "BROKER_GATEWAY_API_KEY": secure_sandbox["api_key"],
    }
    assert any(c.secure for c in found), f"docs/grpcurl.md has no {SECURE_MARKER}"
    for command in found:
        where = f"docs/grpcurl.md line {command.line}:\n{command.script}"
        result = run_script(command.script, {**variables, **(secure_variables if command.secure else {})})
        output = result.stdout + result.stderr
        if command.expect_failure is None:
            assert result.returncode == 0, f"{where}\nfailed with {result.returncode}:\n{output}"
            capture(result.stdout, variables)
        else:
            assert result.returncode != 0, f"{where}\nsucceeded but the guide says it fails:\n{output}"
            assert "type.googleapis.com/google.rpc.ErrorInfo" in output, f"{where}\nprinted no ErrorInfo:\n{output}"
            assert f'"reason":"{command.expect_failure}"' in output.replace(" ", ""), f"{where}\n{output}"
    yielded = set(variables) | set(secure_variables)
    assert yielded == PLACEHOLDERS, f"the guide never yields {sorted(PLACEHOLDERS - yielded)}"
