"""The README's walk-through, each provider page's commands and the sandbox's start-up hint cannot rot:
each runs as written, with the real grpcurl, against a sandbox (docs/grpcurl.md has its own test,
test_grpcurl_guide.py, whose block reader and runner this reuses).

The documents give ``make run``'s addresses; the only substitutions are the sandbox's own addresses for
those (``127.0.0.1:50051`` and the redirect URI ``http://127.0.0.1:8765/callback``) and, in the README,
the ``conn_...`` it tells the reader to replace with the connection Exchange returned. Between the
commands the test does what the documents tell a person to do: approve the authorization URL (with the
simulators' ``approve=`` shortcut, as a browser would), read the Exchange command from the callback
page (fetched like curl, without asking for HTML) and run it; the sandbox must have printed the same
command to its console.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from broker_gateway.testing import running_sandbox, sandbox_console
from test_grpcurl_guide import capture, commands, run_script

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTED_GATEWAY = "127.0.0.1:50051"
DOCUMENTED_REDIRECT_URI = "http://127.0.0.1:8765/callback"
PROVIDER_PAGES = sorted((ROOT / "docs" / "providers").glob("*.md"))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("sandbox")
    with running_sandbox(data_dir) as description:
        yield {**description, "console": sandbox_console(data_dir)}


def walk_through() -> str:
    """The README's part between its walk-through comments."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- walk-through\b.*?-->(.*?)<!-- /walk-through -->", text, re.DOTALL)
    assert match, "README.md has no <!-- walk-through --> ... <!-- /walk-through --> part"
    return match[1]


def run(script: str, where: str) -> str:
    result = run_script(script, {})
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{where}:\n{script}\nfailed with {result.returncode}:\n{output}"
    assert "\\u0026" not in result.stdout, f"{where}: a URL printed with JSON escapes cannot be pasted:\n{output}"
    return result.stdout


def approve_and_exchange(authorization_url: str, sandbox: dict[str, Any]) -> str:
    """Approve as the user, take the Exchange command from the callback page as curl shows it, check
    the sandbox printed it too, run it: the new connection's id."""
    approval = httpx.get(authorization_url + "&approve=alice", timeout=30)
    assert approval.status_code == 302, approval.text
    page = httpx.get(approval.headers["location"], timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain"), page.headers
    lines = [line for line in page.text.splitlines() if line.startswith("grpcurl ")]
    assert len(lines) == 1, page.text
    assert "&quot;" not in lines[0] and "&#x27;" not in lines[0], "the command carries HTML entities"
    assert lines[0] in sandbox["console"].read_text(), "the sandbox did not print the Exchange command"
    browser = httpx.get(approval.headers["location"], headers={"Accept": "text/html"}, timeout=30)
    assert browser.headers["content-type"].startswith("text/html") and "<pre>" in browser.text
    variables: dict[str, str] = {}
    capture(run(lines[0], "the callback page's Exchange command"), variables)
    assert "CONNECTION_ID" in variables, "Exchange printed no connectionId"
    return variables["CONNECTION_ID"]


def run_document(text: str, name: str, sandbox: dict[str, Any]) -> tuple[int, str]:
    """Run every ```sh block of ``text`` in order, completing each Authorize the way the text says; the
    number of authorizations completed, and what the blocks printed."""
    blocks = commands(text)
    assert blocks, f"{name} has no ```sh blocks"
    connection_id: str | None = None
    completed = 0
    printed = ""
    for block in blocks:
        script = block.script.replace(DOCUMENTED_GATEWAY, sandbox["gateway"])
        script = script.replace(DOCUMENTED_REDIRECT_URI, sandbox["redirect_uri"])
        if "conn_..." in script:
            assert connection_id is not None, f"{name} line {block.line} uses conn_... before any Exchange"
            script = script.replace("conn_...", connection_id)
        output = run(script, f"{name} line {block.line}")
        printed += output
        variables: dict[str, str] = {}
        capture(output, variables)
        if "AUTHORIZATION_URL" in variables:
            connection_id = approve_and_exchange(variables["AUTHORIZATION_URL"], sandbox)
            completed += 1
    return completed, printed


def test_the_readme_walk_through_runs_as_written(sandbox: dict[str, Any]) -> None:
    text = walk_through()
    completed, printed = run_document(text, "README.md", sandbox)
    assert completed == 1
    assert '"upstreamRevoked": false' in printed, "Revoke's default-valued field is not shown"


@pytest.mark.parametrize("page", PROVIDER_PAGES, ids=[page.stem for page in PROVIDER_PAGES])
def test_each_provider_page_runs_as_written(page: Path, sandbox: dict[str, Any]) -> None:
    assert run_document(page.read_text(), str(page.relative_to(ROOT)), sandbox)[0] == 1


def test_the_sandbox_start_up_hint_runs_as_printed(sandbox: dict[str, Any]) -> None:
    printed = sandbox["console"].read_text()
    start = printed.split("Try the flow:", 1)[-1].split("Stop with Ctrl-C.", 1)[0]
    hint = [line.strip() for line in start.splitlines() if line.strip().startswith("grpcurl ")]
    assert hint, f"the sandbox printed no command to try:\n{printed}"
    completed = 0
    for command in hint:
        variables: dict[str, str] = {}
        capture(run(command, "the sandbox's start-up hint"), variables)
        if "AUTHORIZATION_URL" in variables:
            approve_and_exchange(variables["AUTHORIZATION_URL"], sandbox)
            completed += 1
    assert completed == 1
