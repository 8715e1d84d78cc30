"""Copying every connection from one store into another (``broker-gateway copy-store``).

Ciphertexts are copied as they are: no token is decrypted, so the target gateway needs the same keys
(checked first, since a copy it cannot open would strand every user). Status, versions, metadata and
times are kept; creation order is kept too, though the target numbers the connections itself. Rerunning
is safe: a connection already in the target is left alone unless the source holds a newer version.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from .base import Store, StoredConnection


@dataclass
class CopyReport:
    copied: int = 0
    updated: int = 0
    unchanged: int = 0


def keyring_problems(used: Iterable[str], source: dict[str, bytes], target: dict[str, bytes]) -> list[str]:
    """Why the target could not open what the source holds: a key id it lacks, or holds a different key
    under."""
    problems = []
    for key_id in sorted(used):
        if key_id not in target:
            problems.append(f"copy-store: the target's keyring has no key {key_id!r}, which sealed stored tokens")
        elif key_id in source and not hmac.compare_digest(source[key_id], target[key_id]):
            problems.append(f"copy-store: key {key_id!r} differs between the two configurations")
    return problems


async def copy_connections(source: Store, target: Store) -> CopyReport:
    report = CopyReport()
    async for connection in source.all_connections():
        if await target.insert_connection(connection):
            report.copied += 1
        elif await _update_if_newer(target, connection):
            report.updated += 1
        else:
            report.unchanged += 1
    return report


async def _update_if_newer(target: Store, connection: StoredConnection) -> bool:
    existing = await target.get_connection(connection.tenant, connection.connection_id)
    if existing is None or existing.version >= connection.version:
        return False
    return await target.update_connection(connection, expected_version=existing.version)
