"""The optimiser finds the profit-maximising price: closed form, brute force, extremes, validation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, lambertw

from demand.guardrails import Guardrails, price_bounds
from demand.optimiser import (
    expected_margin,
    optimal_prices,
    purchase_probability,
    unconstrained_optimal_ratio,
)

OMEGA = 0.5671432904097838  # W(1), the omega constant


def profit(price: np.ndarray, *, mu: float, scale: float, list_price: float, unit_cost: float) -> np.ndarray:
    return (price - unit_cost) * expit((mu - price / list_price) / scale)


def brute_force(lower: float, upper: float, **kw: float) -> float:
    """Best price on a 20001-point grid over [lower, upper], refined around the best grid point."""
    grid = np.linspace(lower, upper, 20001)
    i = int(np.argmax(profit(grid, **kw)))
    fine = np.linspace(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)], 2001)
    return float(fine[np.argmax(profit(fine, **kw))])


def assert_matches_brute_force(price: float, lower: float, upper: float, **kw: float) -> None:
    best = brute_force(lower, upper, **kw)
    p_opt = float(profit(np.array(price), **kw))
    p_best = float(profit(np.array(best), **kw))
    assert abs(price - best) <= 0.01 or p_opt >= p_best - 1e-9 * abs(p_best), (price, best, p_opt, p_best)


demand_params = {
    "mu": st.floats(-3, 4),
    "scale": st.floats(0.02, 2),
    "list_price": st.floats(0.5, 500),
    "cost_ratio": st.floats(0, 1.1),
}


@settings(max_examples=300, deadline=None)
@given(**demand_params)
def test_optimal_price_within_default_guardrails_matches_brute_force(
    mu: float, scale: float, list_price: float, cost_ratio: float
) -> None:
    unit_cost = cost_ratio * list_price
    lower, upper = price_bounds(Guardrails(), list_price=list_price, unit_cost=unit_cost)
    price = float(
        optimal_prices(
            mu=mu, scale=scale, list_price=list_price, unit_cost=unit_cost, lower=lower, upper=upper
        )
    )
    assert float(lower) <= price <= float(upper)
    kw = {"mu": mu, "scale": scale, "list_price": list_price, "unit_cost": unit_cost}
    assert_matches_brute_force(price, float(lower), float(upper), **kw)


@settings(max_examples=200, deadline=None)
@given(**demand_params)
def test_unconstrained_optimum_matches_brute_force_on_a_wide_interval(
    mu: float, scale: float, list_price: float, cost_ratio: float
) -> None:
    unit_cost = cost_ratio * list_price
    ratio = float(unconstrained_optimal_ratio(mu=mu, scale=scale, cost_ratio=cost_ratio))
    # u* <= max(mu, k + 2s), so this interval holds it with room on both sides.
    upper = list_price * (max(mu, cost_ratio) + 3 * scale + 1)
    price = float(
        optimal_prices(
            mu=mu, scale=scale, list_price=list_price, unit_cost=unit_cost, lower=0.0, upper=np.inf
        )
    )
    assert price == pytest.approx(ratio * list_price, rel=1e-12)
    kw = {"mu": mu, "scale": scale, "list_price": list_price, "unit_cost": unit_cost}
    assert_matches_brute_force(price, 0.0, upper, **kw)


def test_first_order_condition_holds_at_known_point() -> None:
    mu, s, k = 1.0, 0.2, 0.5
    u = float(unconstrained_optimal_ratio(mu=mu, scale=s, cost_ratio=k))
    prob = float(expit((mu - u) / s))
    assert u - k == pytest.approx(s / (1 - prob), abs=1e-10)
    assert u == pytest.approx(k + s * (1 + lambertw(np.exp((mu - k) / s - 1)).real), abs=1e-12)


@pytest.mark.parametrize(
    ("mu", "scale", "cost_ratio", "expected"),
    [
        (0.9, 0.2, 0.5, 0.9),  # a = 1: W(e) = 1, so u* = k + 2s = mu and P(buy) = 1/2
        (0.7, 0.2, 0.5, 0.5 + 0.2 * (1 + OMEGA)),  # a = 0: W(1) = omega
        (-40.0, 0.1, 0.3, 0.4),  # a -> -inf: W -> 0, u* -> k + s
    ],
)
def test_pinned_closed_form_values(mu: float, scale: float, cost_ratio: float, expected: float) -> None:
    assert float(unconstrained_optimal_ratio(mu=mu, scale=scale, cost_ratio=cost_ratio)) == pytest.approx(
        expected, abs=1e-14
    )


def test_matches_lambertw_over_moderate_arguments() -> None:
    a = np.linspace(-30, 30, 2001)
    k, s = 0.4, 0.3
    mu = k + s * (a + 1)
    expected = k + s * (1 + lambertw(np.exp(a)).real)
    got = unconstrained_optimal_ratio(mu=mu, scale=s, cost_ratio=k)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)


def test_extreme_arguments_are_finite_without_warnings() -> None:
    mu = np.array([50.0, 50.0, -50.0, 50.0, 1.0, 1e6, 1.0])
    scale = np.array([0.01, 1e-3, 0.01, 100.0, 1e-300, 1e-6, 1e-320])
    k = np.array([0.5, 0.0, 1.1, 0.2, 0.5, 0.0, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        u = unconstrained_optimal_ratio(mu=mu, scale=scale, cost_ratio=k)
        prob = purchase_probability(mu=mu, scale=scale, price=u, list_price=1.0)
        prices = optimal_prices(mu=mu, scale=scale, list_price=10.0, unit_cost=10 * k, lower=0.0, upper=1e9)
    assert np.isfinite(u).all() and np.isfinite(prices).all()
    assert (u > k).all()
    # Far above cost the optimum sits just below mu; far below cost it sits at k + s.
    a = (50 - 0.5) / 0.01 - 1
    w = a
    for _ in range(20):  # w = a - log(w) is a contraction for large a
        w = a - np.log(w)
    assert u[0] == pytest.approx(50 - 0.01 * np.log(w), rel=1e-14)
    assert u[0] == pytest.approx(0.5 + 0.01 * (1 + w), rel=1e-12)
    assert u[2] == pytest.approx(1.11, rel=1e-12)
    assert u[4] == pytest.approx(1.0, rel=1e-12) and u[6] == pytest.approx(1.0, rel=1e-12)
    # The first-order condition u - k = s (1 + w) with 1 - P = 1/(1 + w), written without cancellation.
    one_minus_p = expit(-(mu - u) / scale)
    np.testing.assert_allclose((u - k)[:4] * one_minus_p[:4], scale[:4], rtol=1e-9)
    assert ((prob >= 0) & (prob <= 1)).all()


def test_broadcasts_any_compatible_shapes() -> None:
    mu = np.linspace(0.5, 2, 3).reshape(3, 1)
    scale = np.array([0.1, 0.2, 0.3, 0.4])
    u = unconstrained_optimal_ratio(mu=mu, scale=scale, cost_ratio=0.3)
    assert u.shape == (3, 4)
    assert u[1, 2] == unconstrained_optimal_ratio(mu=mu[1, 0], scale=scale[2], cost_ratio=0.3)
    assert unconstrained_optimal_ratio(mu=1.0, scale=0.2, cost_ratio=0.5).shape == ()
    prices = optimal_prices(mu=mu, scale=scale, list_price=10.0, unit_cost=3.0, lower=8.0, upper=12.0)
    assert prices.shape == (3, 4) and ((prices >= 8) & (prices <= 12)).all()


def test_clipping_picks_the_nearer_bound_of_the_profit_peak() -> None:
    # Unconstrained optimum is 9.0 (mu = k + 2s); a band above it binds at lower, one below at upper.
    kw = {"mu": 0.9, "scale": 0.2, "list_price": 10.0, "unit_cost": 5.0}
    assert float(optimal_prices(**kw, lower=9.5, upper=12.0)) == 9.5
    assert float(optimal_prices(**kw, lower=6.0, upper=8.5)) == 8.5
    assert float(optimal_prices(**kw, lower=6.0, upper=12.0)) == pytest.approx(9.0, rel=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"mu": 1.0, "scale": 0.0, "cost_ratio": 0.5}, "scale"),
        ({"mu": 1.0, "scale": -0.1, "cost_ratio": 0.5}, "scale"),
        ({"mu": np.nan, "scale": 0.2, "cost_ratio": 0.5}, "mu"),
        ({"mu": 1.0, "scale": 0.2, "cost_ratio": np.inf}, "cost_ratio"),
        ({"mu": 1.0, "scale": [0.2, np.nan], "cost_ratio": 0.5}, "scale"),
    ],
)
def test_invalid_inputs_raise_naming_the_argument(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        unconstrained_optimal_ratio(**kwargs)  # type: ignore[arg-type]


def test_optimal_prices_validation() -> None:
    kw = {"mu": 1.0, "scale": 0.2, "unit_cost": 5.0}
    with pytest.raises(ValueError, match="list_price"):
        optimal_prices(**kw, list_price=0.0, lower=8.0, upper=12.0)
    with pytest.raises(ValueError, match="lower exceeds upper for 1 elements"):
        optimal_prices(**kw, list_price=10.0, lower=[8.0, 13.0], upper=12.0)
    with pytest.raises(ValueError, match="upper"):
        optimal_prices(**kw, list_price=10.0, lower=8.0, upper=np.nan)
    with pytest.raises(ValueError, match="do not broadcast"):
        optimal_prices(**kw, list_price=[10.0, 11.0], lower=[8.0, 8.0, 8.0], upper=12.0)
    with pytest.raises(ValueError, match="mu must be finite.*scale must be > 0"):
        optimal_prices(mu=np.inf, scale=0.0, list_price=10.0, unit_cost=5.0, lower=8.0, upper=12.0)


def test_purchase_probability_and_expected_margin() -> None:
    price = np.array([5.0, 10.0, 15.0])
    prob = purchase_probability(mu=1.0, scale=0.25, price=price, list_price=10.0)
    np.testing.assert_allclose(prob, 1 / (1 + np.exp(-(1.0 - price / 10.0) / 0.25)), rtol=1e-15)
    assert prob[1] == 0.5
    margin = expected_margin(mu=1.0, scale=0.25, price=price, list_price=10.0, unit_cost=4.0)
    np.testing.assert_allclose(margin, (price - 4.0) * prob, rtol=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extreme = purchase_probability(mu=[1e3, -1e3], scale=1e-300, price=1.0, list_price=1.0)
    assert extreme.tolist() == [1.0, 0.0]
