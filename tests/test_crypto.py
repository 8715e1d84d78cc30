"""Properties of the token envelope (store/crypto.Keyring), docs/design/security.md.

Every way a stored ciphertext can be altered, moved or opened with the wrong key must end in
TokenDecryptFailed, never in a plaintext; rotation works because the first key seals and any opens.
"""

from __future__ import annotations

import base64
import os

import pytest
from broker_gateway.errors import TokenDecryptFailed
from broker_gateway.store.crypto import (
    KEY_BYTES,
    NONCE_BYTES,
    Keyring,
    KeyringError,
    _cached_associated_data,
    decode_key,
    envelope_key_id,
    generate_key,
)
from hypothesis import given, settings
from hypothesis import strategies as st

KEY_A = os.urandom(KEY_BYTES)
KEY_B = os.urandom(KEY_BYTES)
CONTEXT = ("tenant-1", "conn_1", "tokens")

plaintexts = st.binary(max_size=2048)
parts = st.text(max_size=40)
contexts = st.tuples(parts, parts, parts)


def keyring(*ids: str) -> Keyring:
    return Keyring([(key_id, os.urandom(KEY_BYTES)) for key_id in ids])


RING = keyring("k1")


def _header_length(blob: bytes) -> int:
    return 2 + blob[1]


@settings(max_examples=200, deadline=None)
@given(plaintext=plaintexts, context=contexts)
def test_round_trip(plaintext: bytes, context: tuple[str, str, str]) -> None:
    """What is sealed under a context opens, unchanged, under the same context."""
    sealed = RING.seal(plaintext, context=context)
    assert RING.open(sealed, context=context) == plaintext
    if len(plaintext) >= 16:  # shorter values can occur in random bytes by chance
        assert plaintext not in sealed


@settings(max_examples=200, deadline=None)
@given(plaintext=plaintexts, context=contexts, other=contexts)
def test_open_needs_the_same_context(
    plaintext: bytes, context: tuple[str, str, str], other: tuple[str, str, str]
) -> None:
    """A ciphertext moved to another tenant, connection or field does not open (AAD binding)."""
    sealed = RING.seal(plaintext, context=context)
    if other == context:
        assert RING.open(sealed, context=other) == plaintext
    else:
        with pytest.raises(TokenDecryptFailed):
            RING.open(sealed, context=other)


@pytest.mark.parametrize(
    "other",
    [
        ("tenant-2", "conn_1", "tokens"),
        ("tenant-1", "conn_2", "tokens"),
        ("tenant-1", "conn_1", "code_verifier"),
        ("tenant-1|conn_1", "", "tokens"),  # separators cannot be shifted between parts
        ("tenant-1", "conn_1|tokens", ""),
        ("tenant-1", "conn_1"),
        ("tenant-1", "conn_1", "tokens", ""),
    ],
)
def test_each_context_part_is_bound(other: tuple[str, ...]) -> None:
    sealed = RING.seal(b"secret", context=CONTEXT)
    with pytest.raises(TokenDecryptFailed):
        RING.open(sealed, context=other)


@settings(max_examples=50, deadline=None)
@given(plaintext=plaintexts, context=contexts)
def test_single_use_contexts_seal_as_repeated_ones(plaintext: bytes, context: tuple[str, str, str]) -> None:
    """``once`` changes only what is cached: either way of sealing opens the other way."""
    assert RING.open(RING.seal(plaintext, context=context, once=True), context=context) == plaintext
    assert RING.open(RING.seal(plaintext, context=context), context=context, once=True) == plaintext


def test_single_use_contexts_leave_the_token_contexts_cached() -> None:
    """A flood of verifiers (one context each) must not push out the token contexts every read reuses."""
    sealed = RING.seal(b"tokens", context=CONTEXT)
    RING.open(sealed, context=CONTEXT)
    for state in range(5000):
        verifier_context = ("tenant-1", f"state-{state}", "code_verifier")
        RING.open(RING.seal(b"verifier", context=verifier_context, once=True), context=verifier_context, once=True)
    hits = _cached_associated_data.cache_info().hits
    RING.open(sealed, context=CONTEXT)
    assert _cached_associated_data.cache_info().hits == hits + 1


def test_every_single_bit_flip_fails() -> None:
    """Exhaustive over a short envelope: header, key id, nonce, ciphertext and tag are all covered."""
    sealed = RING.seal(b"access-token-value", context=CONTEXT)
    for index in range(len(sealed)):
        for bit in range(8):
            tampered = bytearray(sealed)
            tampered[index] ^= 1 << bit
            with pytest.raises(TokenDecryptFailed):
                RING.open(bytes(tampered), context=CONTEXT)


@settings(max_examples=300, deadline=None)
@given(plaintext=st.binary(min_size=0, max_size=4096), data=st.data())
def test_a_bit_flip_anywhere_fails(plaintext: bytes, data: st.DataObject) -> None:
    sealed = RING.seal(plaintext, context=CONTEXT)
    index = data.draw(st.integers(0, len(sealed) - 1))
    bit = data.draw(st.integers(0, 7))
    tampered = bytearray(sealed)
    tampered[index] ^= 1 << bit
    with pytest.raises(TokenDecryptFailed):
        RING.open(bytes(tampered), context=CONTEXT)


def test_every_truncation_fails() -> None:
    sealed = RING.seal(b"refresh-token-value", context=CONTEXT)
    for length in range(len(sealed)):
        with pytest.raises(TokenDecryptFailed):
            RING.open(sealed[:length], context=CONTEXT)


def test_appended_bytes_fail() -> None:
    sealed = RING.seal(b"refresh-token-value", context=CONTEXT)
    for suffix in (b"\x00", b"x" * 16):
        with pytest.raises(TokenDecryptFailed):
            RING.open(sealed + suffix, context=CONTEXT)


def test_nonces_are_unique() -> None:
    """Random 96-bit nonces: 2 000 seals of the same plaintext never repeat a nonce or a ciphertext."""
    sealed = [RING.seal(b"same", context=CONTEXT) for _ in range(2000)]
    start = _header_length(sealed[0])
    nonces = {blob[start : start + NONCE_BYTES] for blob in sealed}
    assert len(nonces) == len(sealed)
    assert len(set(sealed)) == len(sealed)
    assert all(len(blob[start : start + NONCE_BYTES]) == NONCE_BYTES for blob in sealed)


def test_unknown_key_id_fails() -> None:
    sealed = keyring("old").seal(b"secret", context=CONTEXT)
    with pytest.raises(TokenDecryptFailed, match="key"):
        keyring("new").open(sealed, context=CONTEXT)


def test_same_id_different_key_fails() -> None:
    sealed = Keyring([("k", KEY_A)]).seal(b"secret", context=CONTEXT)
    with pytest.raises(TokenDecryptFailed):
        Keyring([("k", KEY_B)]).open(sealed, context=CONTEXT)


def test_key_id_is_bound() -> None:
    """Relabelling an envelope to another key id fails even when both ids hold the same key."""
    ring = Keyring([("ka", KEY_A), ("kb", KEY_A)])
    sealed = ring.seal(b"secret", context=CONTEXT)
    assert envelope_key_id(sealed) == "ka"
    relabelled = sealed.replace(b"ka", b"kb", 1)
    assert envelope_key_id(relabelled) == "kb"
    with pytest.raises(TokenDecryptFailed):
        ring.open(relabelled, context=CONTEXT)


def test_first_key_encrypts_all_decrypt() -> None:
    old_only = Keyring([("old", KEY_A)])
    rotated = Keyring([("new", KEY_B), ("old", KEY_A)])
    legacy = old_only.seal(b"legacy", context=CONTEXT)
    fresh = rotated.seal(b"fresh", context=CONTEXT)
    assert rotated.active_key_id == "new"
    assert envelope_key_id(legacy) == "old"
    assert envelope_key_id(fresh) == "new"
    assert rotated.open(legacy, context=CONTEXT) == b"legacy"
    assert rotated.open(fresh, context=CONTEXT) == b"fresh"
    assert rotated.key_ids == {"new", "old"}
    with pytest.raises(TokenDecryptFailed):
        old_only.open(fresh, context=CONTEXT)


def test_unknown_envelope_version_fails() -> None:
    sealed = RING.seal(b"secret", context=CONTEXT)
    with pytest.raises(TokenDecryptFailed):
        envelope_key_id(b"\x02" + sealed[1:])
    for blob in (b"", b"\x01"):
        with pytest.raises(TokenDecryptFailed):
            envelope_key_id(blob)


def test_generated_keys_decode() -> None:
    key = decode_key(generate_key())
    assert len(key) == KEY_BYTES
    assert generate_key() != generate_key()


@pytest.mark.parametrize(
    "keys",
    [
        [],
        [("a", KEY_A), ("a", KEY_B)],
        [("", KEY_A)],
        [("x" * 256, KEY_A)],
        [("clé", KEY_A)],
    ],
    ids=["empty", "duplicate-ids", "empty-id", "long-id", "non-ascii-id"],
)
def test_invalid_keyrings_are_refused(keys: list[tuple[str, bytes]]) -> None:
    with pytest.raises(KeyringError):
        Keyring(keys)


@pytest.mark.parametrize("length", [0, 7, 16, 24, 31, 33, 64])
def test_keys_of_a_wrong_length_are_refused(length: int) -> None:
    """Only 32-byte keys (AES-256, KEY_BYTES); anything else is a configuration problem, a KeyringError.

    Today AESGCM raises a bare ValueError for 0/7/31/33/64 bytes and silently accepts 16 and 24-byte
    keys (AES-128/192); only decode_key, on the configuration path, checks the length."""
    with pytest.raises(KeyringError):
        Keyring([("k", os.urandom(length))])


@pytest.mark.parametrize(
    "encoded",
    [
        "not base64!",
        base64.b64encode(os.urandom(16)).decode(),
        base64.b64encode(os.urandom(33)).decode(),
        "",
    ],
    ids=["not-base64", "16-bytes", "33-bytes", "empty"],
)
def test_bad_configured_keys_are_refused(encoded: str) -> None:
    with pytest.raises(KeyringError):
        decode_key(encoded)
