"""A real OAuth 2.0 / OIDC authorization server (npm ``oidc-provider``) for tests, on loopback.

Why: fakes cannot prove interoperability with a certified AS (PKCE enforcement, ``iss``, strict
refresh-token rotation with reuse detection, revocation, userinfo). This module starts
``tests/oidc_provider/server.mjs`` as a subprocess and completes its development login and
consent screens with plain HTTP, so no browser is needed. See docs/design/sandbox.md.

Get the session fixture ``oidc_provider`` by declaring, in ``tests/conftest.py`` or in any test
module (registration is idempotent, so the session still gets exactly one AS)::

    pytest_plugins = ["support.oidc_provider"]

Do not ``from support.oidc_provider import oidc_provider`` into several modules: each module
would then own a copy of the fixture and start its own server.

PYTEST_DONT_REWRITE: this module has no asserts; the marker stops pytest warning "already
imported" when a test module imports helpers from here before its ``pytest_plugins`` is read.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

__all__ = [
    "DEFAULT_REDIRECT_URI",
    "OidcClient",
    "OidcProviderServer",
    "complete_authorization",
    "oidc_provider",
    "start_oidc_provider",
]

AuthMethod = Literal["client_secret_basic", "client_secret_post"]

#: The redirect URI the session fixture registers for both clients.
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8765/callback"

NODE_PROJECT = Path(__file__).resolve().parent.parent / "oidc_provider"
STARTUP_TIMEOUT_S = 20.0
_INSTALL_TIMEOUT_S = 300.0
_MAX_HOPS = 20
# The dev interaction views carry the pending prompt in one hidden input; nothing else is parsed.
_PROMPT_RE = re.compile(r'<input type="hidden" name="prompt" value="([a-z_]+)"')


@dataclass(frozen=True)
class OidcClient:
    """A confidential client registered at the test AS (secrets are random per server)."""

    client_id: str
    client_secret: str
    auth_method: AuthMethod
    redirect_uris: tuple[str, ...]


@dataclass
class OidcProviderServer:
    """A running test AS: its issuer, its two clients, and its test-only event log."""

    issuer: str
    clients: dict[str, OidcClient]

    def events(self, kind: str | None = None, **where: Any) -> list[dict[str, Any]]:
        """Recorded AS events (token events, grant errors/revocations, endpoint requests).

        Filter by ``kind`` and by exact field values, e.g. ``account_id="alice"``, so tests that
        share the session server stay isolated by using a fresh login name.
        """
        response = httpx.get(f"{self.issuer}/_test/events", timeout=5.0)
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()
        return [
            e
            for e in entries
            if (kind is None or e.get("kind") == kind)
            and all(e.get(k) == v for k, v in where.items())
        ]

    def reset_events(self) -> None:
        """Clear the AS event log (it is shared by every test using the server)."""
        httpx.get(f"{self.issuer}/_test/events", params={"reset": "1"}, timeout=5.0).raise_for_status()

    def count(self, kind: str, **where: Any) -> int:
        """Number of recorded events of ``kind`` matching ``where`` (see :meth:`events`)."""
        return len(self.events(kind, **where))

    @property
    def basic(self) -> OidcClient:
        """The ``client_secret_basic`` client."""
        return self.clients["gateway-basic"]

    @property
    def post(self) -> OidcClient:
        """The ``client_secret_post`` client."""
        return self.clients["gateway-post"]


def _ensure_node_deps() -> None:
    """Install the pinned npm deps when missing, so a bare ``pytest`` run works without make."""
    if (NODE_PROJECT / "node_modules" / "oidc-provider" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is required to install tests/oidc_provider (Node 22 LTS recommended)")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_PROJECT,
        check=True,
        timeout=_INSTALL_TIMEOUT_S,
    )
    # Same marker the Makefile writes, so `make deps` does not reinstall straight away.
    (NODE_PROJECT / "node_modules" / ".installed").touch()


def _free_loopback_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (racy, hence the retry in the caller)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the AS does not exit promptly."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _wait_ready(process: subprocess.Popen[bytes], issuer: str, timeout_s: float) -> bool:
    """Poll discovery until it answers 200; False if the process died first (e.g. port taken)."""
    deadline = time.monotonic() + timeout_s
    url = f"{issuer}/.well-known/openid-configuration"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"oidc-provider did not answer {url} within {timeout_s:.0f} s")


def _read_log(log: Any) -> str:
    log.seek(0)
    text: str = log.read().decode("utf-8", "replace")
    return text[-4000:]


@contextmanager
def start_oidc_provider(
    redirect_uris: list[str], access_token_ttl: int = 3600
) -> Iterator[OidcProviderServer]:
    """Run the test AS on a free loopback port for the duration of the ``with`` block."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is required for the oidc-provider test AS (Node 22 LTS recommended)")
    _ensure_node_deps()

    clients = {
        "gateway-basic": OidcClient(
            "gateway-basic", secrets.token_urlsafe(32), "client_secret_basic", tuple(redirect_uris)
        ),
        "gateway-post": OidcClient(
            "gateway-post", secrets.token_urlsafe(32), "client_secret_post", tuple(redirect_uris)
        ),
    }
    # The AS's stdout/stderr go to a file, not a pipe, so a chatty AS can never block on a full pipe.
    with tempfile.TemporaryFile() as log:
        for _attempt in range(3):
            port = _free_loopback_port()
            issuer = f"http://127.0.0.1:{port}"
            env = {
                **os.environ,
                "PORT": str(port),
                "CLIENT_SECRET_BASIC": clients["gateway-basic"].client_secret,
                "CLIENT_SECRET_POST": clients["gateway-post"].client_secret,
                "REDIRECT_URIS": ",".join(redirect_uris),
                "ACCESS_TOKEN_TTL": str(access_token_ttl),
            }
            process = subprocess.Popen(
                [node, "server.mjs"],
                cwd=NODE_PROJECT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                ready = _wait_ready(process, issuer, STARTUP_TIMEOUT_S)
            except BaseException:
                _stop(process)
                raise
            if ready:
                break
            _stop(process)
        else:
            raise RuntimeError(f"oidc-provider failed to start:\n{_read_log(log)}")

        try:
            yield OidcProviderServer(issuer=issuer, clients=clients)
        finally:
            _stop(process)


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProviderServer]:
    """One test AS for the whole session; isolate tests by using a fresh login name each."""
    with start_oidc_provider([DEFAULT_REDIRECT_URI]) as server:
        yield server


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def complete_authorization(authorization_url: str, login: str, *, deny: bool = False) -> str:
    """Drive devInteractions (login, then consent) headlessly and return the callback URL.

    Uses a fresh cookie jar, so login is always prompted (a reused session would skip it).
    Redirects are followed by hand until one leaves the AS's origin; that Location (the
    ``redirect_uri`` with ``code``/``state``/``iss``, or ``error=access_denied`` when
    ``deny`` is true) is returned unchanged. httpx's jar is ``http.cookiejar``-based and
    path-aware, which the path-scoped ``_interaction``/``_interaction_resume`` cookies need
    (tests/test_oidc_provider_harness.py proves it).
    """
    as_origin = _origin(authorization_url)
    with httpx.Client(follow_redirects=False, timeout=10.0) as client:
        response = client.get(authorization_url)
        for _hop in range(_MAX_HOPS):
            url = str(response.request.url)
            if response.status_code in (302, 303):
                location = urljoin(url, response.headers["location"])
                if _origin(location) != as_origin:
                    return location
                response = client.get(location)
                continue
            if response.status_code != 200 or not urlsplit(url).path.startswith("/interaction/"):
                raise RuntimeError(
                    f"unexpected {response.status_code} from {urlsplit(url).path} "
                    f"during authorization: {response.text[:500]}"
                )
            if deny:
                response = client.get(f"{url.rstrip('/')}/abort")
                continue
            match = _PROMPT_RE.search(response.text)
            if match is None:
                raise RuntimeError(f"no prompt input on interaction page {urlsplit(url).path}")
            prompt = match.group(1)
            if prompt == "login":
                form = {"prompt": "login", "login": login, "password": "any"}
            elif prompt == "consent":
                form = {"prompt": "consent"}
            else:
                raise RuntimeError(f"unsupported interaction prompt {prompt!r}")
            response = client.post(url, data=form)
    raise RuntimeError(f"authorization did not reach the redirect_uri within {_MAX_HOPS} hops")
