"""Register a shop's SuperNode public key with the SuperLink (`flwr supernode register`), and keep a record."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedprice.errors import ConfigError
from privacy.keys import atomic_write
from server.deploy.connection import DEFAULT_CONNECTION
from server.deploy.flwrcli import FlowerCliError, flwr_json
from server.deploy.layout import CentralLayout

log = logging.getLogger(__name__)
SHOP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Registration:
    """A shop's SuperNode as the SuperLink knows it (public information only)."""

    shop_id: str
    node_id: str
    fingerprint: str
    public_key: str
    registered_at: str
    already_registered: bool = False


def key_fingerprint(public_key_file: Path) -> str:
    """Validate an OpenSSH EC public key (NIST curve, as Flower requires) and return its SHA256 fingerprint."""
    try:
        text = public_key_file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the shop's public key {public_key_file}: {exc.strerror}") from None
    try:
        key = serialization.load_ssh_public_key(text)
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{public_key_file} is not an OpenSSH public key: send the .pub file "
                          "that `fedprice shop node-key` printed (never the private key)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
        raise ConfigError(f"{public_key_file}: Flower node authentication needs an EC key on a NIST curve (P-384 recommended)")
    blob = base64.b64decode(text.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _load(layout: CentralLayout) -> dict[str, Any]:
    return json.loads(layout.shops_file.read_text()) if layout.shops_file.exists() else {}


def registered_shops(layout: CentralLayout) -> dict[str, Registration]:
    """Every shop registered from this central directory."""
    return {shop: Registration(**entry) for shop, entry in _load(layout).items()}


def register_shop(layout: CentralLayout, shop_id: str, public_key_file: Path, *,
                  connection: str = DEFAULT_CONNECTION) -> Registration:
    """Register the shop's key so its SuperNode may connect; idempotent for a key already registered."""
    if not SHOP_ID.match(shop_id):
        raise ConfigError(f"shop id '{shop_id}' must be 1-64 letters, digits, '.', '_' or '-'")
    fingerprint = key_fingerprint(public_key_file)
    known = _load(layout)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        answer = flwr_json(layout, ["supernode", "register", str(public_key_file.resolve()), connection,
                                    "--name", f"shop-{shop_id}"])
        reg = Registration(shop_id, str(answer["node-id"]), fingerprint, str(public_key_file.resolve()), now)
    except FlowerCliError as exc:
        if "already in use" not in str(exc):
            raise
        previous = next((r for r in known.values() if r["fingerprint"] == fingerprint), None)
        if previous is None:
            raise ConfigError(f"{public_key_file} ({fingerprint}) is already registered with the SuperLink, but not in "
                              f"{layout.shops_file}: see `flwr supernode list {connection}`") from None
        if previous["shop_id"] != shop_id:
            raise ConfigError(f"{public_key_file} ({fingerprint}) is already registered for shop "
                              f"{previous['shop_id']}, not {shop_id}") from None
        return Registration(**{**previous, "already_registered": True})
    old = known.get(shop_id)
    if old and old["fingerprint"] != fingerprint:
        log.warning("shop %s had node %s (%s); unregister it with `flwr supernode unregister %s %s` once the new key works",
                    shop_id, old["node_id"], old["fingerprint"], old["node_id"], connection)
    known[shop_id] = {k: v for k, v in asdict(reg).items() if k != "already_registered"}
    atomic_write(layout.shops_file, json.dumps(known, indent=1, sort_keys=True).encode(), mode=0o644)
    log.info("registered shop %s as SuperNode %s (%s)", shop_id, reg.node_id, fingerprint)
    return reg


def node_status(layout: CentralLayout, *, connection: str = DEFAULT_CONNECTION) -> dict[str, str]:
    """SuperNode id -> status (registered, online, offline, unregistered) as the SuperLink reports it now."""
    nodes = flwr_json(layout, ["supernode", "list", connection]).get("nodes", [])
    return {str(n["node-id"]): str(n["status"]) for n in nodes}
