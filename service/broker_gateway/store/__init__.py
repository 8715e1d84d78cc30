"""The token vault: the Store protocol, its backends, and the encryption of what they hold."""

from .base import ClaimOutcome, ConnectionStatus, PendingAuthorization, Store, StoredConnection, TakeOutcome

__all__ = ["ClaimOutcome", "ConnectionStatus", "PendingAuthorization", "Store", "StoredConnection", "TakeOutcome"]
