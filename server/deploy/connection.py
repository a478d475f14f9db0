"""The `flwr` CLI's connection to our SuperLink, written to `$FLWR_HOME/config.toml`."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from flwr.cli.constant import DEFAULT_FLOWER_CONFIG_TOML

from fedprice.errors import ConfigError
from privacy.keys import atomic_write

log = logging.getLogger(__name__)
CONFIG_FILE = "config.toml"
DEFAULT_CONNECTION = "fedprice"


def config_path(flwr_home: Path) -> Path:
    """Flower's CLI configuration file under FLWR_HOME."""
    return flwr_home / CONFIG_FILE


def write_connection(flwr_home: Path, *, address: str, ca_cert: Path, name: str = DEFAULT_CONNECTION,
                     make_default: bool = True) -> Path:
    """Add or update `[superlink.<name>]` (TLS with our CA) in FLWR_HOME's config.toml, keeping other entries."""
    if ":" not in address or not address.rsplit(":", 1)[1].isdigit():
        raise ConfigError(f"SuperLink address '{address}' must be host:port")
    path = config_path(flwr_home)
    try:
        doc: dict[str, Any] = tomllib.loads(path.read_text() if path.exists() else DEFAULT_FLOWER_CONFIG_TOML)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or remove it") from None
    links = doc.setdefault("superlink", {})
    links[name] = {"address": address, "root-certificates": str(ca_cert.resolve()), "insecure": False}
    if make_default:
        links["default"] = name
    atomic_write(path, tomli_w.dumps(doc).encode(), mode=0o644)
    log.info("flwr connection '%s' -> %s (CA %s) written to %s", name, address, ca_cert, path)
    return path


def read_connection(flwr_home: Path, name: str = DEFAULT_CONNECTION) -> dict[str, Any]:
    """The `[superlink.<name>]` table, or a ConfigError saying which command writes it."""
    path = config_path(flwr_home)
    doc = tomllib.loads(path.read_text()) if path.exists() else {}
    conn = doc.get("superlink", {}).get(name)
    if not isinstance(conn, dict):
        raise ConfigError(f"no SuperLink connection '{name}' in {path}: start the SuperLink with "
                          "`fedprice federation superlink` (it writes the connection) or pass --connection")
    return conn
