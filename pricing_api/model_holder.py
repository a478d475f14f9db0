"""The model being served: loaded only when verified, swapped atomically, kept when a new one is refused."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from demand.model import DemandModel
from demand.schema import N_FEATURES
from fedprice.errors import FedpriceError, ModelNotReadyError
from pricing_api.fast_forward import Forward, compile_forward, torch_forward
from server.registry import LATEST, MANIFEST, latest_version_dir, load_verified
from server.signing import load_public_key

log = logging.getLogger(__name__)
BULK_ROWS = 512  # from this many rows on, torch's kernels beat numpy's per-call savings


@dataclass(frozen=True, eq=False)
class ServingModel:
    """One verified model version; immutable, so a request keeps the one it started with."""

    version: str
    manifest: dict[str, Any]
    model: DemandModel
    loaded_at: float
    directory: str  # the registry directory it came from (what LATEST names)
    forward: Forward  # fastest for the few rows of storefront requests
    engine: str  # "numpy" or "torch"
    bulk: Forward  # torch: fastest for large batches

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mu, s) as float64 arrays for rows of features."""
        return self.forward(x) if len(x) < BULK_ROWS else self.bulk(x)


@dataclass(frozen=True)
class ReloadResult:
    """What a reload attempt did."""

    status: Literal["loaded", "unchanged", "refused"]
    version: str | None  # the version now served
    candidate: str | None  # the version that was tried
    detail: str


def _safe_version_dir(registry: Path, name: str) -> Path:
    if not name or name in (".", "..") or Path(name).name != name or name.startswith("."):
        raise ModelNotReadyError(f"{registry / LATEST} names {name!r}, which is not a version directory")
    return registry / name


class ModelHolder:
    """Holds the current ServingModel; `reload` verifies the registry's LATEST and swaps it in or keeps the old one."""

    def __init__(self, registry: Path, public_key: Path) -> None:
        self.registry = registry
        self.public_key = public_key
        self.current: ServingModel | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._refused: set[str] = set()

    def _load(self, version_dir: Path) -> ServingModel:
        model, manifest = load_verified(version_dir, load_public_key(self.public_key))
        forward, engine = compile_forward(model, N_FEATURES)
        return ServingModel(str(manifest.get("version", version_dir.name)), manifest, model, time.time(), version_dir.name,
                            forward, engine, torch_forward(model))

    def _latest_name(self) -> str:
        latest_version_dir(self.registry)  # raises ModelNotReadyError naming the registry when nothing is published
        return (self.registry / LATEST).read_text().strip()

    def reload(self, *, force_log: bool = True) -> ReloadResult:
        """Load LATEST if it differs from the served version and verifies; never drops the served model."""
        with self._lock:
            served = self.current.version if self.current else None
            try:
                name = self._latest_name()
            except (FedpriceError, OSError) as exc:
                return self._refuse(None, str(exc), served, force_log)
            if self.current is not None and name == self.current.directory:
                return ReloadResult("unchanged", served, name, f"already serving {name}")
            if name in self._refused and not force_log:
                return ReloadResult("refused", served, name, f"model {name} was refused before")
            try:
                loaded = self._load(_safe_version_dir(self.registry, name))
            except (FedpriceError, OSError, ValueError) as exc:
                return self._refuse(name, str(exc), served, force_log)
            self.current = loaded  # one reference assignment: requests see the old or the new model, whole
            self.last_error = None
            self._refused.discard(name)
            log.info("serving model %s (was %s; %s forward)", loaded.version, served or "none", loaded.engine)
            return ReloadResult("loaded", loaded.version, name, f"now serving {loaded.version}")

    def _refuse(self, name: str | None, reason: str, served: str | None, force_log: bool) -> ReloadResult:
        first = name not in self._refused if name is not None else reason != self.last_error
        if name is not None:
            self._refused.add(name)
        self.last_error = reason
        keeping = f"still serving {served}" if served else "no model is served"
        if first or force_log:
            log.error("refused model %s: %s; %s", name or "(none)", reason, keeping)
        return ReloadResult("refused", served, name, f"refused model {name or '(none)'}: {reason}; {keeping}")

    def load_at_startup(self) -> ReloadResult:
        """Load LATEST, or if it is refused the newest older version that verifies (logged)."""
        first = self.reload()
        if first.status == "loaded" or not self.registry.is_dir():
            return first
        for version_dir in sorted((p for p in self.registry.iterdir() if p.is_dir() and (p / MANIFEST).exists()),
                                  key=lambda p: p.name, reverse=True):
            if version_dir.name == first.candidate:
                continue
            try:
                loaded = self._load(version_dir)
            except (FedpriceError, OSError, ValueError) as exc:
                log.warning("older model %s refused too: %s", version_dir.name, exc)
                continue
            with self._lock:
                self.current = loaded
            log.warning("LATEST was refused; serving the newest older model that verifies: %s", loaded.version)
            return ReloadResult("loaded", loaded.version, version_dir.name, f"fell back to {loaded.version}: {first.detail}")
        return first
