"""Guardrails per shop and category from a file, and the property that every served price is inside all of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from api_world import Api, World
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demand.guardrails import Guardrails
from fedprice.errors import ConfigError
from pricing_api.guardrail_book import GuardrailBook
from pricing_api.pricing import InfeasibleItemsError, price_items

RAILS = """
[default]
min_margin = 0.05
price_ending = 0.99

[categories.tobacco]
band_low = 1.0
band_high = 1.0
price_ending = "none"

[shops.S1]
band_high = 1.1
competitor_cap = 1.02

[shops.S1.categories.dairy]
min_margin = 0.2
"""


def test_precedence_default_shop_category_shop_category(tmp_path: Path) -> None:
    path = tmp_path / "rails.toml"
    path.write_text(RAILS)
    book = GuardrailBook.load(path)
    assert book.resolve("S2", None) == Guardrails(min_margin=0.05, price_ending=0.99)
    assert book.resolve("S1", None) == Guardrails(min_margin=0.05, band_high=1.1, competitor_cap=1.02, price_ending=0.99)
    assert book.resolve("S1", "unknown-category") == book.resolve("S1", None)
    assert book.resolve("S2", "tobacco") == Guardrails(min_margin=0.05, band_low=1.0, band_high=1.0, price_ending=None)
    assert book.resolve("S1", "tobacco").band_high == 1.0  # category beats shop
    assert book.resolve("S1", "dairy") == Guardrails(min_margin=0.2, band_high=1.1, competitor_cap=1.02, price_ending=0.99)
    as_json = tmp_path / "rails.json"
    as_json.write_text(json.dumps({"default": {"band_low": 0.9, "competitor_cap": None}}))
    assert GuardrailBook.load(as_json).resolve("S1", None) == Guardrails(band_low=0.9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[default]\nband_hi = 1.3\n", r"\[default\] unknown setting 'band_hi'"),
        ("[shops.S1]\nband_high = 0.5\n", r"\[shops.S1\] invalid Guardrails: band_high must be"),
        ("[categories.x]\nmin_margin = 'lots'\n", r"\[categories.x\] min_margin must be a number"),
        ("[weird]\n", r"unknown sections \['weird'\]"),
        ("[default\n", "not valid toml"),
    ],
)
def test_bad_files_fail_at_start_naming_the_section(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rails.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        GuardrailBook.load(path)


def test_api_applies_category_and_shop_rules(api_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "rails.toml"
    path.write_text(RAILS)
    api: Api = api_for(guardrails_file=path)
    items = [{"product_id": "cig", "list_price": 8.5, "unit_cost": 5.0, "category": "tobacco"},
             {"product_id": "milk", "list_price": 20.0, "unit_cost": 15.0, "category": "dairy"},
             {"product_id": "tv", "list_price": 100.0, "unit_cost": 50.0, "competitor_price": 80.0}]
    quotes = api.quote({"shop_id": "S1", "customer_id": "c", "items": items}).json()["quotes"]
    assert quotes[0]["price"] == 8.5  # band 1.0-1.0, no ending
    assert quotes[1]["price"] >= 18.0 and round(quotes[1]["price"] * 100) % 100 == 99
    assert quotes[2]["price"] <= 81.6 and quotes[2]["guardrail"] in {"competitor_cap", "none", "band_low"}
    assert round(quotes[2]["price"] * 100) % 100 == 99


guardrails = st.builds(
    Guardrails,
    min_margin=st.floats(0, 0.5),
    band_low=st.floats(0.5, 1.0),
    band_high=st.floats(1.0, 2.0),
    competitor_cap=st.none() | st.floats(0.8, 1.5),
    price_ending=st.none() | st.sampled_from([0.0, 0.49, 0.95, 0.99]),
)
price = st.floats(0.01, 1e6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    g=guardrails,
    rows=st.lists(st.tuples(price, st.floats(0, 1), st.none() | st.floats(0.5, 2.0), st.floats(-3, 3), st.floats(0.02, 5),
                            st.none() | st.floats(0.5, 1.5)), min_size=1, max_size=8),
)
def test_every_price_is_inside_every_guardrail(g: Guardrails, rows: list[tuple]) -> None:  # type: ignore[type-arg]
    r = np.array([x[0] for x in rows])
    c = r * np.array([x[1] for x in rows])
    comp = np.array([np.nan if x[2] is None else x[2] * x[0] for x in rows])
    mu, s = np.array([x[3] for x in rows]), np.array([x[4] for x in rows])
    previous = np.array([np.nan if x[5] is None else round(x[5] * x[0], 2) for x in rows])
    try:
        out = price_items(mu=mu, scale=s, list_price=r, unit_cost=c, competitor_price=comp, rails=[g],
                          group=np.zeros(len(rows), dtype=np.intp), previous_price=previous,
                          previous_guardrail=np.full(len(rows), "none"), same_inputs=np.array([x[5] is not None for x in rows]))
    except InfeasibleItemsError as exc:
        cap = np.where(np.isnan(comp) | (g.competitor_cap is None), np.inf, comp * (g.competitor_cap or 1.0))
        lower = np.maximum(c * (1 + g.min_margin), g.band_low * r)
        upper = np.minimum(g.band_high * r, cap)
        assert {p.index for p in exc.problems} == set(np.flatnonzero(lower > upper + 1e-9).tolist())
        return
    p = out.price
    tol = 1e-9
    assert (p >= c * (1 + g.min_margin) - tol).all()
    assert (p >= g.band_low * r - tol).all() and (p <= g.band_high * r + tol).all()
    if g.competitor_cap is not None:
        given_comp = ~np.isnan(comp)
        assert (p[given_comp] <= comp[given_comp] * g.competitor_cap + tol).all()
    assert set(out.guardrail) <= {"none", "cost_floor", "band_low", "band_high", "competitor_cap"}
    if g.price_ending is not None:  # freshly priced items end as asked wherever such a price lies clearly inside
        ending = round(g.price_ending * 100)
        first = np.ceil((out.lower * 100 + 1e-6 - ending) / 100) * 100 + ending
        fits = (first <= out.upper * 100 - 1e-6) & np.array([x[5] is None for x in rows])
        assert (np.rint(p[fits] * 100) % 100 == ending).all(), (p[fits], ending)


@pytest.fixture
def railed_api(api_for, tmp_path: Path) -> Api:  # type: ignore[no-untyped-def]
    """The API with RAILS as its guardrails file."""
    path = tmp_path / "rails.toml"
    path.write_text(RAILS)
    return api_for(guardrails_file=path)  # type: ignore[no-any-return]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_served_prices_respect_the_configured_guardrails(railed_api: Api, world: World, data: st.DataObject) -> None:
    products = [p["product_id"] for p in world.products["S1"][:3]] + ["never-sold"]
    items = data.draw(st.lists(st.fixed_dictionaries({
        "product_id": st.sampled_from(products), "list_price": price, "unit_cost": st.floats(0, 1e6),
        "competitor_price": st.none() | price}), min_size=1, max_size=5))
    customer = data.draw(st.sampled_from([*world.customers["S1"][:3], "new-customer"]))
    resp = railed_api.quote({"shop_id": "S1", "customer_id": customer, "items": items})
    assert resp.status_code in (200, 422), resp.text
    if resp.status_code == 422:
        assert all(p["field"].startswith("items[") for p in resp.json()["problems"])
        return
    g = GuardrailBook.load(railed_api.settings.guardrails_file).resolve("S1", None)
    for q, item in zip(resp.json()["quotes"], items, strict=True):
        lp, uc, cp = item["list_price"], item["unit_cost"], item["competitor_price"]
        assert q["price"] >= uc * (1 + g.min_margin) - 1e-9
        assert g.band_low * lp - 1e-9 <= q["price"] <= g.band_high * lp + 1e-9
        if cp is not None:
            assert q["price"] <= cp * (g.competitor_cap or np.inf) + 1e-9
