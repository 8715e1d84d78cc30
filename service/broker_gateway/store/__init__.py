"""The token vault: the Store protocol, its backends, and the encryption of what they hold."""

from .base import ConnectionStatus, PendingAuthorization, Store, StoredConnection, TakeOutcome

__all__ = ["ConnectionStatus", "PendingAuthorization", "Store", "StoredConnection", "TakeOutcome"]
