"""A broken configuration gets one line naming the setting and what is wrong with it, from
``check-config`` and from ``serve`` alike, and ``serve`` exits non-zero without a traceback and without
leaving a store file behind. Each case breaks one thing in an otherwise valid file, so the answer must
be exactly one problem."""

from __future__ import annotations

import logging
import socket
import subprocess
from pathlib import Path

import pytest
from broker_gateway.cli import main, parse_arguments
from test_cli import CLI, KEY_ENV, environment

TEMPLATE = """
{top}
[server]
shutdown_grace_seconds = 5
{server}

[store]
path = "data/gateway.db"
{store}

[refresh]
margin_seconds = 60
{refresh}

[limits]
max_pending_authorizations = 100
{limits}

[[encryption.keys]]
id = "k1"
key = "env:{key_env}"
{key}

[[providers]]
id = "acme"
type = "generic-oauth2"
redirect_uris = ["https://app.example/callback"]
client_id = "client-acme"
client_secret = "secret-acme"
authorization_endpoint = "https://acme.as.example/authorize"
token_endpoint = "https://acme.as.example/token"
{provider}
{tail}
"""

BYBIT = """
[[providers]]
id = "bb"
type = "bybit"
redirect_uris = ["https://app.example/bybit"]
client_id = "c"
client_secret = "s"
"""

OKX = """
[[providers]]
id = "ox"
type = "okx"
redirect_uris = ["https://app.example/okx"]
client_id = "c"
client_secret = "s"
broker_code = "b"
"""

#: (what is broken, where, the line that must name it).
CASES: list[tuple[dict[str, str], str]] = [
    ({"server": 'listen = "127.0.0.1:notaport"'}, "server.listen: expected HOST:PORT"),
    ({"server": 'listen = "localhost"'}, "server.listen: expected HOST:PORT"),
    ({"server": 'listen = "127.0.0.1:70000"'}, "server.listen: expected HOST:PORT"),
    ({"server": 'reflection = "false"'}, "server.reflection: expected true or false"),
    ({"server": 'reflection = "yes"'}, "server.reflection: expected true or false"),
    ({"server": 'allow_plaintext = "true"'}, "server.allow_plaintext: expected true or false"),
    ({"server": "max_recieve_message_bytes = 1024"}, "server.max_recieve_message_bytes: unknown setting (did you mean max_receive_message_bytes?)"),
    ({"server": "max_receive_message_bytes = 1.5"}, "server.max_receive_message_bytes: expected a positive integer"),
    ({"server": 'max_concurrent_rpcs = "ten"'}, "server.max_concurrent_rpcs: expected a positive integer"),
    ({"server": "shutdown_grace_seconds_ = 3"}, "server.shutdown_grace_seconds_: unknown setting (did you mean shutdown_grace_seconds?)"),
    ({"server": "max_connection_idle_seconds = -1"}, "server.max_connection_idle_seconds: expected a positive number"),
    ({"server": 'workers = "2"'}, "server.workers: expected a positive integer"),
    ({"refresh": "margin_second = 60"}, "refresh.margin_second: unknown setting (did you mean margin_seconds?)"),
    ({"refresh": "budget_seconds = 0"}, "refresh.budget_seconds: expected a positive number"),
    ({"limits": "max_pending_authorizations_per_tenant = 0"}, "limits.max_pending_authorizations_per_tenant: expected a positive integer"),
    ({"store": 'backend = "sqlite"'}, "store.backend: unknown setting"),
    ({"top": "audit = 'audit.jsonl'"}, "audit: expected a table"),
    ({"top": '[encryption]\ncipher = "aes"'}, "encryption.cipher: unknown setting"),
    ({"key": 'kid = "k1"'}, "encryption.keys[0].kid: unknown setting (did you mean id?)"),
    ({"provider": 'client_secrett = "x"'}, "providers[acme].client_secrett: unknown setting (did you mean client_secret?)"),
    ({"provider": "allow_insecure_http = 1"}, "providers[acme].allow_insecure_http: expected true or false"),
    ({"provider": 'scope = ["profile"]'}, "providers[acme].scope: unknown setting (did you mean scopes?)"),
    ({"tail": BYBIT + 'enviroment = "testnet"'}, "providers[bb].enviroment: unknown setting (did you mean environment?)"),
    ({"tail": BYBIT + 'environment = "mainnt"'}, "providers[bb].environment: expected one of"),
    ({"tail": OKX + 'broker_cod = "b"'}, "providers[ox].broker_cod: unknown setting (did you mean broker_code?)"),
    ({"tail": '[[callers]]\nid = "web"\ntenant = "t"\nkey_sha256 = "' + "a" * 64 + '"\npermissions = ["token"]'},
     "callers[web].permissions: unknown permission 'token'"),
    ({"tail": '[rate_limits]\nurl = "http://redis:6379"'}, "rate_limits.url: expected redis://"),
]


def write(tmp_path: Path, broken: dict[str, str]) -> Path:
    sections = dict.fromkeys(("top", "server", "store", "refresh", "limits", "key", "provider", "tail"), "")
    path = tmp_path / "gateway.toml"
    path.write_text(TEMPLATE.format(key_env=KEY_ENV, **{**sections, **broken}))
    return path


def test_the_template_itself_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Without this, a case could pass on a problem of the template rather than its own."""
    monkeypatch.setenv(KEY_ENV, environment()[KEY_ENV])
    path = write(tmp_path, {})
    assert main(["check-config", str(path)]) == 0, capsys.readouterr()


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize(("broken", "line"), CASES, ids=[line.split(":")[0] for _, line in CASES])
def test_check_config_names_the_setting_in_one_line(
    broken: dict[str, str], line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(KEY_ENV, environment()[KEY_ENV])
    path = write(tmp_path, broken)
    assert main(["check-config", str(path)]) == 1
    captured = capsys.readouterr()
    problems = captured.err.splitlines()
    assert len(problems) == 1 and problems[0].startswith(line), problems
    assert captured.out.strip() == f"{path}: 1 problem(s)"


@pytest.mark.parametrize(("broken", "line"), CASES, ids=[line.split(":")[0] for _, line in CASES])
def test_serve_refuses_in_one_line_without_a_traceback(broken: dict[str, str], line: str, tmp_path: Path) -> None:
    path = write(tmp_path, broken)
    result = subprocess.run(
        [str(CLI), "serve", "--config", str(path)], env=environment(), capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert f"broker-gateway: {line}" in result.stderr, result.stderr
    assert not (tmp_path / "data").exists(), "serve left a half-made store behind"


def test_a_port_in_use_is_one_line_naming_the_address_and_leaves_no_store(tmp_path: Path) -> None:
    path = write(tmp_path, {})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        result = subprocess.run(
            [str(CLI), "serve", "--config", str(path), "--listen", address],
            env=environment(), capture_output=True, text=True, timeout=60, check=False,
        )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        (f"broker-gateway: cannot listen on {address}: Address already in use (another process holds it: stop that one, "
        "or choose another address with --listen or [server] listen)")
    ]
    assert not (tmp_path / "data").exists(), "serve left a half-made store behind"


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--log-level", "verbose", "generate-key"], "argument --log-level: expected one of DEBUG, INFO"),
        (["serve", "--config", "x.toml", "--log-level", "loud"], "argument --log-level: expected one of DEBUG, INFO"),
        (["serve", "--config", "x.toml", "--listen", "127.0.0.1:notaport"], "argument --listen: expected HOST:PORT"),
    ],
)
def test_bad_arguments_are_one_line_of_usage(arguments: list[str], complaint: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(arguments)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "level", "log_format"),
    [
        (["generate-key", "--log-level", "debug"], "DEBUG", None),
        (["--log-level", "warning", "generate-key"], "WARNING", None),
        (["--log-level", "warning", "--log-format", "json", "generate-key", "--log-level", "error"], "ERROR", "json"),
        (["generate-key"], "INFO", None),
    ],
)
def test_logging_options_are_taken_before_or_after_the_subcommand(argv: list[str], level: str, log_format: str | None) -> None:
    assert main(argv) == 0
    assert logging.getLogger().level == logging.getLevelName(level)
    args = parse_arguments(argv)
    assert (args.log_level, args.log_format) == (level, log_format)


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("broker-gateway ")
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "``" not in top and "`" not in top
    for command in ("check-config", "rewrap"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "CONFIG " in text and "configuration file" in text, text
