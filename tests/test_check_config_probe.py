"""``check-config --probe`` reaches each provider: it runs discovery and checks each endpoint answers,
reporting what it found, and reports an issuer it cannot reach as a problem of that provider."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from conftest import Wallet
from test_cli import CLI, KEY_ENV, environment


async def check_config(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(CLI), "check-config", *args, env=environment(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def config_text(wallet: Wallet, issuer: str) -> str:
    settings = wallet.provider_config().settings
    return f"""
[[encryption.keys]]
id = "k1"
key = "env:{KEY_ENV}"

[[providers]]
id = "wallet"
type = "generic-oauth2"
redirect_uris = ["https://app.example/callback"]
allow_insecure_http = true
client_id = "{settings['client_id']}"
client_secret = "{settings['client_secret']}"
authorization_endpoint = "{settings['authorization_endpoint']}"
token_endpoint = "{settings['token_endpoint']}"
userinfo_endpoint = "{settings['userinfo_endpoint']}"

[[providers]]
id = "idp"
type = "generic-oauth2"
redirect_uris = ["https://app.example/callback"]
allow_insecure_http = true
issuer = "{issuer}"
client_id = "c"
client_secret = "s"
"""


async def test_probe_reports_what_it_reached_and_an_unreachable_issuer(tmp_path: Path, wallet: Wallet) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    issuer = f"http://127.0.0.1:{closed.getsockname()[1]}"
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(wallet, issuer))
    try:
        plain = await check_config(str(path))
        assert plain[0] == 0, plain  # without --probe nothing is reached: the file itself is fine
        code, out, err = await check_config("--probe", str(path))
    finally:
        closed.close()
    assert code == 1
    assert f"providers[wallet].token_endpoint: {wallet.base_url}" in out
    assert "providers[wallet].userinfo_endpoint:" in out
    problems = err.splitlines()
    assert len(problems) == 1 and problems[0].startswith(f"providers[idp]: discovery at {issuer} failed"), err
    assert "1 problem(s)" in out
