"""The gateway's log lines: human-readable text (the default), or one JSON object per line for a log
pipeline (``--log-format json``, ``[logging] format = "json"``).

A JSON line holds ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``message``,
``process``, ``trace_id`` and ``span_id`` when a span is current (tracing on: the RPC's server span or
a span under it, so a line can be found from its trace and the other way round), and ``exception``
with the traceback when one is logged. It is the standard library's Formatter with ``json.dumps``:
the few fields need no library, and one ``dumps`` of a small dict is the cheapest way to escape a
message safely (control characters and quotes included, so no message can forge a second line). The
messages are the same as in text: nothing logged carries a secret, whichever the format.
"""

from __future__ import annotations

import json
import logging
import time

from opentelemetry import trace


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, object] = {
            "time": f"{seconds}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry)


def configure(level: str, log_format: str, *, worker: bool = False) -> None:
    """Send the process's log to stderr in ``log_format`` (``text`` or ``json``) at ``level``, replacing
    whatever format it had (``serve`` sets it again once the configuration is read)."""
    # A worker's text lines name its process, so the log tells which worker said what.
    who = "[worker %(process)d] " if worker else ""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {who}%(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # httpx logs every request's full URL, query included, at INFO; upstream queries can carry
    # personal or signed parameters, so only its warnings are kept.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
