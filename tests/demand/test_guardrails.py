"""Guardrails keep every price inside its interval, name the bound that bit, and round safely."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from demand.guardrails import (
    BOUND_LABELS,
    ROUNDING_LABELS,
    Guardrails,
    apply_guardrails,
    check_items,
    infeasible,
    price_bounds,
)
from demand.optimiser import BOUND_TOLERANCE, optimal_prices, purchase_probability


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"min_margin": -0.1}, "min_margin"),
        ({"min_margin": float("nan")}, "min_margin"),
        ({"band_low": 0.0}, "band_low"),
        ({"band_low": 1.1}, "band_low"),
        ({"band_high": 0.9}, "band_high"),
        ({"band_high": float("inf")}, "band_high"),
        ({"competitor_cap": 0.0}, "competitor_cap"),
        ({"price_ending": 1.0}, "price_ending"),
        ({"price_ending": -0.01}, "price_ending"),
        ({"price_ending": 0.995}, "price_ending"),
    ],
)
def test_invalid_guardrails_raise_naming_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Guardrails(**kwargs)


def test_guardrail_problems_are_reported_together() -> None:
    with pytest.raises(ValueError, match="band_low.*band_high.*price_ending"):
        Guardrails(band_low=2.0, band_high=0.5, price_ending=1.5)


def test_price_bounds() -> None:
    g = Guardrails(min_margin=0.1, competitor_cap=1.05)
    lower, upper = price_bounds(
        g,
        list_price=[10.0, 10.0, 10.0],
        unit_cost=[5.0, 9.0, 5.0],
        competitor_price=[np.nan, 20.0, 10.0],
    )
    np.testing.assert_allclose(lower, [8.0, 9.9, 8.0])
    np.testing.assert_allclose(upper, [12.0, 12.0, 10.5])
    # Without a cap configured a competitor price changes nothing.
    _, upper = price_bounds(Guardrails(), list_price=10.0, unit_cost=5.0, competitor_price=1.0)
    assert float(upper) == 12.0


def test_infeasible_tolerates_rounding_noise_only() -> None:
    assert infeasible([1.0, 1.0 + 1e-12, 1.0 + 1e-6], [1.0, 1.0, 1.0]).tolist() == [False, False, True]


def test_infeasible_prices_raise_with_count_and_first_index() -> None:
    # Cost floor 13.2 is above the band top 12 for elements 1 and 2.
    with pytest.raises(ValueError, match=r"for 2 of 3 elements .*first at index 1$"):
        apply_guardrails(
            Guardrails(min_margin=0.1),
            prices=[10.0, 10.0, 10.0],
            list_price=10.0,
            unit_cost=[5.0, 12.0, 12.0],
        )
    with pytest.raises(ValueError, match=r"for 1 of 4 elements .*first at index \(1, 0\)$"):
        apply_guardrails(
            Guardrails(competitor_cap=1.0),
            prices=np.full((2, 2), 10.0),
            list_price=10.0,
            unit_cost=5.0,
            competitor_price=[[np.nan, 9.0], [7.0, np.nan]],
        )


def test_invalid_inputs_are_reported_together() -> None:
    with pytest.raises(ValueError, match="list_price.*unit_cost.*competitor_price.*prices"):
        apply_guardrails(
            Guardrails(),
            prices=[np.nan],
            list_price=[0.0],
            unit_cost=[-1.0],
            competitor_price=[np.inf],
        )


def guard(g: Guardrails, price: float, **kw: float) -> tuple[float, str, str]:
    out = apply_guardrails(g, prices=price, **kw)
    return float(out.price), str(out.bound), str(out.rounding)


def test_bound_labels_name_the_guardrail_that_bit() -> None:
    g = Guardrails(min_margin=0.2, competitor_cap=1.0)
    kw = {"list_price": 10.0, "unit_cost": 5.0}
    assert guard(g, 13.0, **kw) == (12.0, "band_high", "cents")
    assert guard(g, 7.0, **kw) == (8.0, "band_low", "cents")
    assert guard(g, 7.0, list_price=10.0, unit_cost=7.5) == (9.0, "cost_floor", "cents")
    assert guard(g, 13.0, **kw, competitor_price=11.0) == (11.0, "competitor_cap", "cents")
    assert guard(g, 10.004, **kw, competitor_price=11.0) == (10.0, "none", "cents")
    assert set(BOUND_LABELS) == {"none", "cost_floor", "band_low", "band_high", "competitor_cap"}


def test_labels_after_the_optimiser_clipped_at_a_bound() -> None:
    g = Guardrails(competitor_cap=0.95)
    r, c, comp = np.array([10.0, 10.0, 10.0]), np.array([2.0, 2.0, 2.0]), np.array([np.nan, 11.0, np.nan])
    lower, upper = price_bounds(g, list_price=r, unit_cost=c, competitor_price=comp)
    # Optima far above the band, far above the competitor, and far below the band.
    prices = optimal_prices(
        mu=[5.0, 5.0, -2.0], scale=0.1, list_price=r, unit_cost=c, lower=lower, upper=upper
    )
    out = apply_guardrails(g, prices=prices, list_price=r, unit_cost=c, competitor_price=comp)
    assert out.bound.tolist() == ["band_high", "competitor_cap", "band_low"]
    np.testing.assert_allclose(out.price, [12.0, 10.45, 8.0])


def test_price_ending_rounds_to_the_nearest_inside_and_ties_go_down() -> None:
    kw = {"list_price": 10.0, "unit_cost": 1.0}
    assert guard(Guardrails(price_ending=0.99), 10.40, **kw) == (9.99, "none", "ending")
    assert guard(Guardrails(price_ending=0.99), 10.60, **kw) == (10.99, "none", "ending")
    assert guard(Guardrails(price_ending=0.0), 10.50, **kw) == (10.0, "none", "ending")
    # 8.99 is below the band bottom 9.0, so the one above is used.
    assert guard(Guardrails(band_low=0.9, price_ending=0.99), 9.1, **kw) == (9.99, "none", "ending")
    # 11.99 is above the competitor cap 11.5, so the one below is used.
    g = Guardrails(competitor_cap=1.0, price_ending=0.99)
    assert guard(g, 11.8, **kw, competitor_price=11.5) == (10.99, "competitor_cap", "ending")


def test_rounding_falls_back_to_cents_then_to_the_exact_price() -> None:
    g = Guardrails(band_low=0.9, competitor_cap=1.0, price_ending=0.99)
    # Interval [9.0, 9.5] holds no x.99 price: nearest whole cent inside instead.
    assert guard(g, 9.333, list_price=10.0, unit_cost=1.0, competitor_price=9.5) == (
        9.33,
        "none",
        "cents_fallback",
    )
    # Interval [10.001, 10.009] holds no whole cent: keep the clipped price.
    assert guard(g, 12.0, list_price=10.0, unit_cost=10.001, competitor_price=10.009) == (
        10.009,
        "competitor_cap",
        "unrounded",
    )
    # Cents round inward: a floor of 8.0001 gives 8.01, never 8.00.
    assert guard(Guardrails(), 7.0, list_price=10.0, unit_cost=8.0001) == (8.01, "cost_floor", "cents")


money = st.floats(0.5, 500)
configs = st.builds(
    Guardrails,
    min_margin=st.floats(0, 1),
    band_low=st.floats(0.3, 1),
    band_high=st.floats(1, 2),
    competitor_cap=st.none() | st.floats(0.5, 1.5),
    price_ending=st.none()
    | st.sampled_from([0.0, 0.49, 0.5, 0.95, 0.99])
    | st.integers(0, 99).map(lambda n: n / 100),
)
rows = st.tuples(
    money,  # list price
    st.floats(0, 1.5),  # cost ratio
    st.none() | st.floats(0.3, 2),  # competitor price ratio, None = not given
    st.floats(0, 3),  # raw price ratio
)


@settings(max_examples=400, deadline=None)
@given(g=configs, data=st.lists(rows, min_size=1, max_size=20))
def test_guarded_prices_always_respect_every_guardrail(
    g: Guardrails, data: list[tuple[float, float, float | None, float]]
) -> None:
    r = np.array([d[0] for d in data])
    c = r * np.array([d[1] for d in data])
    comp = r * np.array([np.nan if d[2] is None else d[2] for d in data])
    prices = r * np.array([d[3] for d in data])
    lower, upper = price_bounds(g, list_price=r, unit_cost=c, competitor_price=comp)
    bad = infeasible(lower, upper)
    if bad.any():
        with pytest.raises(ValueError, match=f"for {int(bad.sum())} of {bad.size} elements"):
            apply_guardrails(g, prices=prices, list_price=r, unit_cost=c, competitor_price=comp)
        return
    out = apply_guardrails(g, prices=prices, list_price=r, unit_cost=c, competitor_price=comp)
    p = out.price
    assert p.shape == r.shape and np.isfinite(p).all()
    assert ((out.lower <= p) & (p <= out.upper)).all()
    np.testing.assert_array_equal(out.lower, lower)
    assert (out.upper >= upper).all() and (out.upper <= upper + BOUND_TOLERANCE).all()
    # Floors hold exactly; ceilings hold up to the tolerance at which crossing bounds count as touching.
    assert (p >= c * (1 + g.min_margin)).all()
    assert (p >= g.band_low * r).all()
    assert (p <= g.band_high * r + BOUND_TOLERANCE).all()
    if g.competitor_cap is not None:
        given_comp = ~np.isnan(comp)
        assert (p[given_comp] <= comp[given_comp] * g.competitor_cap + BOUND_TOLERANCE).all()
    assert set(out.bound.tolist()) <= set(BOUND_LABELS)
    assert set(out.rounding.tolist()) <= set(ROUNDING_LABELS)
    # Rounding stays close to the clipped price and produces what it says it produced.
    clipped = np.clip(prices, lower, np.maximum(upper, lower))
    cents = np.round(p * 100)
    ending = out.rounding == "ending"
    assert (np.abs(p[ending] - clipped[ending]) <= 1.0 + 1e-9).all()
    assert (np.abs(p[~ending] - clipped[~ending]) <= 0.01 + 1e-9).all()
    assert (np.abs(p[out.rounding != "unrounded"] * 100 - cents[out.rounding != "unrounded"]) < 1e-6).all()
    if g.price_ending is None:
        assert not ending.any() and not (out.rounding == "cents_fallback").any()
    else:
        assert (cents[ending] % 100 == round(g.price_ending * 100)).all()
        assert not (out.rounding == "cents").any()
    # A price inside the interval is never labelled as clipped, and vice versa.
    inside = (prices > lower) & (prices < upper)
    assert (out.bound[inside] == "none").all()
    assert (out.bound[~inside] != "none").all()


@settings(max_examples=300, deadline=None)
@given(g=configs, data=st.lists(st.tuples(rows, st.floats(-3, 3), st.floats(0.02, 5)), min_size=1, max_size=20))
def test_checked_items_give_what_the_validating_functions_give(
    g: Guardrails, data: list[tuple[tuple[float, float, float | None, float], float, float]]
) -> None:
    r = np.array([d[0][0] for d in data])
    c = r * np.array([d[0][1] for d in data])
    comp = r * np.array([np.nan if d[0][2] is None else d[0][2] for d in data])
    prices = r * np.array([d[0][3] for d in data])
    mu, s = np.array([d[1] for d in data]), np.array([d[2] for d in data])
    items = check_items(g, mu=mu, scale=s, list_price=r, unit_cost=c, competitor_price=comp)
    lower, upper = price_bounds(g, list_price=r, unit_cost=c, competitor_price=comp)
    np.testing.assert_array_equal(items.lower, lower)
    np.testing.assert_array_equal(items.upper, upper)
    np.testing.assert_array_equal(items.infeasible(), infeasible(lower, upper))
    ok = np.flatnonzero(~infeasible(lower, upper))
    if len(ok) < len(r):
        with pytest.raises(ValueError, match="no price satisfies"):
            items.optimal()
    items = items.take(ok)
    r, c, comp, prices, mu, s, lower, upper = (a[ok] for a in (r, c, comp, prices, mu, s, lower, upper))
    if not len(r):
        return
    best = optimal_prices(mu=mu, scale=s, list_price=r, unit_cost=c, lower=lower, upper=np.maximum(upper, lower))
    for got, want in ((items.optimal(), apply_guardrails(g, prices=best, list_price=r, unit_cost=c, competitor_price=comp)),
                      (items.guard(prices), apply_guardrails(g, prices=prices, list_price=r, unit_cost=c,
                                                              competitor_price=comp))):
        for field in ("price", "bound", "rounding", "lower", "upper"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
    p = items.optimal().price
    np.testing.assert_array_equal(items.probability(p), purchase_probability(mu=mu, scale=s, price=p, list_price=r))


def test_check_items_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError, match="list_price.*mu must be finite.*scale must be finite and > 0"):
        check_items(Guardrails(), mu=[np.nan], scale=[0.0], list_price=[-1.0], unit_cost=[1.0])
    with pytest.raises(ValueError, match="must have the prices' shape"):
        check_items(Guardrails(), mu=[1.0, 2.0], scale=[1.0, 1.0], list_price=[1.0], unit_cost=[0.5])
    items = check_items(Guardrails(), mu=[1.0], scale=[0.5], list_price=[10.0], unit_cost=[5.0])
    with pytest.raises(ValueError, match="prices must be finite"):
        items.guard(np.array([np.inf]))
