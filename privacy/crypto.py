"""Encryption at rest: AES-256-GCM with a random 96-bit nonce and associated data binding context.

Layout of a sealed blob: b"FPC1" | data-key version (uint32, big endian) | 12-byte nonce | ciphertext+tag.
The associated data is the canonical `key=value;…` string of the caller's context (shop, table,
schema version, and e.g. the pseudonym of a feature row) plus the key version from the header, so a
blob moved to another shop, table, row or schema, or relabelled with another key version, fails.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fedprice.errors import BadSignatureError

MAGIC = b"FPC1"
NONCE_BYTES = 12
_HEADER = struct.Struct(">4sI")  # magic, data-key version


class DecryptionError(BadSignatureError):
    """A ciphertext failed authentication: wrong key, tampered bytes or wrong context."""


def associated_data(context: Mapping[str, str | int], key_version: int) -> bytes:
    """Canonical AAD: sorted key=value pairs plus the key version, so a moved value fails."""
    if "key_version" in context:
        raise ValueError("key_version is set by the keyring, not the caller")
    for k, v in context.items():
        if any(c in f"{k}{v}" for c in ";="):
            raise ValueError(f"context entry {k!r} must not contain ';' or '=' (the AAD would be ambiguous)")
    items = sorted({**{k: str(v) for k, v in context.items()}, "key_version": str(key_version)}.items())
    return ";".join(f"{k}={v}" for k, v in items).encode()


def seal(key: bytes, key_version: int, plaintext: bytes, context: Mapping[str, str | int]) -> bytes:
    """Encrypt and authenticate `plaintext`, binding it to `context` and the key version."""
    if len(key) != 32:
        raise ValueError(f"AES-256-GCM needs a 32-byte key, got {len(key)} bytes")
    nonce = os.urandom(NONCE_BYTES)
    body = AESGCM(key).encrypt(nonce, plaintext, associated_data(context, key_version))
    return _HEADER.pack(MAGIC, key_version) + nonce + body


def key_version_of(blob: bytes, *, what: str = "value") -> int:
    """The data-key version a sealed blob was written with (DecryptionError if it is not one)."""
    if len(blob) < _HEADER.size + NONCE_BYTES + 16:
        raise DecryptionError(f"cannot decrypt {what}: the ciphertext is truncated ({len(blob)} bytes)")
    magic, version = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise DecryptionError(f"cannot decrypt {what}: not a fedprice ciphertext (bad header)")
    return int(version)


def open_sealed(key: bytes, blob: bytes, context: Mapping[str, str | int], *, what: str = "value") -> bytes:
    """Decrypt a sealed blob; raise DecryptionError naming `what` on any mismatch."""
    version = key_version_of(blob, what=what)
    nonce = blob[_HEADER.size : _HEADER.size + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[_HEADER.size + NONCE_BYTES :], associated_data(context, version))
    except InvalidTag:
        raise DecryptionError(
            f"cannot decrypt {what}: wrong key, tampered or truncated bytes, or the value belongs to another "
            f"shop/table/row (context {dict(context)}, key version {version})"
        ) from None
