"""The central team's Ed25519 model-signing key."""

from __future__ import annotations

import logging
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fedprice.errors import BadSignatureError
from privacy.keys import atomic_write, write_secret

log = logging.getLogger(__name__)


def load_or_create_signing_key(key_path: Path) -> Ed25519PrivateKey:
    """Load the private signing key, creating it (owner-only) and its .pub beside it on first use."""
    if not key_path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        write_secret(key_path, pem)
        pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        atomic_write(public_key_path(key_path), pub, mode=0o644)
        log.info("created model-signing key %s", key_path)
    loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise BadSignatureError(f"{key_path} is not an Ed25519 private key")
    return loaded


def public_key_path(key_path: Path) -> Path:
    """Where the public half of a signing key lives."""
    return key_path.with_suffix(".pub")


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load an Ed25519 public key (PEM)."""
    loaded = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(loaded, Ed25519PublicKey):
        raise BadSignatureError(f"{path} is not an Ed25519 public key")
    return loaded


def verify(public_key: Ed25519PublicKey, signature: bytes, data: bytes, *, what: str) -> None:
    """Raise BadSignatureError unless `signature` signs `data`."""
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        raise BadSignatureError(f"{what}: signature does not verify with the central team's key") from None
