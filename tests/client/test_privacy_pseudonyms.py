"""The same shop key gives the same pseudonym at training time (shop preparation) and serving time (lookup)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from privacy_shops import copy_exports, prepare_copies

from client.publish import customer_context
from client.storage import ShopPaths
from feature_store.store import connect, customer_blob
from privacy.crypto import DecryptionError
from privacy.pseudonym import pseudonym

Shop = tuple[ShopPaths, Path, list[str]]


@pytest.fixture(scope="module")
def shop(market_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Shop:
    root = tmp_path_factory.mktemp("pseudonyms")
    ids = copy_exports(market_dir, root / "shops", ["S1", "S2"])
    shops = prepare_copies(root / "shops", root / "fs.sqlite", ["S1", "S2"])
    return shops["S1"], root / "fs.sqlite", ids["S1"]


def test_the_feature_store_is_keyed_by_exactly_the_pseudonyms_of_the_shops_raw_ids(shop: Shop) -> None:
    paths, store, ids = shop
    key = paths.keyring(create=False).pseudonym_key
    conn = connect(store, readonly=True)
    try:
        stored = {r[0] for r in conn.execute("SELECT pseudonym FROM customers WHERE shop_id = 'S1'")}
    finally:
        conn.close()
    assert stored == {pseudonym(key, cid) for cid in ids}
    assert all(p.startswith("v1:") and len(p) == 67 for p in stored)
    assert not stored & set(ids)


def test_serving_finds_a_customer_by_pseudonymising_the_raw_id_and_gets_their_own_features(shop: Shop) -> None:
    paths, store, ids = shop
    ring = paths.keyring(create=False)
    export = pd.read_csv(paths.raw_export, dtype=str, encoding="utf-8-sig")
    conn = connect(store, readonly=True)
    try:
        for cid in ids[:25]:
            p = pseudonym(ring.pseudonym_key, cid)
            doc = json.loads(ring.unseal(customer_blob(conn, "S1", p), customer_context(p)))  # type: ignore[arg-type]
            visits = export.loc[export["CUSTOMER_ID"] == cid, "TRANSACTION_DT"].nunique()
            assert doc["stats"]["n_visits"] == visits  # this customer's own history, found by raw id
        assert customer_blob(conn, "S1", pseudonym(ring.pseudonym_key, "never-seen")) is None
        assert customer_blob(conn, "S2", pseudonym(ring.pseudonym_key, ids[0])) is None  # S2 pseudonymises with its own key
        p0, p1 = (pseudonym(ring.pseudonym_key, c) for c in ids[:2])
        with pytest.raises(DecryptionError, match="belongs to another shop/table/row"):
            ring.unseal(customer_blob(conn, "S1", p0), customer_context(p1))  # type: ignore[arg-type]
    finally:
        conn.close()


def test_the_pricing_apis_feature_source_uses_the_same_pseudonyms(shop: Shop) -> None:
    customer_data = pytest.importorskip("pricing_api.customer_data")
    paths, store, ids = shop
    source = customer_data.FeatureSource(store, paths.root.parent)
    try:
        rows = source.customers(source.catalogue("S1"), [ids[0], "never-seen"])
    finally:
        source.close()
    key = paths.keyring(create=False).pseudonym_key
    assert [p for p, _ in rows] == [pseudonym(key, ids[0]), pseudonym(key, "never-seen")]
    assert rows[0][1].known and not rows[1][1].known
