"""Hot reload: only signed, intact, schema-matching models are swapped in; anything else is refused and logged."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from api_world import Api, World, basket

from privacy.keys import atomic_write
from server.registry import MANIFEST, SIGNATURE, WEIGHTS
from server.signing import load_or_create_signing_key


def latest(registry: Path) -> str:
    return (registry / "LATEST").read_text().strip()


def point_latest_at(registry: Path, name: str) -> None:
    atomic_write(registry / "LATEST", name.encode(), mode=0o644)


def tamper_manifest(d: Path) -> None:
    doc = json.loads((d / MANIFEST).read_text())
    doc["rounds"] = 99
    (d / MANIFEST).write_text(json.dumps(doc, indent=1, sort_keys=True))


def truncate_weights(d: Path) -> None:
    data = (d / WEIGHTS).read_bytes()
    (d / WEIGHTS).write_bytes(data[: len(data) // 2])


def half_written(d: Path) -> None:
    (d / SIGNATURE).unlink()


def other_schema(d: Path) -> None:
    doc = json.loads((d / MANIFEST).read_text())
    doc["feature_schema_hash"] = "0" * 64
    body = json.dumps(doc, indent=1, sort_keys=True).encode()
    (d / MANIFEST).write_bytes(body)
    (d / SIGNATURE).write_bytes(load_or_create_signing_key(d.parent.parent / "signing-key-unused").sign(body))


def other_schema_signed(world: World) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        doc = json.loads((d / MANIFEST).read_text())
        doc["feature_schema_hash"] = "0" * 64
        body = json.dumps(doc, indent=1, sort_keys=True).encode()
        (d / MANIFEST).write_bytes(body)
        (d / SIGNATURE).write_bytes(load_or_create_signing_key(world.signing_key).sign(body))

    return damage


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (tamper_manifest, "manifest: signature does not verify with the central team's key"),
        (truncate_weights, "weights sha256"),
        (half_written, "missing file manifest.sig"),
        (other_schema, "manifest: signature does not verify"),
        ("schema", "is not this server's"),
    ],
    ids=["tampered", "truncated", "half-written", "foreign-signature", "wrong-schema"],
)
def test_invalid_models_are_refused_and_the_old_one_keeps_serving(
    api_for, world: World, registry_copy: Path, caplog: pytest.LogCaptureFixture, damage: object, reason: str  # type: ignore[no-untyped-def]
) -> None:
    api: Api = api_for(registry_dir=registry_copy)
    served = latest(registry_copy)
    new_dir = world.publish_model(registry_copy, seed=3)
    (other_schema_signed(world) if damage == "schema" else damage)(new_dir)  # type: ignore[operator]
    caplog.set_level("ERROR", logger="pricing_api")
    resp = api.client.post("/v1/admin/reload", headers=api.headers("admin"))
    assert resp.status_code == 409
    assert reason in resp.json()["detail"] and resp.json()["detail"].endswith(f"still serving {served}")
    assert any(reason in r.getMessage() and new_dir.name in r.getMessage() for r in caplog.records)
    quote = api.quote({"shop_id": "S1", "customer_id": "c", "items": basket(world, n=1)})
    assert quote.status_code == 200 and quote.json()["model_version"] == served
    assert 'fedprice_api_model_reloads_total{result="refused"} 1.0' in api.client.get("/metrics").text


def test_a_valid_new_model_is_swapped_in(api_for, world: World, registry_copy: Path) -> None:  # type: ignore[no-untyped-def]
    api: Api = api_for(registry_dir=registry_copy)
    old = latest(registry_copy)
    unchanged = api.client.post("/v1/admin/reload", headers=api.headers("admin")).json()
    assert unchanged == {"status": "unchanged", "model_version": old, "detail": f"already serving {old}"}
    new_dir = world.publish_model(registry_copy, seed=5)
    body = api.client.post("/v1/admin/reload", headers=api.headers("admin")).json()
    assert body == {"status": "loaded", "model_version": new_dir.name, "detail": f"now serving {new_dir.name}"}
    quote = api.quote({"shop_id": "S1", "customer_id": "c", "items": basket(world, n=1)}).json()
    assert quote["model_version"] == new_dir.name
    assert api.client.get("/v1/model", headers=api.headers()).json()["model_version"] == new_dir.name


def test_the_watcher_picks_up_new_models(api_for, world: World, registry_copy: Path) -> None:  # type: ignore[no-untyped-def]
    import time

    api: Api = api_for(registry_dir=registry_copy, model_watch_seconds=0.1)
    new_dir = world.publish_model(registry_copy, seed=7)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if api.client.get("/readyz").json()["model_version"] == new_dir.name:
            break
        time.sleep(0.05)
    assert api.client.get("/readyz").json()["model_version"] == new_dir.name


def test_startup_falls_back_to_the_newest_model_that_verifies(api_for, world: World, registry_copy: Path,  # type: ignore[no-untyped-def]
                                                             caplog: pytest.LogCaptureFixture) -> None:
    good = latest(registry_copy)
    bad = world.publish_model(registry_copy, seed=9)
    truncate_weights(bad)
    caplog.set_level("WARNING", logger="pricing_api")
    api: Api = api_for(registry_dir=registry_copy)
    assert api.client.get("/readyz").json()["model_version"] == good
    assert "LATEST was refused; serving the newest older model that verifies" in caplog.text
    shutil.rmtree(registry_copy / good)
    point_latest_at(registry_copy, good)
    assert api.client.post("/v1/admin/reload", headers=api.headers("admin")).status_code == 200  # unchanged: still served
