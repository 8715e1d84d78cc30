"""Made-up or misspelt settings are refused with the setting's name (and the one it was probably meant
to be), instead of being ignored and leaving the gateway on a default nobody chose."""

from __future__ import annotations

import tomllib

import pytest
from broker_gateway.config import parse_config
from broker_gateway.errors import ConfigError
from test_cli import KEY


def problems_of(extra: str) -> list[str]:
    document = tomllib.loads(extra + f'\n[[encryption.keys]]\nid = "k"\nkey = "{KEY}"\n')
    with pytest.raises(ConfigError) as refused:
        parse_config(document)
    return refused.value.problems


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('api_keys = ["secret"]', "api_keys: unknown setting"),
        ("[server]\nmax_recieve_message_bytes = 1024", "server.max_recieve_message_bytes: unknown setting (did you mean max_receive_message_bytes?)"),
        ('[server]\ntls_cert = "x"', "server.tls_cert: unknown setting"),
        ("[refresh]\nmargin_second = 60", "refresh.margin_second: unknown setting (did you mean margin_seconds?)"),
        ("[limits]\nmax_pending_authorisations = 5", "limits.max_pending_authorisations: unknown setting (did you mean max_pending_authorizations?)"),
        ('[store]\nbackend = "sqlite"', "store.backend: unknown setting"),
        ('[audit]\npath = "a.jsonl"', "audit.path: unknown setting"),
        ("[sever]\nlisten = \"127.0.0.1:1\"", "sever: unknown setting (did you mean server?)"),
        ("[events]\nretention_days = 7", "events.retention_days: unknown setting (did you mean retention_seconds?)"),
    ],
)
def test_an_unknown_setting_is_refused_by_name(extra: str, problem: str) -> None:
    assert problem in problems_of(extra)


def test_every_documented_server_setting_is_known() -> None:
    known = "\n".join(
        f"{key} = {value}"
        for key, value in {
            "listen": '"127.0.0.1:1"', "reflection": "true", "max_receive_message_bytes": 1024, "max_concurrent_rpcs": 10,
            "shutdown_grace_seconds": 1, "max_connection_idle_seconds": 1, "max_connection_age_seconds": 1,
            "max_connection_age_grace_seconds": 30, "max_concurrent_streams": 100, "allow_unauthenticated": "false",
            "allow_plaintext": "false", "workers": 1,
        }.items()
    )
    document = tomllib.loads(f'[[encryption.keys]]\nid = "k"\nkey = "{KEY}"\n[server]\n{known}\n')
    parse_config(document)  # raises on any problem


def test_the_events_table_sets_the_watch_settings() -> None:
    document = tomllib.loads(
        f'[[encryption.keys]]\nid = "k"\nkey = "{KEY}"\n[events]\nretention_seconds = 86400\nexpiring_lead_seconds = 3600\n'
        "heartbeat_interval_seconds = 5\nmax_watchers_per_caller = 3\n"
    )
    events = parse_config(document).gateway.events
    assert (events.retention.total_seconds(), events.expiring_lead.total_seconds()) == (86400, 3600)
    assert (events.heartbeat_interval, events.max_watchers_per_caller) == (5, 3)
    assert "events.max_watchers_per_caller: expected a positive integer" in problems_of("[events]\nmax_watchers_per_caller = 0")
