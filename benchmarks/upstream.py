"""The canned upstream: nginx serving fixed JSON answers, so the upstream is never the bottleneck.

nginx (Debian's ``nginx-light``) runs as a non-daemon child in a temporary directory on a free
loopback port, single process, with ``return 200 '...'`` blocks and no files: the token endpoint
(any method, POST in practice), userinfo, and OKX's DMA sub-account list (docs/design/exchanges.md, the
envelope of 1.2). Keep-alive is effectively unlimited so neither the gateway nor the pass-through
floor pays for reconnects.
"""

from __future__ import annotations

import json
from pathlib import Path

TOKEN_PATH = "/oauth/token"
USERINFO_PATH = "/oauth/userinfo"
AUTHORIZE_PATH = "/oauth/authorize"
OKX_SUBACCOUNTS_PATH = "/api/v5/broker/dma/subaccount-info"
#: What the signed InvokeOperation row asks for (GET parameters are part of OKX's signed requestPath).
OKX_QUERY = "?subAcct=bench01sub&page=1&limit=10"
OKX_PARAMS = {"subAcct": "bench01sub", "page": "1", "limit": "10"}

#: The access token every connection gets; the pass-through sends it too, so requests match.
ACCESS_TOKEN = "bench-access-token-0123456789abcdef0123456789abcdef"
REFRESH_TOKEN = "bench-refresh-token-0123456789abcdef0123456789abcdef"
SUBJECT = "bench-user-1"

TOKEN_RESPONSE = {
    "access_token": ACCESS_TOKEN,
    "token_type": "Bearer",
    "refresh_token": REFRESH_TOKEN,
    # A year: no benchmark call ever needs a refresh.
    "expires_in": 31536000,
    "scope": "profile",
}
USERINFO_RESPONSE = {
    "id": SUBJECT,
    "username": "bench",
    "email": "bench@example.test",
    "balance": {"currency": "USD", "available": "1000.00"},
}
OKX_SUBACCOUNTS_RESPONSE = {
    "code": "0",
    "msg": "",
    "data": [
        {
            "details": [
                {
                    "subAcct": "bench01sub",
                    "uid": "448000000000001",
                    "label": "bench",
                    "acctLv": "1",
                    "enable": True,
                    "frozenFunc": [],
                    "canTransOut": True,
                    "firstLvSubAcct": "bench01sub",
                    "subAcctLv": "1",
                    "ts": "1700000000000",
                }
            ],
            "page": "1",
            "totalPage": "1",
        }
    ],
}


def _literal(document: object) -> str:
    text = json.dumps(document, separators=(",", ":"))
    assert "'" not in text and "\\" not in text, "canned bodies go into single-quoted nginx strings"
    return text


def nginx_config(directory: Path, port: int) -> str:
    """A complete nginx.conf serving the canned answers on 127.0.0.1:``port``."""
    return f"""\
daemon off;
master_process off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 600s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        default_type application/json;
        location = {TOKEN_PATH} {{
            return 200 '{_literal(TOKEN_RESPONSE)}';
        }}
        location = {USERINFO_PATH} {{
            return 200 '{_literal(USERINFO_RESPONSE)}';
        }}
        location = {OKX_SUBACCOUNTS_PATH} {{
            return 200 '{_literal(OKX_SUBACCOUNTS_RESPONSE)}';
        }}
        location / {{
            return 404 '{{"error":"not_found"}}';
        }}
    }}
}}
"""
