"""Scoring prices under a known demand: uniform search, optimiser prices, outcomes, and the rebuilt test set."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from client.features import FeatureConfig
from demand.guardrails import price_bounds
from fedprice.errors import InvalidDataError
from simulation.scorecard import GUARDRAILS, PricingRows, captured_share, demand_prices, outcomes, uniform_prices
from simulation.scoring import build_scoring_set


def _rows(n: int = 300, seed: int = 0) -> PricingRows:
    rng = np.random.default_rng(seed)
    product = rng.integers(0, 4, n)
    list_price = np.array([20.0, 55.0, 120.0, 380.0])[product]
    return PricingRows(list_price=list_price, unit_cost=list_price * np.array([0.55, 0.7, 0.6, 0.8])[product],
                       true_mu=rng.normal(0.2, 0.25, n), true_s=rng.uniform(0.25, 0.45, n),
                       product_id=np.array([f"p{k}" for k in product]))


def _profit(rows: PricingRows, prices: np.ndarray, mask: np.ndarray) -> float:
    prob = expit((rows.true_mu[mask] - prices / rows.list_price[mask]) / rows.true_s[mask])
    return float(((prices - rows.unit_cost[mask]) * prob).sum())


def test_uniform_price_is_one_price_per_product_and_beats_every_other_cent_in_the_band() -> None:
    rows = _rows()
    uniform = uniform_prices(rows)
    for pid in np.unique(rows.product_id):
        mask = rows.product_id == pid
        assert len(np.unique(uniform.price[mask])) == 1
        lo, hi = price_bounds(GUARDRAILS, list_price=rows.list_price[mask][0], unit_cost=rows.unit_cost[mask][0])
        grid = np.arange(np.ceil(float(lo) * 100), np.floor(float(hi) * 100) + 1) / 100
        best = max(_profit(rows, np.full(mask.sum(), p), mask) for p in grid)
        assert _profit(rows, uniform.price[mask], mask) >= best - 1e-9


def test_oracle_prices_stay_in_the_guardrails_and_earn_at_least_uniform() -> None:
    rows = _rows(seed=1)
    oracle = demand_prices(rows, rows.true_mu, rows.true_s)
    lo, hi = price_bounds(GUARDRAILS, list_price=rows.list_price, unit_cost=rows.unit_cost)
    assert ((oracle.price >= lo - 1e-9) & (oracle.price <= hi + 1e-9)).all()
    o, u = outcomes(rows, oracle), outcomes(rows, uniform_prices(rows))
    assert o["profit"] >= u["profit"]
    assert captured_share(o["profit"], uniform=u["profit"], oracle=o["profit"]) == pytest.approx(1.0)


def test_outcomes_are_consistent_expectations() -> None:
    rows = _rows(seed=2)
    prices = uniform_prices(rows)
    res = outcomes(rows, prices)
    cost = float((rows.unit_cost * expit((rows.true_mu - prices.price / rows.list_price) / rows.true_s)).sum())
    assert res["profit"] == pytest.approx(res["revenue"] - cost)
    assert res["conversion"] == pytest.approx(res["expected_purchases"] / len(rows))
    # surplus of a logistic willingness to pay: r*s*log(1+e^z) >= max(0, WTP location - price)
    assert res["consumer_surplus"] >= float(np.maximum(rows.true_mu * rows.list_price - prices.price, 0).sum())


def test_scoring_set_refuses_a_held_out_month_it_cannot_rebuild(prepared, tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths, report = prepared["S2"]
    scoring = build_scoring_set(paths, priced_products=None, scratch=tmp_path)
    assert len(scoring.held_out) == report.test_offers and len(scoring.held_out_customer) == report.test_offers
    assert len(scoring) == len(np.unique(scoring.held_out_customer)) * report.catalogue_size
    with pytest.raises(InvalidDataError, match="does not match the stored held-out offers"):
        build_scoring_set(paths, priced_products=None, scratch=tmp_path, config=FeatureConfig(catalogue_size=5))
