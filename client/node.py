"""The shop's Flower SuperNode: its authentication key, and the command that starts it next to the shop's data."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from client.storage import ShopPaths
from fedprice.errors import ConfigError
from privacy.keys import atomic_write, write_secret

log = logging.getLogger(__name__)
DEFAULT_RUNTIME_PORT = 9094


@dataclass(frozen=True)
class NodeKey:
    """Where the shop's SuperNode key pair lives, and the public key's fingerprint."""

    private_key: Path
    public_key: Path
    fingerprint: str
    created: bool


def node_key_paths(paths: ShopPaths) -> tuple[Path, Path]:
    """The SuperNode's private key (owner-only, never leaves the shop) and its public key (sent to the central team)."""
    return paths.key_dir / "supernode.key", paths.key_dir / "supernode.pub"


def _fingerprint(public_line: bytes) -> str:
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def create_node_key(paths: ShopPaths) -> NodeKey:
    """Create the shop's EC P-384 node key in OpenSSH format (as Flower expects); keep an existing one."""
    private, public = node_key_paths(paths)
    created = not private.exists()
    if created:
        key = ec.generate_private_key(ec.SECP384R1())
        write_secret(private, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                serialization.NoEncryption()))
        line = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        atomic_write(public, line + f" fedprice-shop-{paths.shop_id}\n".encode(), mode=0o644)
        log.info("shop %s: created SuperNode key %s", paths.shop_id, private)
    elif not public.exists():
        raise ConfigError(f"{private} exists but {public} is missing: restore it or remove both and register the new key")
    return NodeKey(private, public, _fingerprint(public.read_bytes()), created)


def _check_private_key(private: Path) -> None:
    if not private.exists():
        raise ConfigError(f"{private} is missing: run `fedprice shop node-key` and have the central team register the .pub")
    if os.stat(private).st_mode & 0o077:
        raise ConfigError(f"{private} is readable by others; run: chmod 600 {private}")
    try:
        key = serialization.load_ssh_private_key(private.read_bytes(), password=None)
    except ValueError:
        raise ConfigError(f"{private} is not an unencrypted OpenSSH private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{private} is not an EC key (Flower node authentication needs one)")


@dataclass(frozen=True)
class SuperNodeSettings:
    """Where the shop's SuperNode connects and how it runs."""

    superlink: str
    ca_cert: Path
    port: int = DEFAULT_RUNTIME_PORT
    epsilon_budget: float | None = None


def supernode_command(paths: ShopPaths, s: SuperNodeSettings) -> list[str]:
    """The `flower-supernode` command: TLS with the federation's CA, the shop's key, its shop id and data directory."""
    if ":" not in s.superlink:
        raise ConfigError(f"--superlink '{s.superlink}' must be host:port (the central team's SuperLink)")
    if not s.ca_cert.exists():
        raise ConfigError(f"CA certificate {s.ca_cert} is missing: get ca.crt from the central team")
    if not paths.train.exists():
        raise ConfigError(f"shop {paths.shop_id}: no prepared examples in {paths.train.parent}: "
                          "run `fedprice shop prepare` first")
    private, _ = node_key_paths(paths)
    _check_private_key(private)
    root = paths.root.resolve()
    if '"' in str(root) or '"' in paths.shop_id:
        raise ConfigError(f"shop directory {root} must not contain double quotes")
    node_config = f'shop-id="{paths.shop_id}" data-dir="{root}"'
    if s.epsilon_budget is not None:
        node_config += f" epsilon-budget={float(s.epsilon_budget)}"
    binary = Path(sys.executable).parent / "flower-supernode"
    cmd = [str(binary) if binary.exists() else "flower-supernode", "--superlink", s.superlink,
           "--root-certificates", str(s.ca_cert.resolve()), "--auth-supernode-private-key", str(private.resolve()),
           "--node-config", node_config, "--port", str(s.port)]
    return cmd


def supernode_env(paths: ShopPaths) -> dict[str, str]:
    """Telemetry and update checks off, the shop's own FLWR_HOME, this venv's Flower executables first on PATH."""
    env = dict(os.environ)
    env.update({"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
                "FLWR_HOME": str((paths.root / "flwr").resolve())})
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, *(p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir)])
    return env


def exec_supernode(paths: ShopPaths, s: SuperNodeSettings) -> None:
    """Replace this process with the shop's SuperNode (its pid is then the SuperNode's)."""
    cmd = supernode_command(paths, s)
    log.info("shop %s: starting its SuperNode (SuperLink %s, local runtime port %d)", paths.shop_id, s.superlink, s.port)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(cmd[0], cmd, supernode_env(paths))
