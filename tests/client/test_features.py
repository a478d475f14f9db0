"""Examples: one per customer, history strictly before the offer month, calibrated weights."""

import numpy as np
import pandas as pd

from client.features import FeatureConfig, build_dataset, row_features, snapshot
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


def test_a_steady_shopper_has_the_same_features_after_one_month_of_history_as_after_three(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Training snapshots see one or two months of history, serving sees all of it: counts are per 30 days of the
    # shop's window, so a customer who shops at the same rate is the same customer to the model at both times.
    days = pd.date_range("2000-11-01", "2001-01-30", freq="D")
    rows = [{"customer": "c1", "date": d, "product_id": "p1", "subclass": "s1", "amount": 1, "unit_price": 10.0,
             "unit_cost": 6.0, "age_group": "35-39"} for d in days[::3]]
    rows += [{"customer": "c2", "date": d, "product_id": "p2", "subclass": "s1", "amount": 1, "unit_price": 20.0,
              "unit_cost": 12.0, "age_group": "<25"} for d in days]
    tx = pd.DataFrame(rows)
    one, three = snapshot(tx, pd.Timestamp("2000-12-01")), snapshot(tx, pd.Timestamp("2001-01-31"))
    assert three.customers.loc["c1", "n_visits"] > 3 * one.customers.loc["c1", "n_visits"]  # raw counts kept: 31 vs 10
    offers = pd.DataFrame({"customer": ["c1", "c1"], "product_id": ["p1", "p2"], "p_idx": [0, 1], "weekend": False})
    catalogue = pd.Index(["p1", "p2"])
    x_one, x_three = row_features(one, offers, catalogue), row_features(three, offers, catalogue)
    counted = [FEATURES.index(f) for f in ("c_log_visits", "c_log_lines", "c_log_spend", "cp_log_product", "cp_log_subclass")]
    np.testing.assert_allclose(x_three[:, counted], x_one[:, counted], atol=0.02)
    assert x_one[0, FEATURES.index("c_log_visits")] > 0.5  # about 10 visits a month, not zero
