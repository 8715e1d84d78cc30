"""The OAuth applications registered with the simulated OKX, and how the token and revoke endpoints
authenticate them: authorization-code mode holds a ``client_secret``, PKCE mode has none (and sends
none). An unknown client or a wrong secret is 53010 (as O8 saw for bad probes), a missing one 53011."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from starlette.responses import Response

from .responses import okx_error

__all__ = ["OkxClient", "authenticate_client"]


@dataclass(frozen=True)
class OkxClient:
    """A registered OAuth application. Without a secret it is a PKCE-mode application."""

    client_id: str
    client_secret: str | None = field(repr=False)
    redirect_uris: tuple[str, ...]
    #: Whether OKX enabled Fast API for the application (else 53017).
    fast_api: bool = True

    @property
    def pkce(self) -> bool:
        return self.client_secret is None


def authenticate_client(clients: Mapping[str, OkxClient], form: Mapping[str, str]) -> OkxClient | Response:
    """The application a token or revoke request's ``client_id`` (and secret) names, or OKX's error."""
    client_id = form.get("client_id", "")
    if not client_id:
        return okx_error("53011", "Parameter client_id cannot be empty")
    client = clients.get(client_id)
    if client is None:
        return okx_error("53010", "Parameter client_id error")
    secret = form.get("client_secret")
    if client.pkce:
        if secret is not None:
            return okx_error("53010", "Parameter client_secret error")
    elif not secret:
        return okx_error("53011", "Parameter client_secret cannot be empty")
    elif not hmac.compare_digest(secret.encode(), (client.client_secret or "").encode()):
        return okx_error("53010", "Parameter client_secret error")
    return client
