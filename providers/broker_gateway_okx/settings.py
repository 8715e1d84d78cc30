"""Readers of the ``okx`` provider's settings table. Each reads one value and, when it is wrong,
appends a problem and returns a default instead of raising, so one ``ConfigError`` lists every
problem of a configuration, not just the first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, overload
from urllib.parse import urlsplit

__all__ = ["check_url", "read_boolean", "read_path", "read_rate", "read_seconds", "read_string", "read_string_list"]


def read_string(settings: Mapping[str, Any], key: str, problems: list[str], *, required: bool = False) -> str:
    """A string setting; absent or empty is ``""``."""
    value = settings.get(key)
    if value is None or value == "":
        if required:
            problems.append(f"{key}: required")
        return ""
    if not isinstance(value, str):
        problems.append(f"{key}: expected a string")
        return ""
    return value


def read_string_list(settings: Mapping[str, Any], key: str, problems: list[str]) -> tuple[str, ...]:
    """A list of non-empty strings; absent is ``()``."""
    value = settings.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        problems.append(f"{key}: expected a list of strings")
        return ()
    return tuple(value)


def read_boolean(settings: Mapping[str, Any], key: str, default: bool, problems: list[str]) -> bool:
    value = settings.get(key, default)
    if not isinstance(value, bool):
        problems.append(f"{key}: expected true or false")
        return default
    return value


def read_seconds(settings: Mapping[str, Any], key: str, default: int, problems: list[str], *, allow_zero: bool = False) -> int:
    """A whole number of seconds, positive (or zero with ``allow_zero``)."""
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (value == 0 and not allow_zero):
        problems.append(f"{key}: expected a {'non-negative' if allow_zero else 'positive'} number of seconds")
        return default
    return value


def read_rate(value: Any, name: str, problems: list[str]) -> tuple[int, float] | None:
    """``rate_limits.<name>``, a ``{requests, per_seconds}`` table, as ``(requests, per_seconds)``."""
    if isinstance(value, Mapping):
        requests, per_seconds = value.get("requests"), value.get("per_seconds")
        if (
            isinstance(requests, int) and not isinstance(requests, bool) and requests > 0
            and isinstance(per_seconds, (int, float)) and not isinstance(per_seconds, bool) and per_seconds > 0
        ):
            return requests, float(per_seconds)
    problems.append(f"rate_limits.{name}: expected {{requests = <positive integer>, per_seconds = <positive number>}}")
    return None


@overload
def read_path(settings: Mapping[str, Any], key: str, default: str, problems: list[str], *, optional: Literal[False]) -> str: ...


@overload
def read_path(settings: Mapping[str, Any], key: str, default: str, problems: list[str], *, optional: bool) -> str | None: ...


def read_path(settings: Mapping[str, Any], key: str, default: str, problems: list[str], *, optional: bool) -> str | None:
    """A URL path starting with ``/``; with ``optional``, ``""`` turns the endpoint off (None)."""
    value = settings.get(key, default)
    if optional and value == "":
        return None
    if not isinstance(value, str) or not value.startswith("/") or "?" in value or "#" in value:
        problems.append(f"{key}: expected a path starting with /" + (" (or \"\" to turn it off)" if optional else ""))
        return default
    return value


def check_url(key: str, url: str, problems: list[str], *, allow_insecure_http: bool) -> bool:
    """Whether ``url`` is absolute https (or http where the context allows it) without a fragment."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
        problems.append(f"{key}: expected an absolute https URL without a fragment")
        return False
    if parts.scheme == "http" and not allow_insecure_http:
        problems.append(f"{key}: plain http is refused; use https (or allow_insecure_http for a loopback sandbox)")
        return False
    return True
