"""The OKX sites of the ``okx`` provider: the configured table of site name to origin, and which
site a callback names.

The callback's ``domain`` (``https://www.okx.com``, ``https://eea.okx.com``, ...) names the OKX site
the user's account lives on; the code exchange and every later call of that connection go there. It
is accepted only when it is one of the configured ``sites``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from broker_gateway.provider_settings import SettingsReader, url_problem

__all__ = ["DEFAULT_SITES", "origin_of", "read_sites", "site_named_by"]

#: The sites a callback's ``domain`` may name (docs/design/exchanges.md): name -> origin.
DEFAULT_SITES = {
    "www": "https://www.okx.com",
    "eea": "https://eea.okx.com",
    "us": "https://us.okx.com",
    "my": "https://my.okx.com",
}

_SITE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an origin-only URL (no path beyond ``/``, query or fragment)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def read_sites(reader: SettingsReader) -> dict[str, str]:
    """The ``sites`` setting as site name -> origin; problems are recorded, bad entries left out."""
    table = reader.table("sites", "site name = origin URL", DEFAULT_SITES)
    if not table:
        if isinstance(reader.settings.get("sites"), Mapping):  # empty; another type is reported already
            reader.problem("sites", "expected a table of site name = origin URL")
        return {}
    sites: dict[str, str] = {}
    for name, url in table.items():
        if not isinstance(name, str) or not _SITE_NAME.fullmatch(name):
            reader.problem("sites", "site names are lower-case letters, digits and -")
            continue
        origin = origin_of(url) if isinstance(url, str) else None
        if origin is None:
            reader.problem(f"sites.{name}", "expected an origin such as https://www.okx.com")
            continue
        problem = url_problem(origin, allow_insecure_http=reader.allow_insecure_http)
        if problem is not None:
            reader.problem(f"sites.{name}", problem)
            continue
        sites[name] = origin
    if len(set(sites.values())) != len(sites):
        reader.problem("sites", "two sites have the same origin")
    return sites


def site_named_by(domain: str, sites: Mapping[str, str]) -> str | None:
    """The name of the site in ``sites`` that a callback's ``domain`` (an origin, or a bare host for
    https) names; None for any other."""
    origin = origin_of(domain if "://" in domain else f"https://{domain}")
    for name, site_origin in sites.items():
        if origin is not None and origin == site_origin:
            return name
    return None
