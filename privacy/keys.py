"""A shop's keys: a master key (KEK) wrapping versioned data keys, and the pseudonym key.

Layout of `<shop_dir>/keys/` (all files owner-only, 0600):
  master.key     32 random bytes, the key-encryption key (in production: a KMS/HSM handle)
  pseudonym.key  32 random bytes, the HMAC key for customer pseudonyms (kept apart from data keys)
  datakeys.json  {"active": n, "keys": {"n": base64(AES-KW(master, dek_n))}}  (RFC 3394 key wrap)
  ledger.anchor  the epsilon ledger's save counter, sealed (see privacy.ledger)

Envelope encryption: data is sealed under a data key (DEK); only wrapped DEKs are stored, under the
master key (KEK). Rotation adds a DEK, re-encrypts every artifact under it, then retires the old DEKs
(client.rotate). The key directory is 0700; a key file readable by others is refused.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from fedprice.errors import BadSignatureError, ConfigError
from privacy.crypto import DecryptionError, key_version_of, open_sealed, seal

log = logging.getLogger(__name__)
KEY_BYTES = 32
PSEUDONYM_KEY_VERSION = "v1"


def write_secret(path: Path, data: bytes) -> None:
    """Create a secret file with owner-only permissions, atomically; never overwrite one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if path.exists():
        tmp.unlink()
        raise ConfigError(f"refusing to overwrite existing key file {path}")
    os.replace(tmp, path)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write a file via a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the previous file, if any, is untouched
        raise


def _read_secret(path: Path) -> bytes:
    if not path.exists():
        raise ConfigError(f"key file {path} is missing (restore it from the shop's key backup)")
    data = path.read_bytes()
    if len(data) != KEY_BYTES:
        raise ConfigError(f"key file {path} holds {len(data)} bytes, expected {KEY_BYTES}")
    if os.stat(path).st_mode & 0o077:
        raise ConfigError(f"key file {path} is readable by others; run: chmod 600 {path}")
    return data


@dataclass
class ShopKeyring:
    """The keys of one shop, loaded from (or created in) its key directory."""

    shop_id: str
    key_dir: Path
    master: bytes = field(repr=False)  # secrets never appear in a repr, a log line or a traceback
    pseudonym_key: bytes = field(repr=False)
    data_keys: dict[int, bytes] = field(repr=False)
    active_version: int

    @classmethod
    def load(cls, shop_id: str, key_dir: Path, *, create: bool = True) -> ShopKeyring:
        """Load the shop's keys, creating them (owner-only) on first use when `create` is set."""
        master_path, pseud_path, dk_path = key_dir / "master.key", key_dir / "pseudonym.key", key_dir / "datakeys.json"
        if not master_path.exists():
            if not create:
                raise ConfigError(f"shop {shop_id}: no keys in {key_dir} (run `fedprice shop prepare` first)")
            write_secret(master_path, os.urandom(KEY_BYTES))
            write_secret(pseud_path, os.urandom(KEY_BYTES))
            log.info("shop %s: created master and pseudonym keys in %s", shop_id, key_dir)
        if os.stat(key_dir).st_mode & 0o077:
            raise ConfigError(f"key directory {key_dir} is accessible by others; run: chmod 700 {key_dir}")
        master = _read_secret(master_path)
        pseudonym_key = _read_secret(pseud_path)
        ring = cls(shop_id, key_dir, master, pseudonym_key, {}, 0)
        if dk_path.exists():
            doc = json.loads(dk_path.read_text())
            try:
                ring.data_keys = {
                    int(v): aes_key_unwrap(master, base64.b64decode(w)) for v, w in doc["keys"].items()
                }
            except InvalidUnwrap:
                raise BadSignatureError(f"shop {shop_id}: data keys in {dk_path} do not unwrap with master.key") from None
            ring.active_version = int(doc["active"])
        else:
            ring.add_data_key()
        return ring

    def _save_data_keys(self) -> None:
        doc = {
            "active": self.active_version,
            "keys": {str(v): base64.b64encode(aes_key_wrap(self.master, k)).decode() for v, k in self.data_keys.items()},
        }
        atomic_write(self.key_dir / "datakeys.json", json.dumps(doc, indent=1).encode())

    def add_data_key(self) -> int:
        """Create a new data key, make it active and persist it wrapped; return its version."""
        version = max(self.data_keys, default=0) + 1
        self.data_keys[version] = os.urandom(KEY_BYTES)
        self.active_version = version
        self._save_data_keys()
        log.info("shop %s: data key version %d is now active", self.shop_id, version)
        return version

    def retire_data_keys(self, keep: int) -> None:
        """Forget every data key but `keep` (after everything was re-encrypted under it)."""
        if keep not in self.data_keys:
            raise ConfigError(f"shop {self.shop_id}: cannot keep data key v{keep}: this keyring does not hold it")
        self.data_keys = {keep: self.data_keys[keep]}
        self.active_version = keep
        self._save_data_keys()

    def seal(self, plaintext: bytes, context: dict[str, str | int]) -> bytes:
        """Encrypt under the active data key, binding the shop and `context`."""
        return seal(self.data_keys[self.active_version], self.active_version, plaintext, {"shop": self.shop_id, **context})

    def unseal(self, blob: bytes, context: dict[str, str | int], *, what: str = "value") -> bytes:
        """Decrypt a blob written under any data key this shop still holds."""
        version = key_version_of(blob, what=what)
        key = self.data_keys.get(version)
        if key is None:
            raise DecryptionError(f"cannot decrypt {what}: it was sealed under data key v{version}, which shop "
                                  f"{self.shop_id}'s keyring does not hold (retired, or another shop's value)")
        return open_sealed(key, blob, {"shop": self.shop_id, **context}, what=what)
