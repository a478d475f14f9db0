"""The registry publishes signed models atomically and refuses anything that does not verify."""

import json
from pathlib import Path

import pytest

from demand.model import DemandModel
from fedprice.errors import BadSignatureError, ModelNotReadyError
from server.registry import latest_version_dir, load_verified, publish
from server.signing import load_or_create_signing_key, load_public_key, public_key_path


def _publish(tmp_path: Path) -> tuple[Path, Path]:
    key_path = tmp_path / "central" / "signing.key"
    key = load_or_create_signing_key(key_path)
    version = publish(tmp_path / "registry", DemandModel().state_dict(), {"rounds_completed": 2}, key)
    return version, public_key_path(key_path)


def test_publish_then_load_round_trips(tmp_path: Path) -> None:
    version, pub = _publish(tmp_path)
    assert latest_version_dir(tmp_path / "registry") == version
    model, manifest = load_verified(version, load_public_key(pub))
    assert manifest["rounds_completed"] == 2 and len(manifest["weights_sha256"]) == 64
    assert (tmp_path / "central" / "signing.key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("damage", ["weights", "manifest", "truncate", "missing"])
def test_tampered_models_are_refused_with_a_reason(tmp_path: Path, damage: str) -> None:
    version, pub = _publish(tmp_path)
    weights, manifest = version / "model.safetensors", version / "manifest.json"
    if damage == "weights":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1
        weights.write_bytes(bytes(data))
        expected = "weights sha256"
    elif damage == "manifest":
        doc = json.loads(manifest.read_text())
        doc["rounds_completed"] = 99
        manifest.write_text(json.dumps(doc, indent=1, sort_keys=True))
        expected = "signature does not verify"
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
        expected = "weights sha256"
    else:
        (version / "manifest.sig").unlink()
        expected = "missing file manifest.sig"
    with pytest.raises(BadSignatureError, match=expected):
        load_verified(version, load_public_key(pub))


def test_a_model_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    version, _ = _publish(tmp_path)
    load_or_create_signing_key(tmp_path / "other" / "signing.key")
    with pytest.raises(BadSignatureError, match="signature does not verify"):
        load_verified(version, load_public_key(tmp_path / "other" / "signing.pub"))


def test_empty_registry_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ModelNotReadyError, match="make demo"):
        latest_version_dir(tmp_path)
