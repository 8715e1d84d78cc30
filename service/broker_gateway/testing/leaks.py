"""Proof that no secret leaks: values a test planted (or read back, such as the tokens the provider
issued) searched for in everything an operator or a caller can read: log records, spans, the errors
callers got and the files the gateway wrote."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ..errors import Code
from .failures import Failure, expect_failure


def span_text(span: ReadableSpan) -> str:
    """A span's name, attributes, status and events as one searchable text."""
    parts = [span.name, str(dict(span.attributes or {})), span.status.description or ""]
    for event in span.events:
        parts += [event.name, str(dict(event.attributes or {}))]
    return "\n".join(parts)


def record_text(record: logging.LogRecord) -> str:
    """A log record's message, its structured extras and its traceback as one searchable text."""
    formatted = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
    return f"{record.getMessage()} {record.__dict__} {record.exc_text or ''} {formatted}"


def _file_contents(paths: Iterable[Path]) -> Iterator[tuple[Path, bytes]]:
    for path in paths:
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                yield file, file.read_bytes()


def assert_no_secret_leaks(
    secrets: Mapping[str, str],
    *,
    logs: Iterable[logging.LogRecord] = (),
    spans: Iterable[ReadableSpan] = (),
    errors: Iterable[Failure | str] = (),
    files: Iterable[Path] = (),
) -> None:
    """Fail naming the secret and where it appeared (``secrets`` maps a name to its value). Files are
    searched byte for byte (a directory: every file below it), the rest as text; an empty secret is
    refused, since it would prove nothing."""
    for name, secret in secrets.items():
        assert secret, f"the {name} is empty: plant a value to search for"
    # A secret also leaks URL-encoded (in a logged URL or form body), so those forms are searched too.
    secrets = {
        f"{name}{'' if form == secret else ' (URL-encoded)'}": form
        for name, secret in secrets.items()
        for form in dict.fromkeys((secret, quote(secret, safe=""), quote_plus(secret)))
    }
    haystacks = {
        "logs": "\n".join(map(record_text, logs)),
        "spans": "\n".join(map(span_text, spans)),
        "errors": "\n".join(error if isinstance(error, str) else error.text() for error in errors),
    }
    for where, text in haystacks.items():
        for name, secret in secrets.items():
            assert secret not in text, f"the {name} appears in {where}"
    for file, content in _file_contents(files):
        for name, secret in secrets.items():
            assert secret.encode() not in content, f"the {name} appears in {file}"


class _Collector(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records
        self.paused = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.paused:
            self.records.append(record)


class LeakWatch:
    """Captures what a secret could leak into while a test runs: every log record (DEBUG and up), the
    spans of a gateway built with ``tracer_provider=watch.tracer_provider``, the failures the test
    provokes through ``watch.fails(...)`` and the files (or directories) it adds to ``watch.files``."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.records: list[logging.LogRecord] = []
        self.failures: list[Failure] = []
        self.files: list[Path] = []
        self._collector = _Collector(self.records)
        self._previous_level = logging.WARNING

    def start(self) -> None:
        root = logging.getLogger()
        self._previous_level = root.level
        root.addHandler(self._collector)
        root.setLevel(logging.DEBUG)

    def stop(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self._collector)
        root.setLevel(self._previous_level)

    @property
    def spans(self) -> Sequence[ReadableSpan]:
        return self.exporter.get_finished_spans()

    @contextlib.contextmanager
    def not_the_gateway(self) -> Iterator[None]:
        """Leave out what is logged in the block: the test's own requests (a browser approving at the
        upstream logs the callback URL, code and all), not the gateway's doing."""
        self._collector.paused = True
        try:
            yield
        finally:
            self._collector.paused = False

    async def fails(self, call: Awaitable[Any], code: grpc.StatusCode | Code | None = None, reason: str | None = None) -> Failure:
        """``expect_failure``, keeping the failure to search."""
        failure = await expect_failure(call, code, reason)
        self.failures.append(failure)
        return failure

    def assert_no_leaks(self, secrets: Mapping[str, str]) -> None:
        assert_no_secret_leaks(secrets, logs=self.records, spans=self.spans, errors=self.failures, files=self.files)


def plant_authorization_secrets(monkeypatch: pytest.MonkeyPatch, states: Sequence[str], verifier: str) -> None:
    """Make the gateway's next Authorize calls use ``states`` in turn and ``verifier`` as the PKCE
    verifier, so a test knows values it otherwise never sees (the verifier is only ever stored sealed)."""
    from .. import gateway as gateway_module
    from ..oauth2 import pkce_challenge

    planted = iter(states)
    monkeypatch.setattr(gateway_module, "new_state", lambda: next(planted))
    monkeypatch.setattr(gateway_module, "new_pkce_pair", lambda: (verifier, pkce_challenge(verifier)))
