"""API keys with scopes: created once, shown once, stored only as sha256 hashes in a JSON file.

A key is `fpk_<8 hex id>_<43 chars of a 256-bit random secret>`. Its sha256 is enough to check it:
a 256-bit random secret cannot be guessed from its hash, so no slow password hash is needed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fedprice.errors import ConfigError
from privacy.keys import atomic_write

log = logging.getLogger(__name__)
SCOPES: tuple[str, ...] = ("quote", "admin")
KEY_PREFIX = "fpk_"
# Values people paste into config files while trying things; production refuses them.
PLACEHOLDER_KEYS: tuple[str, ...] = ("changeme", "change-me", "secret", "password", "test", "dev", "demo", "apikey", "")


@dataclass(frozen=True)
class ApiKey:
    """One stored key: its public id, name, scopes and the hash of the secret."""

    key_id: str
    name: str
    scopes: frozenset[str]
    sha256: str
    created_at: str


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_scopes(text: str) -> frozenset[str]:
    """Parse `quote,admin` into a scope set, naming any unknown scope."""
    scopes = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        raise ConfigError(f"scopes: unknown or empty {unknown or text!r}; choose from {', '.join(SCOPES)}")
    return scopes


def load_key_file(path: Path) -> list[ApiKey]:
    """Read the keys file (an absent file holds no keys); raise ConfigError naming a malformed entry."""
    if not path.exists():
        return []
    doc = json.loads(path.read_text() or "{}")
    out: list[ApiKey] = []
    for i, entry in enumerate(doc.get("keys", [])):
        try:
            out.append(ApiKey(str(entry["id"]), str(entry["name"]), frozenset(entry["scopes"]), str(entry["sha256"]),
                              str(entry.get("created_at", ""))))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: keys[{i}] is missing field {exc}") from None
        bad = sorted(out[-1].scopes - set(SCOPES))
        if bad:
            raise ConfigError(f"{path}: keys[{i}] ({out[-1].name}) has unknown scopes {bad}")
    return out


def _save(path: Path, keys: list[ApiKey]) -> None:
    doc = {"version": 1, "keys": [{"id": k.key_id, "name": k.name, "scopes": sorted(k.scopes), "sha256": k.sha256,
                                   "created_at": k.created_at} for k in keys]}
    atomic_write(path, json.dumps(doc, indent=1).encode(), mode=0o600)


def create_key(path: Path, *, name: str, scopes: frozenset[str]) -> str:
    """Create a key, store its hash under `name` and return the key itself (shown to the user once)."""
    if not name.strip():
        raise ConfigError("name: must not be empty")
    keys = load_key_file(path)
    if any(k.name == name for k in keys):
        raise ConfigError(f"name: a key named {name!r} already exists in {path} (revoke it first)")
    key_id = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    keys.append(ApiKey(key_id, name, scopes, hash_key(key), datetime.now(UTC).isoformat(timespec="seconds")))
    _save(path, keys)
    log.debug("created API key %s (%s) with scopes %s in %s", key_id, name, ",".join(sorted(scopes)), path)
    return key


def revoke_key(path: Path, *, name: str) -> None:
    """Remove the key stored under `name`."""
    keys = load_key_file(path)
    kept = [k for k in keys if k.name != name]
    if len(kept) == len(keys):
        raise ConfigError(f"name: no key named {name!r} in {path}")
    _save(path, kept)
    log.debug("revoked API key %s in %s", name, path)
