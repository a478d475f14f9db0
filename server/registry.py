"""The model registry: safetensors weights + manifest + Ed25519 signature, published atomically.

Layout: `<registry>/<version>/{model.safetensors, manifest.json, manifest.sig}` and `<registry>/LATEST`
naming the newest version. A version directory appears whole (staged, then renamed) or not at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from demand.model import DemandModel
from demand.schema import SCHEMA_VERSION, schema_hash
from fedprice.errors import BadSignatureError, ModelNotReadyError
from privacy.keys import atomic_write
from server.signing import verify

log = logging.getLogger(__name__)
WEIGHTS, MANIFEST, SIGNATURE, LATEST = "model.safetensors", "manifest.json", "manifest.sig", "LATEST"


def publish(registry: Path, state_dict: dict[str, torch.Tensor], manifest: dict[str, Any],
            signing_key: Ed25519PrivateKey) -> Path:
    """Write a new signed model version and point LATEST at it; returns the version directory."""
    weights = st_save({k: v.contiguous() for k, v in state_dict.items()})
    digest = hashlib.sha256(weights).hexdigest()
    now = datetime.now(UTC)
    version = f"{now:%Y%m%dT%H%M%S}-{digest[:8]}"
    full = {
        **manifest,
        "version": version,
        "created_at": now.isoformat(timespec="seconds"),
        "weights_file": WEIGHTS,
        "weights_sha256": digest,
        "feature_schema_version": SCHEMA_VERSION,
        "feature_schema_hash": schema_hash(),
    }
    body = json.dumps(full, indent=1, sort_keys=True).encode()
    staging = registry / f".staging-{version}-{os.getpid()}"
    staging.mkdir(parents=True, exist_ok=False)
    try:
        (staging / WEIGHTS).write_bytes(weights)
        (staging / MANIFEST).write_bytes(body)
        (staging / SIGNATURE).write_bytes(signing_key.sign(body))
        final = registry / version
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    atomic_write(registry / LATEST, version.encode(), mode=0o644)
    log.info("published model %s to %s", version, final)
    return final


def latest_version_dir(registry: Path) -> Path:
    """The directory LATEST names."""
    pointer = registry / LATEST
    if not pointer.exists():
        raise ModelNotReadyError(f"no published model in {registry} (run `make demo` or `fedprice sim simulate`)")
    return registry / pointer.read_text().strip()


def load_verified(version_dir: Path, public_key: Ed25519PublicKey) -> tuple[DemandModel, dict[str, Any]]:
    """Load a model only if its signature, weights sha256 and feature schema all verify."""
    try:
        body = (version_dir / MANIFEST).read_bytes()
        signature = (version_dir / SIGNATURE).read_bytes()
        weights = (version_dir / WEIGHTS).read_bytes()
    except FileNotFoundError as exc:
        raise BadSignatureError(f"model {version_dir.name}: missing file {Path(exc.filename).name}") from None
    verify(public_key, signature, body, what=f"model {version_dir.name} manifest")
    manifest = json.loads(body)
    digest = hashlib.sha256(weights).hexdigest()
    if digest != manifest.get("weights_sha256"):
        raise BadSignatureError(f"model {version_dir.name}: weights sha256 {digest[:12]}… does not match the manifest")
    if manifest.get("feature_schema_hash") != schema_hash():
        raise BadSignatureError(f"model {version_dir.name}: feature schema {manifest.get('feature_schema_hash', '?')[:12]}… "
                                f"is not this server's {schema_hash()[:12]}…")
    model = DemandModel(hidden=int(manifest.get("hidden", 64)))
    try:
        model.load_state_dict(st_load(weights))
    except Exception as exc:  # a signed but structurally wrong file is still refused
        raise BadSignatureError(f"model {version_dir.name}: weights do not fit the model ({exc})") from None
    model.eval()
    return model, manifest
