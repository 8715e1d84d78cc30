"""OKX UIDs for simulated users and sub-accounts. The documents do not say how UIDs are made ([I]):
here a UID is a stable 18-digit number derived from the name, the same across restarts."""

from __future__ import annotations

from broker_gateway.sandbox import simkit

__all__ = ["uid_of"]

_UID_BASE = 10**17


def uid_of(name: str) -> str:
    """The UID of the user or sub-account called ``name``."""
    return str(simkit.stable_user_id(name, base=_UID_BASE))
