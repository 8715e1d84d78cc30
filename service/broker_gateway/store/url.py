"""The password inside a PostgreSQL URL: resolving an ``env:``/``file:`` reference there, and hiding it.

Kept apart from the PostgreSQL store so the configuration can use it without the driver installed.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

#: scheme://user:PASSWORD@rest; the password runs to the first "@", so a ``file:/run/secrets/x``
#: reference may keep its slashes.
_PASSWORD = re.compile(r"^(postgres(?:ql)?://[^:@/]*:)([^@]*)(@.*)$", re.DOTALL)


def url_password(url: str) -> str:
    """The URL's password as written (empty when it has none)."""
    match = _PASSWORD.match(url)
    return "" if match is None else match.group(2)


def with_password(url: str, password: str) -> str:
    """``url`` with its password replaced by ``password``, percent-encoded as a URL needs."""
    match = _PASSWORD.match(url)
    if match is None:
        return url
    return f"{match.group(1)}{quote(password, safe='')}{match.group(3)}"


def password_reference(url: str) -> str | None:
    """The ``env:NAME`` or ``file:/path`` reference standing for the URL's password, if it is one."""
    password = unquote(url_password(url))
    return password if password.startswith(("env:", "file:")) else None


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    match = _PASSWORD.match(url)
    return url if match is None else f"{match.group(1)}***{match.group(3)}"
