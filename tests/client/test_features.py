"""Examples: one per customer, history strictly before the offer month, calibrated weights."""

import numpy as np
import pandas as pd

from client.features import FeatureConfig, build_dataset, snapshot
from client.ingest import ingest_export
from client.storage import load_test, load_train
from demand.schema import FEATURES, N_FEATURES


def test_prepared_shop_has_one_example_per_customer_and_a_time_held_out_month(prepared) -> None:  # type: ignore[no-untyped-def]
    paths, report = prepared["S1"]
    ring = paths.keyring(create=False)
    train, test = load_train(paths, ring), load_test(paths, ring)
    assert report.quarantined == 0
    assert train.x.shape == (report.train_customers, FeatureConfig().rows_per_customer, N_FEATURES)
    assert len(test) == report.test_offers > 0
    assert np.isfinite(train.x).all() and np.isfinite(test.x).all()
    assert (train.weight >= 0).all() and (train.weight.sum(axis=1) > 0).all()


def test_history_features_never_see_the_offer_month(market_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    res = ingest_export(market_dir / "S2" / "raw" / "export.csv", shop_id="S2", quarantine_path=tmp_path / "q.csv")
    tx = res.frame.rename(columns={"customer_id": "customer"})
    as_of = pd.Timestamp("2001-01-01")
    before = snapshot(tx, as_of)
    # adding purchases on or after as_of must not change the snapshot
    later = tx[tx["date"] >= as_of]
    assert len(later) > 0
    again = snapshot(pd.concat([tx[tx["date"] < as_of], later.assign(amount=later["amount"] * 5)]), as_of)
    pd.testing.assert_frame_equal(before.customers, again.customers)


def test_weights_undo_negative_subsampling(market_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    res = ingest_export(market_dir / "S1" / "raw" / "export.csv", shop_id="S1", quarantine_path=tmp_path / "q.csv")
    tx = res.frame.rename(columns={"customer_id": "customer"})
    ds = build_dataset(tx, FeatureConfig(negative_rate=0.25, rows_per_customer=400, seed=3))
    rows = ds.train.flat()
    weighted_rate = float((rows.weight * rows.bought).sum() / rows.weight.sum())
    full = build_dataset(tx, FeatureConfig(negative_rate=1.0, rows_per_customer=400, seed=3)).train.flat()
    true_rate = float(full.bought.mean())
    assert abs(weighted_rate - true_rate) < 0.15 * true_rate
    assert FEATURES[0] == "c_known"
