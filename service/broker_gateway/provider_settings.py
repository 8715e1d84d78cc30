"""One reader for a provider entry's settings: typed reads that collect every problem of the entry,
one line each naming the setting, so a configuration is refused once with all it needs fixing.

A provider reads each setting with the method of its type; a wrong value is recorded as a problem and
the default returned, so reading goes on and ``raise_problems`` reports them all. Unknown keys are
refused by the core before the provider is built, from ``Provider.settings_keys`` (with the known key
a misspelt one was probably meant to be), and ``env:``/``file:`` references (``references.py``) are
resolved by the configuration loader before the provider sees its settings, for every string of the
entry: the reader gets values, never references.

Hand-written rather than a schema library, measured on this project (``serve``'s imports take about
450 ms): pydantic 2 collects every error but costs about 92 ms to import with one model (+20 %), and its
messages and unknown-key errors would still need turning into these one-line ones; msgspec costs 18 ms
but stops at the first error, which is not "every problem at once". Provider construction runs once,
at start-up, so validation speed does not matter and import time does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, overload
from urllib.parse import urlsplit

from .errors import ConfigError

#: The public API (docs/plugins.md, "Public API"); anything else here may change without notice.
__all__ = ["SettingsReader", "url_problem"]


def url_problem(url: Any, *, allow_insecure_http: bool, allow_query: bool = True) -> str | None:
    """Why ``url`` is no acceptable upstream endpoint, or None: it must be an absolute https URL without
    a fragment (nor a query, for a base URL paths are appended to); plain http only where the entry
    allows it (a loopback sandbox), since tokens and client secrets would otherwise travel in clear."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or not parts.netloc or parts.scheme not in ("https", "http") or parts.fragment or (
        parts.query and not allow_query
    ):
        return f"expected an absolute https URL without {'a fragment' if allow_query else 'a query or fragment'}"
    if parts.scheme == "http" and not allow_insecure_http:
        return "plain http is refused; use https (or allow_insecure_http for a loopback sandbox)"
    return None


class SettingsReader:
    """Reads one provider entry's settings, collecting a problem for each wrong value.

    ``defaults`` are a provider type's own defaults for settings it shares with its base class (Bybit's
    scope separator is ``,``): a setting the entry leaves out takes them before the reader's default.
    """

    def __init__(
        self, settings: Mapping[str, Any], *, allow_insecure_http: bool = False, defaults: Mapping[str, Any] | None = None
    ) -> None:
        self.settings = settings
        self.allow_insecure_http = allow_insecure_http
        self.problems: list[str] = []
        self._defaults = defaults or {}

    def _value(self, key: str, default: Any) -> Any:
        return self.settings.get(key, self._defaults.get(key, default))

    def problem(self, key: str, message: str) -> None:
        """Record a problem the typed reads cannot see (two settings that must go together, say)."""
        self.problems.append(f"{key}: {message}")

    def raise_problems(self) -> None:
        """Raise ``ConfigError`` listing every problem recorded, if any."""
        if self.problems:
            raise ConfigError(list(self.problems))

    def string(self, key: str, default: str = "", *, required: bool = False) -> str:
        """A string; absent or empty is ``default`` (a problem when ``required``)."""
        value = self._value(key, None)
        if value is None or value == "":
            if required:
                self.problem(key, "required")
            return default
        if not isinstance(value, str):
            self.problem(key, "expected a string")
            return default
        return value

    def optional_string(self, key: str) -> str | None:
        """A non-empty string, or None when absent."""
        value = self._value(key, None)
        if value is not None and (not isinstance(value, str) or not value):
            self.problem(key, "expected a non-empty string")
            return None
        return value

    def choice(self, key: str, choices: Sequence[str], default: str) -> str:
        """One of ``choices``."""
        value = self._value(key, default)
        if value not in choices:
            self.problem(key, f"expected one of {', '.join(choices)}")
            return default
        return str(value)

    def boolean(self, key: str, default: bool) -> bool:
        """``true`` or ``false``: a string such as ``"false"`` is refused, never read as true."""
        value = self._value(key, default)
        if not isinstance(value, bool):
            self.problem(key, "expected true or false")
            return default
        return value

    def string_list(self, key: str, default: Sequence[str] = (), *, non_empty: bool = False) -> tuple[str, ...]:
        """A list of non-empty strings; absent is ``default``."""
        value = self._value(key, None)
        if value is None:
            return tuple(default)
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value) or (
            non_empty and not value
        ):
            self.problem(key, f"expected a {'non-empty ' if non_empty else ''}list of strings")
            return tuple(default)
        return tuple(value)

    @overload
    def seconds(self, key: str, default: int, *, allow_zero: bool = False) -> int: ...

    @overload
    def seconds(self, key: str, default: None = None, *, allow_zero: bool = False) -> int | None: ...

    def seconds(self, key: str, default: int | None = None, *, allow_zero: bool = False) -> int | None:
        """A whole number of seconds, positive (or zero with ``allow_zero``); absent is ``default``."""
        value = self._value(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (value == 0 and not allow_zero):
            self.problem(key, f"expected a {'non-negative' if allow_zero else 'positive'} number of seconds")
            return default
        return value

    def integer(self, key: str, default: int, *, minimum: int, maximum: int, unit: str) -> int:
        """A whole number of ``unit`` between ``minimum`` and ``maximum``."""
        value = self._value(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            self.problem(key, f"expected {unit} between {minimum} and {maximum}")
            return default
        return value

    @overload
    def url(self, key: str, default: str, *, allow_query: bool = True) -> str: ...

    @overload
    def url(self, key: str, default: None = None, *, required: bool = False, allow_query: bool = True) -> str | None: ...

    def url(self, key: str, default: str | None = None, *, required: bool = False, allow_query: bool = True) -> str | None:
        """An upstream URL (see ``url_problem``); absent is ``default`` (a problem when ``required``)."""
        value = self._value(key, default)
        if value is None:
            if required:
                self.problem(key, "required")
            return None
        problem = url_problem(value, allow_insecure_http=self.allow_insecure_http, allow_query=allow_query)
        if problem is not None:
            self.problem(key, problem)
            return default
        return str(value)

    @overload
    def path(self, key: str, default: str) -> str: ...

    @overload
    def path(self, key: str, default: str, *, can_be_off: bool) -> str | None: ...

    def path(self, key: str, default: str, *, can_be_off: bool = False) -> str | None:
        """A URL path starting with ``/``; with ``can_be_off``, ``""`` turns the endpoint off (None)."""
        value = self._value(key, default)
        if can_be_off and value == "":
            return None
        if not isinstance(value, str) or not value.startswith("/") or "?" in value or "#" in value:
            self.problem(key, "expected a path starting with /" + (' (or "" to turn it off)' if can_be_off else ""))
            return default
        return value

    def table(self, key: str, what: str, default: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """A table (``{...}`` in TOML); absent is ``default`` (empty). ``what`` says what it holds, for
        the problem."""
        value = self._value(key, default)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(key, f"expected a table of {what}")
            return {}
        return value

    def rate_limits(self, operations: Iterable[str], key: str = "rate_limits") -> dict[str, tuple[int, float]]:
        """Per-operation overrides of documented rate limits, ``{"<operation>" = {requests = N,
        per_seconds = S}}``, as operation -> (requests, per_seconds); only operations in ``operations``."""
        known = set(operations)
        overrides: dict[str, tuple[int, float]] = {}
        for name, value in self.table(key, "operation name = {requests, per_seconds}").items():
            if name not in known:
                self.problem(f"{key}.{name}", "no such operation")
                continue
            requests = value.get("requests") if isinstance(value, Mapping) else None
            per_seconds = value.get("per_seconds") if isinstance(value, Mapping) else None
            if (
                isinstance(requests, int) and not isinstance(requests, bool) and requests > 0
                and isinstance(per_seconds, (int, float)) and not isinstance(per_seconds, bool) and per_seconds > 0
            ):
                overrides[name] = (requests, float(per_seconds))
            else:
                self.problem(f"{key}.{name}", "expected {requests = <positive integer>, per_seconds = <positive number>}")
        return overrides
