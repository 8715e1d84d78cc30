"""AES-256-GCM envelopes under a keyring: the first key encrypts, every key decrypts.

Each ciphertext is bound by associated data to where it is stored (tenant, connection, field) and to
the key id, so a ciphertext copied into another row or another tenant fails to decrypt instead of
yielding someone else's token (docs/design/security.md). Keys rotate without downtime: add a new key in
front, run ``broker-gateway rewrap``, then drop the old key.

Envelope: ``0x01 | len(key_id) | key_id | nonce (12 bytes) | ciphertext and tag``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import TokenDecryptFailed

VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12


class KeyringError(ValueError):
    """The keyring configuration is unusable."""


def generate_key() -> str:
    """A new random key, base64-encoded as the configuration expects it."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def decode_key(encoded: str) -> bytes:
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except ValueError as error:
        raise KeyringError("an encryption key is not valid base64") from error
    if len(key) != KEY_BYTES:
        raise KeyringError(f"an encryption key must be {KEY_BYTES} bytes, base64-encoded")
    return key


def envelope_key_id(blob: bytes) -> str:
    """The id of the key that sealed ``blob``, read from its header without decrypting."""
    if len(blob) < 2 or blob[0] != VERSION:
        raise TokenDecryptFailed("a stored ciphertext has an unknown format")
    return blob[2 : 2 + blob[1]].decode("ascii", "replace")


#: The fixed string a key check value is the MAC of: the same key always gives the same value, and the
#: value tells nothing about the key (HMAC-SHA256 is a PRF).
_CHECK_MESSAGE = b"broker-gateway key check value v1"


def key_check_value(key: bytes) -> bytes:
    """A value the store keeps per key id so that a key with a known id but other bytes is caught at
    start, instead of failing every later read as an altered token. Never the key itself."""
    return hmac.new(key, _CHECK_MESSAGE, hashlib.sha256).digest()


def key_check_problems(stored: dict[str, bytes], keys: Sequence[tuple[str, bytes]]) -> list[str]:
    """One line per configured key whose bytes differ from those the store recorded under its id."""
    return [
        f"encryption.keys: the key with id {key_id!r} is not the key the store was used with under that id "
        "(wrong bytes: restore the original key, or give the new key a new id)"
        for key_id, key in keys
        if key_id in stored and not hmac.compare_digest(stored[key_id], key_check_value(key))
    ]


class Keyring:
    """Seals and opens secrets; ``keys`` is ordered, the first one encrypts."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyringError("the keyring needs at least one key")
        ids = [key_id for key_id, _ in keys]
        if len(set(ids)) != len(ids):
            raise KeyringError("key ids in the keyring must be unique")
        for key_id, key in keys:
            if not key_id or len(key_id) > 255 or not key_id.isascii():
                raise KeyringError("a key id must be 1-255 ASCII characters")
            if len(key) != KEY_BYTES:
                raise KeyringError(f"key {key_id} must be {KEY_BYTES} bytes (AES-256)")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}
        self.active_key_id = ids[0]

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._ciphers)

    def seal(self, plaintext: bytes, *, context: Sequence[str], once: bool = False) -> bytes:
        """Encrypt under the active key, bound to ``context`` (tenant, connection id, field name).
        ``once``: the context is sealed and opened once (a state's verifier, a request's result), so
        its associated data is not cached, where it would only push out the token contexts that
        every read reuses."""
        key_id = self.active_key_id
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._ciphers[key_id].encrypt(nonce, plaintext, _associated_data(context, key_id, once))
        header = bytes([VERSION, len(key_id)]) + key_id.encode("ascii")
        return header + nonce + ciphertext

    def open(self, blob: bytes, *, context: Sequence[str], once: bool = False) -> bytes:
        """Decrypt and authenticate; any tampering, wrong context or missing key is TOKEN_DECRYPT_FAILED.
        ``once`` as for ``seal``."""
        key_id = envelope_key_id(blob)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise TokenDecryptFailed("a stored token was sealed with a key the keyring no longer has")
        start = 2 + blob[1]
        nonce, ciphertext = blob[start : start + NONCE_BYTES], blob[start + NONCE_BYTES :]
        try:
            return cipher.decrypt(nonce, ciphertext, _associated_data(context, key_id, once))
        except (InvalidTag, ValueError) as error:
            raise TokenDecryptFailed("a stored token failed authentication; it was altered or moved") from error


def _associated_data(context: Sequence[str], key_id: str, once: bool) -> bytes:
    if once:
        return _encode_associated_data(tuple(context), key_id)
    return _cached_associated_data(tuple(context), key_id)


def _encode_associated_data(context: tuple[str, ...], key_id: str) -> bytes:
    # JSON keeps the parts unambiguous whatever characters they hold.
    return b"bg:v1|" + json.dumps([*context, key_id], separators=(",", ":")).encode()


#: Cached because every token read builds it; it holds only the tenant, connection id, field name
#: and key id, no secret.
_cached_associated_data = functools.lru_cache(maxsize=4096)(_encode_associated_data)
