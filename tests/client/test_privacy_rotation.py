"""Data-key rotation: everything re-encrypted under the new key, nothing lost, old key gone, crash-safe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from privacy_shops import copy_exports, prepare_copies

import privacy.keys
from client.publish import customer_context
from client.rotate import rotate_shop_keys
from client.storage import ShopPaths, load_test, load_train
from client.train import DPConfig, train_round
from demand.model import DemandModel
from feature_store.store import connect
from privacy.accounting import delta_for
from privacy.crypto import DecryptionError, key_version_of

CFG = DPConfig(batch_size=32)


@pytest.fixture()
def shops(market_dir: Path, tmp_path: Path) -> tuple[dict[str, ShopPaths], Path]:
    """S1 (rotated) and S2 (a neighbour in the same feature store), prepared; S1 has trained one round."""
    copy_exports(market_dir, tmp_path / "shops", ["S1", "S2"])
    shops = prepare_copies(tmp_path / "shops", tmp_path / "fs.sqlite", ["S1", "S2"])
    paths = shops["S1"]
    ring = paths.keyring(create=False)
    examples = load_train(paths, ring)
    store = paths.ledger_store(ring)
    ledger = store.load(budget=8.0, delta=delta_for(len(examples)))
    train_round(DemandModel(), examples, ledger, run_id="before", server_round=1, rounds_total=3, config=CFG, seed=1)
    store.save(ledger)
    return shops, tmp_path / "fs.sqlite"


def _rows(store: Path, shop: str) -> dict[str, bytes]:
    conn = connect(store, readonly=True)
    try:
        return {p: bytes(b) for p, b in conn.execute("SELECT pseudonym, blob FROM customers WHERE shop_id = ?", (shop,))}
    finally:
        conn.close()


def _plain_rows(paths: ShopPaths, store: Path) -> dict[str, bytes]:
    ring = paths.keyring(create=False)
    return {p: ring.unseal(b, customer_context(p)) for p, b in _rows(store, paths.shop_id).items()}


def test_rotation_re_encrypts_everything_and_the_shop_trains_and_serves_on(shops: tuple[dict[str, ShopPaths], Path]) -> None:
    by_shop, store = shops
    paths = by_shop["S1"]
    ring = paths.keyring(create=False)
    before = {"train": load_train(paths, ring).to_bytes(), "test": load_test(paths, ring).to_bytes(),
              "rows": _plain_rows(paths, store), "eps": paths.ledger_store(ring).load().epsilon()}
    old_train_blob, s2_rows = paths.train.read_bytes(), _rows(store, "S2")
    old_wrapped = json.loads((paths.key_dir / "datakeys.json").read_text())["keys"]["1"]

    report = rotate_shop_keys(paths, feature_store=store)

    assert report.retired_versions == [1] and report.new_version == 2 and report.feature_rows_resealed == len(before["rows"])
    keys_doc = json.loads((paths.key_dir / "datakeys.json").read_text())
    assert list(keys_doc["keys"]) == ["2"] and keys_doc["active"] == 2 and old_wrapped not in json.dumps(keys_doc)
    ring = paths.keyring(create=False)  # as a restarted shop process would load it
    store_ = paths.ledger_store(ring)
    for f in (paths.train, paths.test, store_.path, store_.anchor_path):
        assert key_version_of(f.read_bytes()) == 2
    assert {key_version_of(b) for b in _rows(store, "S1").values()} == {2}
    assert load_train(paths, ring).to_bytes() == before["train"] and load_test(paths, ring).to_bytes() == before["test"]
    assert _plain_rows(paths, store) == before["rows"]  # read the feature store again: same features, new key
    assert _rows(store, "S2") == s2_rows  # the neighbour's rows are untouched
    with pytest.raises(DecryptionError, match="data key v1, which shop S1's keyring does not hold"):
        ring.unseal(old_train_blob, {"table": "train_examples", "schema": 1})

    ledger = store_.load()
    assert ledger.epsilon() == pytest.approx(before["eps"])
    res = train_round(DemandModel(), load_train(paths, ring), ledger, run_id="after", server_round=1, rounds_total=3,
                      config=CFG, seed=2)
    store_.save(ledger)
    assert res.epsilon > before["eps"] and paths.ledger_store().load().epsilon() == pytest.approx(res.epsilon)


def test_a_rotation_that_fails_midway_leaves_everything_readable_and_a_rerun_finishes_it(
        shops: tuple[dict[str, ShopPaths], Path], monkeypatch: pytest.MonkeyPatch) -> None:
    by_shop, store = shops
    paths = by_shop["S1"]
    before_rows, before_eps = _plain_rows(paths, store), paths.ledger_store().load().epsilon()

    def crash(*_: object, **__: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr("client.rotate.reseal_feature_rows", crash)  # examples and ledger done, rows not yet
    with pytest.raises(OSError, match="disk full"):
        rotate_shop_keys(paths, feature_store=store)
    ring = paths.keyring(create=False)
    assert sorted(ring.data_keys) == [1, 2]  # the old key is kept until everything moved
    assert key_version_of(paths.train.read_bytes()) == 2 and {key_version_of(b) for b in _rows(store, "S1").values()} == {1}
    assert len(load_train(paths, ring)) > 0 and _plain_rows(paths, store) == before_rows
    assert paths.ledger_store(ring).load().epsilon() == pytest.approx(before_eps)

    monkeypatch.undo()
    real_replace = privacy.keys.os.replace

    def fail_on_ledger(src: str, dst: str) -> None:
        if str(dst).endswith("ledger.enc"):
            raise OSError("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(privacy.keys.os, "replace", fail_on_ledger)  # a crash while the ledger is being written
    with pytest.raises(OSError, match="power cut"):
        rotate_shop_keys(paths, feature_store=store)
    monkeypatch.undo()
    ring = paths.keyring(create=False)
    assert sorted(ring.data_keys) == [1, 2, 3]
    assert paths.ledger_store(ring).load().epsilon() == pytest.approx(before_eps)  # the previous ledger, intact
    assert not list(paths.root.glob(".ledger.enc.*.tmp"))  # and no half-written file left behind

    report = rotate_shop_keys(paths, feature_store=store)
    assert report.retired_versions == [1, 2, 3] and report.new_version == 4
    ring = paths.keyring(create=False)
    assert sorted(ring.data_keys) == [4]
    assert _plain_rows(paths, store) == before_rows and len(load_test(paths, ring)) > 0
    assert paths.ledger_store(ring).load().epsilon() == pytest.approx(before_eps)
