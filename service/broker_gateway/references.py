"""Secrets by reference: a setting ``env:NAME`` or ``file:/path`` stands for that variable's value or that
file's content (without its trailing newline), so secrets stay out of configuration files."""

from __future__ import annotations

import os
from pathlib import Path


class UnresolvedReference(Exception):
    """The reference names a variable that is not set or a file that cannot be read."""


def resolve_reference(value: str) -> str:
    """What ``value`` refers to, or ``value`` itself when it is no reference."""
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise UnresolvedReference(f"environment variable {name} is not set")
        return os.environ[name]
    if value.startswith("file:"):
        try:
            return Path(value[5:]).read_text().rstrip("\n")
        except OSError as error:
            raise UnresolvedReference(f"cannot read {value[5:]}: {error.strerror}") from None
    return value
