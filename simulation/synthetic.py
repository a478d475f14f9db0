"""Synthetic retail market with known willingness to pay, written out as Ta Feng-style shop exports.

Demand model (the same logistic form the product learns, see design §4): customer i offered
product j at price p buys with P = sigmoid((mu_ij - p / r_j) / s_ij), where r_j is the list price,

    mu_ij = base_j + age_effect[age_i, subclass_j] + segment_effect[segment_i, subclass_j] + taste_i
    s_ij  = scale_j * scale_factor_i,
    scale_factor_i ∝ exp(taste_gamma * z(taste_i) + age_scale_slope * z(age_i) + visit_scale_slope * z(log visit rate_i))
                     * (deal_scale if deal seeker) * hidden_i.

Price sensitivity varies as in real retail and shows in behaviour: a customer with a strong taste
for the shop's goods is less price-sensitive (larger s), older customers are less sensitive,
frequent shoppers know prices better and are more sensitive, and deal-seekers (a shop-specific
share) are more sensitive still, so they buy more on promotion and at lower paid-price ratios
(what the pipeline's promo-share and price-ratio features see). A small log-normal factor
(`scale_customer_sd`) stays purely hidden. The age group is recorded in the export; visit
frequency shows in it; the segment, the taste and the deal-seeking trait are latent and show only
through what a customer buys. The taste is orthogonalised against the age and segment
dummies and scaled so it holds exactly `taste_share` of the variance of mu across customers.
Product bases and one global scale multiplier are calibrated so each product's base purchase rate
at list price hits its target and the mean elasticity at list price, -(1 - P) / s over offers,
hits `target_elasticity`. Unit costs are then set so that each product's list price is (within
`uniform_optimum_range`) its profit-maximising single price, as a shop's own list prices would be:
the best uniform price sits inside the guardrail band, and personal prices can go both ways.

Choices worth knowing: competitor prices are recorded for the competitor-cap guardrail but do not
shift mu, so the true demand is time-invariant and `true_demand` needs no date; seasonality acts on
visit rates only; visit rates are independent of taste; every visit buys one cheap staple product
outside the priced catalogue, so every visit leaves a trace in a purchases-only export.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, timedelta
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import expit

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EXPORT_COLUMNS: tuple[str, ...] = (
    "TRANSACTION_DT", "CUSTOMER_ID", "AGE_GROUP", "PIN_CODE", "PRODUCT_SUBCLASS", "PRODUCT_ID",
    "AMOUNT", "ASSET", "SALES_PRICE",
)
AGE_GROUPS: tuple[str, ...] = (
    "<25", "25-29", "30-34", "35-39", "40-44", "45-49", "50-54", "55-59", "60-64", ">65",
)
# Rough Ta Feng age mix before each shop's tilt; Monday..Sunday visit weights before the weekend lift.
_BASE_AGE_MIX = np.array([0.05, 0.10, 0.17, 0.18, 0.15, 0.11, 0.08, 0.06, 0.04, 0.06])
_WEEKEND = np.array([0.0, 0.0, 0.0, 0.0, 0.3, 1.0, 1.0])
_VISIT_CAP = 0.95
_CALIBRATION_SAMPLE = 4000


@dataclass(frozen=True)
class ShopSpec:
    """One regional shop: its size and how its customers differ from the others'."""

    shop_id: str
    n_customers: int
    age_tilt: float = 0.0  # > 0 shifts the age mix older
    taste_shift: float = 0.0  # shop mean of the raw latent taste, in taste standard deviations
    visit_rate: float = 0.075  # mean visits per customer per day before seasonality
    deal_share: float = 0.3  # share of deal-seekers (much more price-sensitive customers)


DEFAULT_SHOPS: tuple[ShopSpec, ...] = (
    ShopSpec("S1", 4000, age_tilt=0.0, taste_shift=0.0, visit_rate=0.080, deal_share=0.30),
    ShopSpec("S2", 2600, age_tilt=0.6, taste_shift=0.4, visit_rate=0.070, deal_share=0.20),
    ShopSpec("S3", 1800, age_tilt=-0.6, taste_shift=-0.3, visit_rate=0.090, deal_share=0.40),
    ShopSpec("S4", 1200, age_tilt=0.3, taste_shift=0.6, visit_rate=0.060, deal_share=0.25),
    ShopSpec("S5", 700, age_tilt=-0.3, taste_shift=-0.6, visit_rate=0.075, deal_share=0.45),
)


@dataclass(frozen=True)
class MarketConfig:
    """Everything that defines a synthetic market; the same config and seed give the same files."""

    seed: int = 7
    start_date: str = "2000-11-01"
    # Eight months (Nov 2000 - Jun 2001): six training months, June held out. With Ta Feng's four, a customer's
    # price sensitivity showed through one or two months of purchases and the centralised model captured 74.3% of
    # the uniform-to-oracle gap (`make evaluate` with n_days=120); with eight, 80.5% (docs/evaluation).
    n_days: int = 240
    shops: tuple[ShopSpec, ...] = DEFAULT_SHOPS
    n_products: int = 30
    n_subclasses: int = 6
    n_segments: int = 4
    segment_concentration: float = 1.5  # Dirichlet parameter of each shop's segment mix
    list_price_range: tuple[float, float] = (20.0, 400.0)
    cost_share_range: tuple[float, float] = (0.55, 0.80)  # used only when uniform_optimum_range is None
    # Where each product's best uniform price sits relative to its list price: unit costs are set to make it so
    # (a shop's list prices are its own best single prices, give or take). None draws costs from cost_share_range.
    uniform_optimum_range: tuple[float, float] | None = (0.95, 1.05)
    scale_spread: tuple[float, float] = (0.8, 1.25)  # per-product scale relative to the calibrated one
    base_rate_range: tuple[float, float] = (0.03, 0.25)  # purchase rate per offer at list price
    target_elasticity: float = -2.6
    age_effect_sd: float = 0.10  # list-price units
    segment_effect_sd: float = 0.16  # list-price units
    taste_share: float = 0.30
    scale_customer_sd: float = 0.03  # log-sd of the purely hidden per-customer factor on the scale
    taste_scale_gamma: float = 0.25  # log-scale change per taste standard deviation (taste lowers sensitivity)
    age_scale_slope: float = 0.25  # log-scale change per standard deviation of age group (older: less sensitive)
    visit_scale_slope: float = -0.20  # log-scale change per sd of log visit rate (frequent shoppers: more sensitive)
    deal_scale: float = 0.75  # scale multiplier of deal-seekers (< 1: more price-sensitive)
    visit_rate_sd: float = 0.6  # log-sd of personal visit rates
    age_missing_rate: float = 0.03
    # Regular prices are drawn uniformly within +-price_noise of list (held for a week): a shop's price test across the
    # guardrail band (0.8-1.2 x list), so the optimiser prices where the data shows demand. At 0.10 the data ended at
    # 1.1 x list; on the four-month market an earlier sweep found the centralised model at 68% of the gap with 0.10
    # and 74% with 0.20.
    price_noise: float = 0.20
    price_hold_days: int = 7  # a regular price holds this many days (per product, random phase), as shelf prices do
    promo_start_rate: float = 0.02  # per product per shop per day
    promo_days: tuple[int, int] = (3, 6)
    promo_depth: tuple[float, float] = (0.15, 0.25)
    competitor_noise: float = 0.10
    weekend_lift: float = 0.35
    season_amplitude: float = 0.10
    season_peak_day: int = 84  # 24 Jan 2001, lunar new year
    amount_probs: tuple[float, float, float] = (0.85, 0.11, 0.04)
    staple_price: int = 18
    line_ending: str = "\r\n"

    def __post_init__(self) -> None:
        """Reject an inconsistent config, naming every problem at once."""
        problems = _config_problems(self)
        if problems:
            raise ValueError("invalid MarketConfig: " + "; ".join(problems))

    @classmethod
    def small(cls, seed: int = 7) -> MarketConfig:
        """A three-shop, twelve-product market for tests (generates in well under a second)."""
        shops = (
            ShopSpec("S1", 300, age_tilt=0.0, taste_shift=0.0, visit_rate=0.08, deal_share=0.30),
            ShopSpec("S2", 220, age_tilt=0.6, taste_shift=0.5, visit_rate=0.07, deal_share=0.20),
            ShopSpec("S3", 150, age_tilt=-0.6, taste_shift=-0.5, visit_rate=0.09, deal_share=0.40),
        )
        return cls(seed=seed, shops=shops, n_days=120, n_products=12, n_subclasses=4, n_segments=3)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MarketConfig:
        """Rebuild a config from `asdict` output (as stored in truth.json)."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if f.name == "shops":
                value = tuple(ShopSpec(**s) for s in value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        return cls(**kwargs)


def _config_problems(cfg: MarketConfig) -> list[str]:
    """List every inconsistency in a config."""
    ids = [s.shop_id for s in cfg.shops]
    checks = [
        (len(cfg.shops) > 0, "at least one shop is needed"),
        (len(set(ids)) == len(ids), "shop ids must be unique"),
        (all(s.n_customers > 0 and s.visit_rate > 0 for s in cfg.shops), "shops need customers and visits"),
        (cfg.n_days > 0, "n_days must be positive"),
        (cfg.price_hold_days >= 1, "price_hold_days must be >= 1"),
        (1 <= cfg.n_subclasses <= cfg.n_products, "need 1 <= n_subclasses <= n_products"),
        (cfg.n_segments >= 1, "n_segments must be >= 1"),
        (0.0 <= cfg.taste_share < 1.0, "taste_share must be in [0, 1)"),
        (cfg.target_elasticity < 0, "target_elasticity must be negative"),
        (cfg.deal_scale > 0, "deal_scale must be positive"),
        (all(0.0 <= s.deal_share <= 1.0 for s in cfg.shops), "deal_share must be in [0, 1]"),
        (0 < cfg.base_rate_range[0] <= cfg.base_rate_range[1] < 1, "base_rate_range must lie in (0, 1)"),
        (abs(sum(cfg.amount_probs) - 1.0) < 1e-9, "amount_probs must sum to 1"),
        (cfg.line_ending in ("\n", "\r\n"), "line_ending must be LF or CRLF"),
        (0 < cfg.list_price_range[0] <= cfg.list_price_range[1], "list_price_range must be positive"),
        (cfg.uniform_optimum_range is None or 0.5 <= cfg.uniform_optimum_range[0] <= cfg.uniform_optimum_range[1] <= 1.5,
         "uniform_optimum_range must be None or lie within [0.5, 1.5]"),
    ]
    return [message for ok, message in checks if not ok]


def buy_probability(mu: npt.ArrayLike, s: npt.ArrayLike, relative_price: npt.ArrayLike) -> FloatArray:
    """P(buy) = sigmoid((mu - p/r) / s), element-wise."""
    return np.asarray(expit((np.asarray(mu) - np.asarray(relative_price)) / np.asarray(s)), dtype=np.float64)


def price_elasticity(mu: npt.ArrayLike, s: npt.ArrayLike, relative_price: npt.ArrayLike) -> FloatArray:
    """Point elasticity of the purchase probability, -(1 - P) * (p/r) / s, element-wise."""
    p = buy_probability(mu, s, relative_price)
    return np.asarray(-(1.0 - p) * np.asarray(relative_price) / np.asarray(s), dtype=np.float64)


def _location(
    base: FloatArray, age_effects: FloatArray, segment_effects: FloatArray, taste: FloatArray,
    age_idx: IntArray, segment: IntArray, sub_idx: IntArray,
) -> FloatArray:
    """mu for broadcastable customer-side (age, segment, taste) and product-side (base, subclass) arrays."""
    return base + age_effects[age_idx, sub_idx] + segment_effects[segment, sub_idx] + taste


@dataclass(frozen=True, eq=False)
class MarketTruth:
    """The ground truth of a generated market: who the customers are and how they really buy."""

    config: MarketConfig
    customers: pd.DataFrame
    products: pd.DataFrame
    prices: pd.DataFrame
    subclasses: tuple[str, ...]  # column order of the effect tables (priced catalogue only)
    age_effects: FloatArray  # AGE_GROUPS x subclasses
    segment_effects: FloatArray  # segments x subclasses
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def staple_product_id(self) -> str:
        """The product every visit buys (not priced, not part of the catalogue)."""
        return str(self.products.loc[self.products["is_staple"], "product_id"].iloc[0])

    @property
    def catalogue(self) -> pd.DataFrame:
        """The priced products (everything but the staple)."""
        return self.products[~self.products["is_staple"]].reset_index(drop=True)

    @cached_property
    def _customer_index(self) -> pd.Index:
        """Customer id -> row of `customers`."""
        return pd.Index(self.customers["customer_id"].astype(str))

    @cached_property
    def _product_index(self) -> pd.Index:
        """Catalogue product id -> row of `catalogue`."""
        return pd.Index(self.catalogue["product_id"].astype(str))

    def true_demand(
        self, *, shop_id: str, customer_ids: Sequence[str], product_ids: Sequence[str]
    ) -> tuple[FloatArray, FloatArray]:
        """Return (mu, s) for the (customer, product) pairs taken element-wise."""
        cpos = self._customer_index.get_indexer(list(customer_ids))
        ppos = self._product_index.get_indexer(list(product_ids))
        problems: list[str] = []
        if len(cpos) != len(ppos):
            problems.append(f"{len(cpos)} customer ids but {len(ppos)} product ids")
        if (cpos < 0).any():
            problems.append(f"{int((cpos < 0).sum())} unknown customer id(s), first at position "
                            f"{int(np.argmax(cpos < 0))}")
        shops = self.customers["shop_id"].to_numpy()[cpos[cpos >= 0]]
        if (shops != shop_id).any():
            problems.append(f"{int((shops != shop_id).sum())} customer(s) do not belong to shop {shop_id}")
        if (ppos < 0).any():
            bad = sorted({str(p) for p, q in zip(product_ids, ppos, strict=False) if q < 0})
            problems.append(f"unknown or unpriced product id(s): {', '.join(bad[:5])}")
        if problems:
            raise ValueError("true_demand: " + "; ".join(problems))
        cust, cat = self.customers, self.catalogue
        age_idx = cust["age_group"].map({g: k for k, g in enumerate(AGE_GROUPS)}).to_numpy(np.int64)
        sub_idx = cat["subclass"].map({c: k for k, c in enumerate(self.subclasses)}).to_numpy(np.int64)
        mu = _location(
            cat["base_wtp"].to_numpy(np.float64)[ppos], self.age_effects, self.segment_effects,
            cust["taste"].to_numpy(np.float64)[cpos], age_idx[cpos],
            cust["segment"].to_numpy(np.int64)[cpos], sub_idx[ppos],
        )
        s = cat["scale"].to_numpy(np.float64)[ppos] * cust["scale_factor"].to_numpy(np.float64)[cpos]
        return mu, s


def true_demand(
    truth: MarketTruth, *, shop_id: str, customer_ids: Sequence[str], product_ids: Sequence[str]
) -> tuple[FloatArray, FloatArray]:
    """Return (mu, s) for the (customer, product) pairs taken element-wise."""
    return truth.true_demand(shop_id=shop_id, customer_ids=customer_ids, product_ids=product_ids)


# --------------------------------------------------------------------------------------------------
# Drawing the market


@dataclass(frozen=True)
class _Catalogue:
    """Products as arrays; the staple is the last entry of every product-length array."""

    product_ids: list[str]
    subclass_ids: list[str]  # the staple's own subclass last
    sub_idx: IntArray
    list_price: IntArray
    unit_cost: IntArray
    scale_spread: FloatArray  # priced catalogue only
    target_rate: FloatArray  # priced catalogue only


@dataclass(frozen=True)
class _Customers:
    """All customers of all shops as arrays."""

    shop_idx: IntArray
    customer_id: list[str]
    age_idx: IntArray
    age_recorded: list[str]
    segment: IntArray
    visit_rate: FloatArray
    hidden_factor: FloatArray
    deal_seeker: npt.NDArray[np.bool_]
    taste_raw: FloatArray


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], size: int) -> FloatArray:
    """Draws spread evenly on the log scale between the bounds."""
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    return np.exp(rng.uniform(lo, hi, size))


def _draw_catalogue(cfg: MarketConfig, rng: np.random.Generator) -> _Catalogue:
    """Products, subclasses, list prices, costs and target purchase rates, plus the staple."""
    n, k = cfg.n_products, cfg.n_subclasses
    sub_idx = rng.permutation(np.arange(n) % k)
    list_price = np.maximum(np.rint(_log_uniform(rng, cfg.list_price_range, n)), 2).astype(np.int64)
    cost = np.maximum(np.rint(list_price * rng.uniform(*cfg.cost_share_range, n)), 1).astype(np.int64)
    codes = rng.choice(10**11, n + 1, replace=False)
    subclass_codes = rng.choice(900_000, k + 1, replace=False) + 100_000
    return _Catalogue(
        product_ids=[f"47{c:011d}" for c in codes],
        subclass_ids=[f"{c:06d}" for c in subclass_codes],
        sub_idx=np.append(sub_idx, k).astype(np.int64),
        list_price=np.append(list_price, cfg.staple_price).astype(np.int64),
        unit_cost=np.append(cost, max(1, round(0.7 * cfg.staple_price))).astype(np.int64),
        scale_spread=rng.uniform(*cfg.scale_spread, n),
        target_rate=_log_uniform(rng, cfg.base_rate_range, n),
    )


def _draw_effects(cfg: MarketConfig, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Age-group x subclass and segment x subclass shifts of willingness to pay (list-price units)."""
    z = np.linspace(-1.0, 1.0, len(AGE_GROUPS))
    z = (z - z.mean()) / z.std()
    slope = rng.standard_normal(cfg.n_subclasses)
    level = rng.standard_normal(cfg.n_subclasses) * 0.5
    age = cfg.age_effect_sd * (np.outer(z, slope) + np.outer(np.abs(z) - np.abs(z).mean(), level))
    segment = cfg.segment_effect_sd * rng.standard_normal((cfg.n_segments, cfg.n_subclasses))
    return age, segment


def _draw_customers(cfg: MarketConfig, rng: np.random.Generator) -> _Customers:
    """Customers of every shop with their shop-specific age and segment mixes."""
    z = np.linspace(-1.0, 1.0, len(AGE_GROUPS))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("shop", "age", "seg", "rate", "taste", "deal")}
    for s, shop in enumerate(cfg.shops):
        n = shop.n_customers
        age_mix = _BASE_AGE_MIX * np.exp(shop.age_tilt * z)
        seg_mix = rng.dirichlet(np.full(cfg.n_segments, cfg.segment_concentration))
        parts["shop"].append(np.full(n, s))
        parts["age"].append(rng.choice(len(AGE_GROUPS), n, p=age_mix / age_mix.sum()))
        parts["seg"].append(rng.choice(cfg.n_segments, n, p=seg_mix))
        parts["rate"].append(shop.visit_rate * _lognormal_unit_mean(rng, cfg.visit_rate_sd, n))
        parts["taste"].append(shop.taste_shift + rng.standard_normal(n))
        parts["deal"].append(rng.random(n) < shop.deal_share)
    total = sum(s.n_customers for s in cfg.shops)
    age_idx = np.concatenate(parts["age"]).astype(np.int64)
    missing = rng.random(total) < cfg.age_missing_rate
    ids = rng.choice(19_900_000, total, replace=False) + 100_000
    return _Customers(
        shop_idx=np.concatenate(parts["shop"]).astype(np.int64),
        customer_id=[f"{c:08d}" for c in ids],
        age_idx=age_idx,
        age_recorded=["" if m else AGE_GROUPS[a] for a, m in zip(age_idx, missing, strict=True)],
        segment=np.concatenate(parts["seg"]).astype(np.int64),
        visit_rate=np.concatenate(parts["rate"]),
        hidden_factor=_lognormal_unit_mean(rng, cfg.scale_customer_sd, total),
        deal_seeker=np.concatenate(parts["deal"]).astype(bool),
        taste_raw=np.concatenate(parts["taste"]),
    )


def _scale_factor(cfg: MarketConfig, c: _Customers, taste: FloatArray) -> FloatArray:
    """Per-customer scale multiplier (mean one): taste and age lower sensitivity, deal-seeking raises it."""
    z_age = np.linspace(-1.0, 1.0, len(AGE_GROUPS))
    z_age = (z_age - z_age.mean()) / z_age.std()
    z_taste = taste / taste.std() if taste.std() > 0 else np.zeros_like(taste)
    log_rate = np.log(c.visit_rate)
    z_rate = (log_rate - log_rate.mean()) / log_rate.std() if log_rate.std() > 0 else np.zeros_like(log_rate)
    log_f = cfg.taste_scale_gamma * z_taste + cfg.age_scale_slope * z_age[c.age_idx] + cfg.visit_scale_slope * z_rate
    factor = np.exp(log_f) * np.where(c.deal_seeker, cfg.deal_scale, 1.0) * c.hidden_factor
    return np.asarray(factor / factor.mean(), dtype=np.float64)


def _lognormal_unit_mean(rng: np.random.Generator, sd: float, size: int) -> FloatArray:
    """Log-normal draws with mean one."""
    return np.exp(sd * rng.standard_normal(size) - sd**2 / 2)


def _scale_taste(
    raw: FloatArray, age_idx: IntArray, segment: IntArray, shift: FloatArray, share: float
) -> FloatArray:
    """Make the taste orthogonal to age and segment and give it `share` of the variance of mu."""
    design = np.column_stack([np.eye(len(AGE_GROUPS))[age_idx], np.eye(int(segment.max()) + 1)[segment]])
    coef, *_ = np.linalg.lstsq(design, raw, rcond=None)
    resid = raw - design @ coef
    if share == 0.0 or resid.var() == 0.0:
        return np.zeros_like(raw)
    # mu_j = base_j + shift_j + taste with cov(taste, shift_j) = 0, so var(mu_j) = var(shift_j) + var(taste).
    target_var = share / (1.0 - share) * float(shift.var(axis=0).mean())
    return resid * np.sqrt(target_var / resid.var())


def _solve_base(loc: FloatArray, s: FloatArray, w: FloatArray, target: FloatArray) -> FloatArray:
    """Per product, the base making the weighted mean P(buy at list) equal its target (bisection)."""
    lo = np.full(loc.shape[1], 1.0 - loc.max() - 20.0 * s.max())
    hi = np.full(loc.shape[1], 1.0 - loc.min() + 20.0 * s.max())
    for _ in range(50):
        mid = (lo + hi) / 2
        rate = w @ expit((mid + loc - 1.0) / s)
        too_high = rate > target
        hi = np.where(too_high, mid, hi)
        lo = np.where(too_high, lo, mid)
    return (lo + hi) / 2


def _calibrate(
    cfg: MarketConfig, cat: _Catalogue, loc: FloatArray, factor: FloatArray, weight: FloatArray,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray, float]:
    """Product bases and scales that hit the base rates and the mean elasticity at list price."""
    if len(weight) > _CALIBRATION_SAMPLE:
        # With replacement, so that the sample is exactly proportional to the weights.
        pick = rng.choice(len(weight), _CALIBRATION_SAMPLE, replace=True, p=weight / weight.sum())
        loc, factor, weight = loc[pick], factor[pick], np.ones(len(pick))
    w = weight / weight.sum()
    kappa = 0.35
    base = np.zeros(loc.shape[1])
    for _ in range(40):
        s = kappa * cat.scale_spread[None, :] * factor[:, None]
        base = _solve_base(loc, s, w, cat.target_rate)
        elasticity = float(w @ price_elasticity(base + loc, s, 1.0).mean(axis=1))
        if abs(elasticity - cfg.target_elasticity) < 1e-4:
            break
        kappa *= elasticity / cfg.target_elasticity
    return base, kappa * cat.scale_spread, kappa


def _costs_at_optimum(bounds: tuple[float, float], cat: _Catalogue, mu: FloatArray, s: FloatArray, weight: FloatArray,
                      rng: np.random.Generator) -> _Catalogue:
    """Unit costs that make each product's best uniform price land at list x U(bounds) (first-order condition).

    Profit (p - c) * sum_i w_i P_i(p) is stationary where p - c = sum w P / sum w P (1 - P) / (s r), in list units.
    """
    at = rng.uniform(*bounds, mu.shape[1])
    prob = expit((mu - at[None, :]) / s)
    margin = (weight @ prob) / (weight @ (prob * (1.0 - prob) / s))
    share = np.clip(at - margin, 0.2, at - 0.05)
    lp = cat.list_price[:-1].astype(np.float64)
    cost = np.maximum(np.rint(lp * share), 1).astype(np.int64)
    return replace(cat, unit_cost=np.append(cost, cat.unit_cost[-1]).astype(np.int64))


def _calendar(cfg: MarketConfig) -> tuple[list[date], FloatArray]:
    """The days of the market and their visit-rate multipliers (weekly pattern x mild season)."""
    start = date.fromisoformat(cfg.start_date)
    days = [start + timedelta(days=k) for k in range(cfg.n_days)]
    week = 1.0 + cfg.weekend_lift * _WEEKEND
    week /= week.mean()
    k = np.arange(cfg.n_days)
    season = 1.0 + cfg.season_amplitude * np.cos(2 * np.pi * (k - cfg.season_peak_day) / cfg.n_days)
    return days, week[[d.weekday() for d in days]] * season


def _to_price(values: FloatArray) -> IntArray:
    """Round to whole currency units, never below one."""
    return np.maximum(np.rint(values), 1).astype(np.int64)


def _draw_prices(
    cfg: MarketConfig, cat: _Catalogue, rng: np.random.Generator
) -> tuple[IntArray, IntArray, npt.NDArray[np.bool_]]:
    """One shop's daily prices, competitor prices and promotion flags (days x products incl. staple)."""
    d, n = cfg.n_days, len(cat.list_price)
    lp = cat.list_price.astype(np.float64)
    starts = rng.random((d, n)) < cfg.promo_start_rate
    starts[:, -1] = False  # the staple is never on promotion
    length = rng.integers(cfg.promo_days[0], cfg.promo_days[1] + 1, (d, n))
    depth = rng.uniform(*cfg.promo_depth, (d, n))
    promo_depth = np.zeros((d, n))
    for offset in range(cfg.promo_days[1]):
        active = starts[: d - offset] & (length[: d - offset] > offset)
        promo_depth[offset:] = np.maximum(promo_depth[offset:], np.where(active, depth[: d - offset], 0.0))
    hold = cfg.price_hold_days
    block = (np.arange(d)[:, None] + rng.integers(0, hold, n)[None, :]) // hold
    noise = np.take_along_axis(rng.uniform(-cfg.price_noise, cfg.price_noise, (d // hold + 2, n)), block, axis=0)
    price = np.where(promo_depth > 0, lp * (1.0 - promo_depth), lp * (1.0 + noise))
    competitor = lp * (1.0 + rng.uniform(-cfg.competitor_noise, cfg.competitor_noise, (d, n)))
    return _to_price(price), _to_price(competitor), promo_depth > 0


@dataclass
class _ShopResult:
    """One shop's export lines and the offer-level sums for the market report."""

    lines: pd.DataFrame
    n_visits: IntArray  # per customer of the shop
    n_offers: int = 0
    n_bought: int = 0
    elasticity_list_sum: float = 0.0
    elasticity_offered_sum: float = 0.0
    rate_at_list_sum: FloatArray = field(default_factory=lambda: np.zeros(0))


def _simulate_shop(
    cfg: MarketConfig, shop: ShopSpec, cat: _Catalogue, customers: pd.DataFrame, mu: FloatArray,
    s: FloatArray, price: IntArray, day_factor: FloatArray, day_labels: list[str], rng: np.random.Generator,
) -> _ShopResult:
    """Visits and purchases of one shop's customers; returns its export lines, day then customer."""
    n_cat = len(cat.list_price) - 1
    rate = customers["visit_rate"].to_numpy(np.float64)
    p_visit = np.minimum(rate[None, :] * day_factor[:, None], _VISIT_CAP)
    day, cust = np.nonzero(rng.random(p_visit.shape) < p_visit)  # row-major: by day, then customer
    rel = price[:, :n_cat] / cat.list_price[:n_cat]
    mu_v, s_v = mu[cust], s[cust]
    p_buy = buy_probability(mu_v, s_v, rel[day])
    bought = np.column_stack([rng.random(p_buy.shape) < p_buy, np.ones(len(day), bool)])
    u = rng.random(bought.shape)
    a0, a1, _ = cfg.amount_probs
    amount = 1 + (u >= a0).astype(np.int64) + (u >= a0 + a1).astype(np.int64)
    v, j = np.nonzero(bought)
    amt = amount[v, j]
    ids = customers["customer_id"].to_numpy(str)
    ages = customers["age_group_recorded"].to_numpy(str)
    lines = pd.DataFrame({
        "TRANSACTION_DT": np.asarray(day_labels)[day[v]],
        "CUSTOMER_ID": ids[cust[v]],
        "AGE_GROUP": ages[cust[v]],
        "PIN_CODE": shop.shop_id,
        "PRODUCT_SUBCLASS": np.asarray(cat.subclass_ids)[cat.sub_idx[j]],
        "PRODUCT_ID": np.asarray(cat.product_ids)[j],
        "AMOUNT": amt,
        "ASSET": amt * cat.unit_cost[j],
        "SALES_PRICE": amt * price[day[v], j],
    })
    return _ShopResult(
        lines=lines,
        n_visits=np.bincount(cust, minlength=len(customers)).astype(np.int64),
        n_offers=int(p_buy.size),
        n_bought=int(bought[:, :n_cat].sum()),
        elasticity_list_sum=float(price_elasticity(mu_v, s_v, 1.0).sum()),
        elasticity_offered_sum=float(price_elasticity(mu_v, s_v, rel[day]).sum()),
        rate_at_list_sum=buy_probability(mu_v, s_v, 1.0).sum(axis=0),
    )


# --------------------------------------------------------------------------------------------------
# Writing


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write via a temporary file in the same directory, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_export(lines: pd.DataFrame, path: Path, line_ending: str) -> None:
    """Write lines as a Ta Feng-style export: UTF-8 with BOM, every field double-quoted."""
    _atomic(path, lambda tmp: lines.to_csv(
        tmp, index=False, quoting=csv.QUOTE_ALL, encoding="utf-8-sig", lineterminator=line_ending
    ))


def _write_truth(truth: MarketTruth, out_dir: Path) -> None:
    """Write the truth tables and truth.json under `<out_dir>/truth/`."""
    tdir = out_dir / "truth"
    tables = {"customers": truth.customers, "products": truth.products, "prices": truth.prices}
    for name, frame in tables.items():
        _atomic(tdir / f"{name}.parquet", partial(frame.to_parquet, index=False))
    doc = {
        "config": asdict(truth.config),
        "staple_product_id": truth.staple_product_id,
        "effects": {
            "subclasses": list(truth.subclasses),
            "age_groups": list(AGE_GROUPS),
            "age": truth.age_effects.tolist(),
            "segment": truth.segment_effects.tolist(),
        },
        "stats": truth.stats,
    }
    _atomic(tdir / "truth.json", lambda tmp: tmp.write_text(json.dumps(doc, indent=2), encoding="utf-8"))


def load_truth(out_dir: Path) -> MarketTruth:
    """Read back the truth written by `generate_market`."""
    tdir = Path(out_dir) / "truth"
    doc = json.loads((tdir / "truth.json").read_text(encoding="utf-8"))
    customers = pd.read_parquet(tdir / "customers.parquet")
    customers["customer_id"] = customers["customer_id"].astype(str)
    return MarketTruth(
        config=MarketConfig.from_dict(doc["config"]),
        customers=customers,
        products=pd.read_parquet(tdir / "products.parquet"),
        prices=pd.read_parquet(tdir / "prices.parquet"),
        subclasses=tuple(doc["effects"]["subclasses"]),
        age_effects=np.asarray(doc["effects"]["age"], dtype=np.float64),
        segment_effects=np.asarray(doc["effects"]["segment"], dtype=np.float64),
        stats=doc["stats"],
    )


# --------------------------------------------------------------------------------------------------
# Orchestration


def _customer_frame(cfg: MarketConfig, c: _Customers, taste: FloatArray, factor: FloatArray) -> pd.DataFrame:
    """The customers truth table (n_visits filled in after simulation)."""
    return pd.DataFrame({
        "shop_id": np.asarray([s.shop_id for s in cfg.shops])[c.shop_idx],
        "customer_id": c.customer_id,
        "age_group": np.asarray(AGE_GROUPS)[c.age_idx],
        "age_group_recorded": c.age_recorded,
        "segment": c.segment,
        "taste": taste,
        "scale_factor": factor,
        "hidden_scale_factor": c.hidden_factor,
        "deal_seeker": c.deal_seeker,
        "visit_rate": c.visit_rate,
        "n_visits": np.zeros(len(taste), dtype=np.int64),
    })


def _product_frame(cat: _Catalogue, base: FloatArray, scale: FloatArray) -> pd.DataFrame:
    """The products truth table; the staple has no demand parameters."""
    n = len(cat.list_price)
    return pd.DataFrame({
        "product_id": cat.product_ids,
        "subclass": np.asarray(cat.subclass_ids)[cat.sub_idx],
        "list_price": cat.list_price,
        "unit_cost": cat.unit_cost,
        "scale": np.append(scale, np.nan),
        "base_wtp": np.append(base, np.nan),
        "target_base_rate": np.append(cat.target_rate, np.nan),
        "is_staple": np.arange(n) == n - 1,
    })


def _price_frame(shop_id: str, days: list[date], cat: _Catalogue, price: IntArray, comp: IntArray,
                 promo: np.ndarray) -> pd.DataFrame:
    """One shop's daily price table in long form."""
    d, n = price.shape
    return pd.DataFrame({
        "shop_id": shop_id,
        "date": np.repeat(np.asarray(days, dtype="datetime64[D]"), n).astype("datetime64[us]"),
        "product_id": np.tile(np.asarray(cat.product_ids), d),
        "price": price.ravel(),
        "competitor_price": comp.ravel(),
        "promo": promo.ravel(),
    })


def _market_stats(cfg: MarketConfig, results: list[_ShopResult], cat: _Catalogue, kappa: float,
                  taste_share: float) -> dict[str, Any]:
    """Realised offer-level calibration numbers and per-shop sizes."""
    offers = sum(r.n_offers for r in results)
    n_visits = offers // max(len(cat.list_price) - 1, 1)
    rates = np.sum([r.rate_at_list_sum for r in results], axis=0) / max(n_visits, 1)
    per_product = {p: float(r) for p, r in zip(cat.product_ids, rates, strict=False)}
    return {
        "mean_elasticity_at_list": sum(r.elasticity_list_sum for r in results) / max(offers, 1),
        "mean_elasticity_at_offered_price": sum(r.elasticity_offered_sum for r in results) / max(offers, 1),
        "base_rate_at_list": {"mean": float(np.mean(rates)), "min": float(np.min(rates)),
                              "max": float(np.max(rates)),
                              "per_product": per_product},
        "realised_buy_rate_per_offer": sum(r.n_bought for r in results) / max(offers, 1),
        "taste_share": taste_share,
        "scale_multiplier": kappa,
        "offers": offers,
        "shops": {
            s.shop_id: {"customers": s.n_customers, "active_customers": int((r.n_visits > 0).sum()),
                        "visits": int(r.n_visits.sum()), "lines": len(r.lines)}
            for s, r in zip(cfg.shops, results, strict=True)
        },
    }


def generate_market(config: MarketConfig, out_dir: Path) -> MarketTruth:
    """Draw a market, write one raw export per shop and the truth, and return the truth."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    seeds = np.random.SeedSequence(config.seed).spawn(3 + len(config.shops))
    rng_cat, rng_cust, rng_cal = (np.random.default_rng(s) for s in seeds[:3])
    cat = _draw_catalogue(config, rng_cat)
    age_eff, seg_eff = _draw_effects(config, rng_cat)
    c = _draw_customers(config, rng_cust)
    n_cat = config.n_products
    sub = cat.sub_idx[None, :n_cat]
    shift = age_eff[c.age_idx[:, None], sub] + seg_eff[c.segment[:, None], sub]
    taste = _scale_taste(c.taste_raw, c.age_idx, c.segment, shift, config.taste_share)
    loc = shift + taste[:, None]
    factor = _scale_factor(config, c, taste)
    days, day_factor = _calendar(config)
    expected_visits = c.visit_rate * day_factor.sum()
    base, scale, kappa = _calibrate(config, cat, loc, factor, expected_visits, rng_cal)
    if config.uniform_optimum_range is not None:
        cat = _costs_at_optimum(config.uniform_optimum_range, cat, base[None, :] + loc, scale[None, :] * factor[:, None],
                                expected_visits, rng_cal)
    mu = base[None, :] + loc
    s = scale[None, :] * factor[:, None]
    customers = _customer_frame(config, c, taste, factor)
    labels = [f"{d.month}/{d.day}/{d.year}" for d in days]
    results, price_frames = [], []
    for k, shop in enumerate(config.shops):
        rng = np.random.default_rng(seeds[3 + k])
        price, comp, promo = _draw_prices(config, cat, rng)
        rows = np.flatnonzero(c.shop_idx == k)
        res = _simulate_shop(config, shop, cat, customers.iloc[rows], mu[rows], s[rows], price, day_factor,
                             labels, rng)
        customers.loc[rows, "n_visits"] = res.n_visits
        _write_export(res.lines, out_dir / shop.shop_id / "raw" / "export.csv", config.line_ending)
        results.append(res)
        price_frames.append(_price_frame(shop.shop_id, days, cat, price, comp, promo))
    realised_share = float(taste.var() / (loc.var(axis=0).mean())) if loc.var() > 0 else 0.0
    truth = MarketTruth(
        config=config, customers=customers, products=_product_frame(cat, base, scale),
        prices=pd.concat(price_frames, ignore_index=True), subclasses=tuple(cat.subclass_ids[:-1]),
        age_effects=age_eff, segment_effects=seg_eff,
        stats=_market_stats(config, results, cat, kappa, realised_share),
    )
    truth.stats["generation_seconds"] = round(time.perf_counter() - started, 3)
    _write_truth(truth, out_dir)
    logger.info(
        "synthetic market: %d shops, %d customers, %d visits, elasticity at list %.3f, "
        "base rates %.3f-%.3f, %.1fs",
        len(config.shops), len(customers), int(customers["n_visits"].sum()),
        truth.stats["mean_elasticity_at_list"], truth.stats["base_rate_at_list"]["min"],
        truth.stats["base_rate_at_list"]["max"], truth.stats["generation_seconds"],
    )
    return truth
