"""The synthetic market: exact export format, determinism, calibration and the ground truth."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulation.synthetic import (
    AGE_GROUPS,
    MarketConfig,
    MarketTruth,
    buy_probability,
    generate_market,
    load_truth,
    price_elasticity,
    true_demand,
)

HEADER = (
    '"TRANSACTION_DT","CUSTOMER_ID","AGE_GROUP","PIN_CODE","PRODUCT_SUBCLASS","PRODUCT_ID","AMOUNT","ASSET",'
    '"SALES_PRICE"'
)
QUOTED_LINE = re.compile(r'^"[^"]*"(,"[^"]*"){8}$')


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[MarketTruth, Path]:
    """The small test market, generated once."""
    out = tmp_path_factory.mktemp("small")
    return generate_market(MarketConfig.small(), out), out


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> tuple[MarketTruth, Path]:
    """The default market, generated once (a couple of seconds)."""
    out = tmp_path_factory.mktemp("default")
    return generate_market(MarketConfig(), out), out


def read_export(out: Path, shop_id: str) -> pd.DataFrame:
    """Read one shop's export as strings, as the pipeline does."""
    path = out / shop_id / "raw" / "export.csv"
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def test_export_bytes_have_bom_exact_header_quoting_and_crlf(small: tuple[MarketTruth, Path]) -> None:
    truth, out = small
    for shop in truth.config.shops:
        raw = (out / shop.shop_id / "raw" / "export.csv").read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")
        text = raw[3:].decode("utf-8")
        assert text.endswith("\r\n") and text.count("\r\n") == text.count("\n")
        lines = text.split("\r\n")[:-1]
        assert lines[0] == HEADER
        assert all(QUOTED_LINE.match(line) for line in lines)


def test_export_fields_have_the_ta_feng_shapes(small: tuple[MarketTruth, Path]) -> None:
    truth, out = small
    for shop in truth.config.shops:
        df = read_export(out, shop.shop_id)
        assert df["TRANSACTION_DT"].str.fullmatch(r"(1[0-2]|[1-9])/(3[01]|[12][0-9]|[1-9])/(2000|2001)").all()
        dates = pd.to_datetime(df["TRANSACTION_DT"], format="%m/%d/%Y")
        assert dates.min() >= pd.Timestamp("2000-11-01") and dates.max() <= pd.Timestamp("2001-02-28")
        assert df["CUSTOMER_ID"].str.fullmatch(r"\d{8}").all()
        assert df["CUSTOMER_ID"].str.startswith("0").any()
        assert df["AGE_GROUP"].isin([*AGE_GROUPS, ""]).all()
        assert (df["PIN_CODE"] == shop.shop_id).all()
        assert df["PRODUCT_SUBCLASS"].str.fullmatch(r"\d{6}").all()
        assert df["PRODUCT_ID"].str.fullmatch(r"\d{13}").all()
        assert df["AMOUNT"].str.fullmatch(r"[1-9]\d*").all()
    assert "11/1/2000" in set(read_export(out, "S1")["TRANSACTION_DT"])


def test_lf_line_endings_on_request(tmp_path: Path) -> None:
    generate_market(replace(MarketConfig.small(), line_ending="\n"), tmp_path)
    raw = (tmp_path / "S1" / "raw" / "export.csv").read_bytes()
    assert b"\r" not in raw and raw.startswith(b"\xef\xbb\xbf" + HEADER.encode() + b"\n")


def test_asset_and_sales_price_are_amount_times_cost_and_day_price(small: tuple[MarketTruth, Path]) -> None:
    truth, out = small
    df = read_export(out, "S2")
    df["date"] = pd.to_datetime(df["TRANSACTION_DT"], format="%m/%d/%Y")
    prices = truth.prices[truth.prices["shop_id"] == "S2"]
    merged = df.merge(prices, left_on=["date", "PRODUCT_ID"], right_on=["date", "product_id"], validate="m:1")
    merged = merged.merge(truth.products[["product_id", "unit_cost"]], on="product_id")
    assert len(merged) == len(df)
    amount = merged["AMOUNT"].astype(int)
    assert (merged["ASSET"].astype(int) == amount * merged["unit_cost"]).all()
    assert (merged["SALES_PRICE"].astype(int) == amount * merged["price"]).all()
    assert amount.value_counts(normalize=True)[1] > 0.7 and amount.max() <= 3


def test_every_visit_buys_the_staple(small: tuple[MarketTruth, Path]) -> None:
    truth, out = small
    for shop in truth.config.shops:
        df = read_export(out, shop.shop_id)
        is_staple = df["PRODUCT_ID"] == truth.staple_product_id
        has_staple = is_staple.groupby([df["TRANSACTION_DT"], df["CUSTOMER_ID"]]).sum()
        assert (has_staple == 1).all()
        assert len(has_staple) == truth.stats["shops"][shop.shop_id]["visits"]
    assert truth.staple_product_id not in set(truth.catalogue["product_id"])


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_market(MarketConfig.small(seed=11), a)
    generate_market(MarketConfig.small(seed=11), b)
    generate_market(MarketConfig.small(seed=12), c)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name != "truth.json")
    assert len(files) == 3 + 3  # three exports, three parquet tables
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel

    def stats(root: Path) -> dict[str, object]:
        doc = json.loads((root / "truth" / "truth.json").read_text())
        doc["stats"].pop("generation_seconds")
        return dict(doc)

    assert stats(a) == stats(b)
    assert (a / "S1/raw/export.csv").read_bytes() != (c / "S1/raw/export.csv").read_bytes()
    assert not list(a.rglob("*.tmp"))


def test_load_truth_round_trips(small: tuple[MarketTruth, Path]) -> None:
    truth, out = small
    loaded = load_truth(out)
    assert loaded.config == truth.config
    pd.testing.assert_frame_equal(loaded.customers, truth.customers)
    pd.testing.assert_frame_equal(loaded.products, truth.products)
    pd.testing.assert_frame_equal(loaded.prices, truth.prices)
    ids = truth.customers["customer_id"].iloc[:50].tolist()
    prods = truth.catalogue["product_id"].iloc[np.arange(50) % len(truth.catalogue)].tolist()
    shop = truth.customers["shop_id"].iloc[0]
    np.testing.assert_allclose(
        loaded.true_demand(shop_id=shop, customer_ids=ids, product_ids=prods),
        true_demand(truth, shop_id=shop, customer_ids=ids, product_ids=prods),
    )


def test_true_demand_names_every_problem(small: tuple[MarketTruth, Path]) -> None:
    truth, _ = small
    other = truth.customers.loc[truth.customers["shop_id"] == "S2", "customer_id"].iloc[0]
    with pytest.raises(ValueError) as err:
        truth.true_demand(shop_id="S1", customer_ids=["99999999", other],
                          product_ids=[truth.staple_product_id, "nope"])
    text = str(err.value)
    assert "1 unknown customer id(s)" in text
    assert "1 customer(s) do not belong to shop S1" in text
    assert f"unknown or unpriced product id(s): {truth.staple_product_id}, nope" in text
    assert "99999999" not in text  # raw customer ids stay out of messages


def test_prices_randomised_around_list_with_promotions(small: tuple[MarketTruth, Path]) -> None:
    truth, _ = small
    p = truth.prices.merge(truth.products[["product_id", "list_price", "is_staple"]], on="product_id")
    rel = p["price"] / p["list_price"]
    slack = 0.5 / p["list_price"] + 1e-9
    normal = ~p["promo"]
    assert ((rel[normal] - 1).abs() <= truth.config.price_noise + slack[normal]).all()
    assert rel[normal].std() > 0.04
    off = 1 - rel[p["promo"]]
    assert p["promo"].mean() > 0.03 and not p.loc[p["is_staple"], "promo"].any()
    assert ((off >= 0.15 - slack[p["promo"]]) & (off <= 0.25 + slack[p["promo"]])).all()
    comp = p["competitor_price"] / p["list_price"]
    assert ((comp - 1).abs() <= truth.config.competitor_noise + slack).all()
    assert truth.catalogue["list_price"].between(10, 999).all()
    assert (truth.catalogue["unit_cost"] < truth.catalogue["list_price"]).all()
    assert len(p) == len(truth.config.shops) * 120 * len(truth.products)


def test_demand_falls_with_price_in_the_truth(small: tuple[MarketTruth, Path]) -> None:
    truth, out = small
    cust = truth.customers[truth.customers["shop_id"] == "S1"]
    ids = np.repeat(cust["customer_id"].to_numpy(), len(truth.catalogue)).tolist()
    prods = np.tile(truth.catalogue["product_id"].to_numpy(), len(cust)).tolist()
    mu, s = truth.true_demand(shop_id="S1", customer_ids=ids, product_ids=prods)
    assert (s > 0).all()
    grid = np.linspace(0.5, 1.5, 21)[:, None]
    p = buy_probability(mu[None, :], s[None, :], grid)
    assert (np.diff(p, axis=0) < 0).all()
    # The recorded sales show it too: more bought per visit on promotion days than off them.
    df = read_export(out, "S1")
    df["date"] = pd.to_datetime(df["TRANSACTION_DT"], format="%m/%d/%Y")
    visits = df.groupby("date")["CUSTOMER_ID"].nunique()
    prices = truth.prices[truth.prices["shop_id"] == "S1"]
    prices = prices[prices["product_id"].isin(truth.catalogue["product_id"])]
    buys = df.groupby(["date", "PRODUCT_ID"]).size().rename("buys")
    offers = prices.join(buys, on=["date", "product_id"]).fillna({"buys": 0})
    offers["visits"] = offers["date"].map(visits)
    # Per product (the pooled rate would mix popular and unpopular products' promotion days).
    by_promo = offers.groupby(["product_id", "promo"])[["buys", "visits"]].sum().unstack("promo").dropna()
    lift = (by_promo["buys"][True] / by_promo["visits"][True]) / (by_promo["buys"][False] / by_promo["visits"][False])
    assert float(np.median(lift)) > 1.2


def test_recorded_purchases_match_the_true_demand(small: tuple[MarketTruth, Path]) -> None:
    truth, out = small
    df = read_export(out, "S1")
    df["date"] = pd.to_datetime(df["TRANSACTION_DT"], format="%m/%d/%Y")
    visits = df[["date", "CUSTOMER_ID"]].drop_duplicates()
    cat = truth.catalogue
    offers = visits.merge(cat[["product_id", "list_price"]], how="cross")
    offers = offers.merge(truth.prices[truth.prices["shop_id"] == "S1"], on=["date", "product_id"])
    mu, s = truth.true_demand(shop_id="S1", customer_ids=offers["CUSTOMER_ID"].tolist(),
                              product_ids=offers["product_id"].tolist())
    p = buy_probability(mu, s, offers["price"] / offers["list_price"])
    bought = int(df["PRODUCT_ID"].isin(cat["product_id"]).sum())
    assert abs(bought - p.sum()) < 4 * np.sqrt((p * (1 - p)).sum())


@given(
    mu=st.floats(-2, 3), s=st.floats(0.05, 2), p=st.floats(0.1, 3), dp=st.floats(0.01, 1),
)
def test_buy_probability_falls_and_elasticity_is_negative(mu: float, s: float, p: float, dp: float) -> None:
    assert buy_probability(mu, s, p + dp) <= buy_probability(mu, s, p)
    assert price_elasticity(mu, s, p) <= 0


def test_taste_share_of_mu_variance_matches_config(small: tuple[MarketTruth, Path],
                                                   default: tuple[MarketTruth, Path]) -> None:
    for truth, _ in (small, default):
        cust, cat = truth.customers, truth.catalogue
        mus = []
        for shop_id, group in cust.groupby("shop_id"):
            ids = np.repeat(group["customer_id"].to_numpy(), len(cat)).tolist()
            prods = np.tile(cat["product_id"].to_numpy(), len(group)).tolist()
            mu, _ = truth.true_demand(shop_id=str(shop_id), customer_ids=ids, product_ids=prods)
            mus.append(mu.reshape(len(group), len(cat)))
        mu_all = np.vstack(mus)
        taste = np.concatenate([g["taste"].to_numpy() for _, g in cust.groupby("shop_id")])
        share = taste.var() / mu_all.var(axis=0).mean()
        assert abs(share - truth.config.taste_share) <= 0.05
        assert abs(truth.stats["taste_share"] - truth.config.taste_share) <= 0.05
        # No recorded field holds the taste: it is uncorrelated with the age group.
        age_means = cust.groupby("age_group")["taste"].mean()
        assert age_means.abs().max() < 1e-8


def test_taste_share_follows_config(tmp_path: Path) -> None:
    truth = generate_market(replace(MarketConfig.small(), taste_share=0.6), tmp_path)
    assert truth.stats["taste_share"] == pytest.approx(0.6, abs=0.05)


def test_default_market_is_calibrated(default: tuple[MarketTruth, Path]) -> None:
    truth, _ = default
    assert -3.2 <= truth.stats["mean_elasticity_at_list"] <= -2.0
    rates = truth.stats["base_rate_at_list"]
    assert 0.01 <= rates["min"] <= 0.06 and 0.15 <= rates["max"] <= 0.30
    # Recompute on a visit-weighted sample of customers from the truth alone.
    rng = np.random.default_rng(0)
    cust = truth.customers[truth.customers["n_visits"] > 0]
    pick = cust.sample(1500, replace=True, weights="n_visits", random_state=rng)
    cat = truth.catalogue
    elasticities = []
    for shop_id, group in pick.groupby("shop_id"):
        ids = np.repeat(group["customer_id"].to_numpy(), len(cat)).tolist()
        prods = np.tile(cat["product_id"].to_numpy(), len(group)).tolist()
        mu, s = truth.true_demand(shop_id=str(shop_id), customer_ids=ids, product_ids=prods)
        elasticities.append(price_elasticity(mu, s, 1.0))
    assert -3.2 <= float(np.concatenate(elasticities).mean()) <= -2.0


def test_default_shop_sizes(default: tuple[MarketTruth, Path]) -> None:
    truth, out = default
    sizes = {s.shop_id: s.n_customers for s in truth.config.shops}
    assert sizes == {"S1": 4000, "S2": 2600, "S3": 1800, "S4": 1200, "S5": 700}
    assert truth.customers.groupby("shop_id").size().to_dict() == sizes
    assert sum(n < 1000 for n in sizes.values()) == 1
    assert all(1000 <= n <= 5000 for n in sizes.values() if n >= 1000)
    assert truth.customers["customer_id"].is_unique
    for shop_id, n in sizes.items():
        seen = read_export(out, shop_id)["CUSTOMER_ID"].nunique()
        assert 0.9 * n <= seen <= n
    missing = (truth.customers["age_group_recorded"] == "").mean()
    assert 0.02 <= missing <= 0.04


def test_shops_are_not_iid(default: tuple[MarketTruth, Path]) -> None:
    truth, _ = default
    cust = truth.customers
    old = cust["age_group"].isin(AGE_GROUPS[6:]).groupby(cust["shop_id"]).mean()
    taste = cust.groupby("shop_id")["taste"].mean()
    segments = pd.crosstab(cust["shop_id"], cust["segment"], normalize="index")
    assert old.max() - old.min() > 0.05
    assert taste.max() - taste.min() > 0.05
    assert (segments.max() - segments.min()).max() > 0.1


def test_config_validation_collects_every_problem() -> None:
    with pytest.raises(ValueError) as err:
        MarketConfig(taste_share=1.0, n_days=0)
    assert "taste_share must be in [0, 1)" in str(err.value)
    assert "n_days must be positive" in str(err.value)


def test_price_sensitivity_follows_taste_age_visits_and_deal_seeking(default: tuple[MarketTruth, Path]) -> None:
    truth, _ = default
    cust = truth.customers
    log_f = np.log(cust["scale_factor"].to_numpy())
    # Real heterogeneity in price sensitivity, mostly explained by traits rather than the hidden factor.
    assert log_f.std() > 0.25
    assert np.log(cust["hidden_scale_factor"]).std() < 0.05
    # Deal-seekers are more price-sensitive (smaller scale); a stronger taste means less sensitivity.
    by_deal = cust.groupby("deal_seeker")["scale_factor"].mean()
    assert by_deal[True] < 0.85 * by_deal[False]
    # Frequent shoppers know prices better: visit rate and scale move against each other.
    assert np.corrcoef(np.log(cust["visit_rate"].to_numpy()), log_f)[0, 1] < -0.3
    regular = ~cust["deal_seeker"].to_numpy()
    assert np.corrcoef(cust["taste"].to_numpy()[regular], log_f[regular])[0, 1] > 0.5
    older = cust["age_group"].isin(AGE_GROUPS[6:]).to_numpy()
    young = cust["age_group"].isin(AGE_GROUPS[:2]).to_numpy()
    assert log_f[regular & older].mean() > log_f[regular & young].mean()
    shares = cust.groupby("shop_id")["deal_seeker"].mean()
    assert shares.max() - shares.min() > 0.1


def test_deal_seekers_show_in_the_export(default: tuple[MarketTruth, Path]) -> None:
    truth, out = default
    lines = read_export(out, "S1")
    lines = lines[lines["PRODUCT_ID"] != truth.staple_product_id]
    list_price = truth.catalogue.set_index("product_id")["list_price"]
    ratio = lines["SALES_PRICE"].astype(float) / lines["AMOUNT"].astype(float) / lines["PRODUCT_ID"].map(list_price)
    deal = lines["CUSTOMER_ID"].map(truth.customers.set_index("customer_id")["deal_seeker"]).astype(bool)
    promo_share = (ratio < 0.88).groupby(deal).mean()
    mean_ratio = ratio.groupby(deal).mean()
    # Deal-seekers buy more on promotion and pay lower prices relative to list, as in real retail.
    assert promo_share[True] > 1.04 * promo_share[False]
    assert mean_ratio[True] < mean_ratio[False] - 0.002


def test_regular_prices_hold_for_days(small: tuple[MarketTruth, Path]) -> None:
    truth, _ = small
    prices = truth.prices[(truth.prices["shop_id"] == "S1") & ~truth.prices["promo"]]
    changes = prices.sort_values("date").groupby("product_id")["price"].apply(lambda s: (s.diff().fillna(0) != 0).mean())
    assert float(changes.mean()) < 0.3


def test_list_price_is_each_products_best_uniform_price(default: tuple[MarketTruth, Path]) -> None:
    """Unit costs put each product's profit-maximising single price near its list price (inside the 0.8-1.2 band)."""
    truth, _ = default
    cust = truth.customers[truth.customers["n_visits"] > 0].sample(1500, random_state=0)
    cat = truth.catalogue
    grid = np.linspace(0.7, 1.3, 121)
    best = []
    for shop_id, group in cust.groupby("shop_id"):
        ids = np.repeat(group["customer_id"].to_numpy(), len(cat)).tolist()
        prods = np.tile(cat["product_id"].to_numpy(), len(group)).tolist()
        mu, s = truth.true_demand(shop_id=str(shop_id), customer_ids=ids, product_ids=prods)
        w = np.repeat(group["n_visits"].to_numpy(np.float64), len(cat))
        prob = buy_probability(mu[:, None], s[:, None], grid[None, :]) * w[:, None]
        best.append(prob.reshape(len(group), len(cat), len(grid)).sum(axis=0))
    demand = np.sum(best, axis=0)  # products x grid
    cost = (cat["unit_cost"] / cat["list_price"]).to_numpy()[:, None]
    optimum = grid[np.argmax((grid[None, :] - cost) * demand, axis=1)]
    assert np.all((optimum >= 0.9) & (optimum <= 1.1)), optimum
    assert np.all(cat["unit_cost"] < cat["list_price"])
