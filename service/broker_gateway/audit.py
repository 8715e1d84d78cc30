"""The audit log: one JSON record per token handed out, operation sent, connection made or ended, and
per refused authentication, on the logger ``broker_gateway.audit`` (INFO).

A record says who (caller id and tenant), what (RPC, provider, connection id, operation), how it ended
(status code and reason) and the trace id, and never a key, token, code or state: it is built only
from the fields named here. ``[audit] file`` writes the records as JSON lines to a file of their own.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry import trace

from .callers import Caller
from .errors import GatewayError
from .private_files import create_private_file, make_private_dir

log = logging.getLogger("broker_gateway.audit")

#: The RPCs that hand out a token, act upstream in a user's name, or make or end a connection.
AUDITED_RPCS = frozenset({"GetAccessToken", "InvokeOperation", "Exchange", "Revoke", "DeleteConnection"})
_MAX_FIELD = 128

#: The provider of the connection an audited call resolved, noted by the flows while the call runs.
_provider: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("broker_gateway_audit_provider", default=None)


def enabled() -> bool:
    return log.isEnabledFor(logging.INFO)


def begin() -> contextvars.Token[list[str] | None]:
    """Open a record for the current call, so that ``note_provider`` has somewhere to write."""
    return _provider.set([])


def end(token: contextvars.Token[list[str] | None]) -> None:
    _provider.reset(token)


def note_provider(provider_id: str) -> None:
    """Record the provider of the connection the current call acts on (no-op outside an audited call)."""
    noted = _provider.get()
    if noted is not None:
        noted.append(provider_id)


def record(rpc: str, caller: Caller | None, request: Any, response: Any, failure: GatewayError | None) -> None:
    """Log the audit record of one call. ``caller`` is None when authentication refused it."""
    connection = getattr(response, "connection", None)
    noted = _provider.get()
    provider = getattr(request, "provider", "") or getattr(connection, "provider", "") or (noted[-1] if noted else "")
    chosen = {
        "provider": provider,
        "connection_id": getattr(request, "connection_id", "") or getattr(connection, "connection_id", ""),
        "operation": getattr(request, "operation", ""),
    }
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "caller": "" if caller is None else caller.id,
        "tenant": "" if caller is None else caller.tenant,
        "rpc": rpc,
        # Caller-chosen values are bounded; json.dumps escapes control characters, so a record stays one line.
        **{key: value if len(value) <= _MAX_FIELD else value[:_MAX_FIELD] + "..." for key, value in chosen.items()},
        "outcome": {"code": "OK", "reason": ""} if failure is None else {"code": failure.code.name, "reason": failure.reason},
        "trace_id": _trace_id(),
    }
    log.info(json.dumps(entry, separators=(",", ":"), ensure_ascii=True))


def _trace_id() -> str:
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else ""


def write_to_file(path: str) -> None:
    """Send audit records to ``path`` (created 0600) as bare JSON lines, whatever the log level."""
    make_private_dir(Path(path).parent)
    create_private_file(Path(path))
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
