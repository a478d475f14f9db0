"""Where the central team's deployment files live, and the environment every Flower process gets."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

FLOWER_ENV = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}


@dataclass(frozen=True)
class CentralLayout:
    """The layout of the central team's directory (default `var/central`; kept absolute)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", self.root.expanduser().resolve())

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def ca_cert(self) -> Path:
        """The CA certificate every shop receives (public)."""
        return self.certs / "ca.crt"

    @property
    def ca_key(self) -> Path:
        """The CA's private key (owner-only; never leaves the central host)."""
        return self.certs / "ca.key"

    @property
    def superlink_cert(self) -> Path:
        return self.certs / "superlink.crt"

    @property
    def superlink_key(self) -> Path:
        return self.certs / "superlink.key"

    @property
    def database(self) -> Path:
        """The SuperLink's persistent SQLite state (runs, registered nodes)."""
        return self.root / "superlink" / "state.db"

    @property
    def flwr_home(self) -> Path:
        """FLWR_HOME for the central team's `flwr` CLI (config.toml) and the SuperLink's installed apps."""
        return self.root / "flwr"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def shops_file(self) -> Path:
        """Which shop keys were registered, with their node ids and key fingerprints (no secrets)."""
        return self.root / "registered_shops.json"


def flower_env(flwr_home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a Flower process: telemetry and update checks off, FLWR_HOME, this venv first on PATH.

    Flower starts `flower-superexec`, `flwr-serverapp` and `flwr-clientapp` by name, so the directory of the
    running interpreter (the venv with torch, opacus and this project) must come first on PATH.
    """
    env = dict(os.environ if base is None else base)
    env.update(FLOWER_ENV)
    env["FLWR_HOME"] = str(flwr_home)
    env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] = "1"
    bin_dir = str(Path(sys.executable).parent)
    parts = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != bin_dir]
    env["PATH"] = os.pathsep.join([bin_dir, *parts])
    return env


def flower_binary(name: str) -> str:
    """The path of a Flower console script installed next to the running interpreter (or the bare name)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name
