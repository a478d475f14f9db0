"""Score prices against the true demand: profit, revenue, conversion, surplus, guardrail use.

Every approach's prices go through the same optimiser and default guardrails as the product
(`demand.optimiser`, `demand.guardrails`), and are scored in expectation under the true demand
curve: profit = sum (p - c) * P_true(p); consumer surplus = sum E[(WTP - p)+], which for a logistic
willingness to pay with location r*mu and scale r*s is r * s * softplus((mu - p/r) / s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from demand.guardrails import GuardedPrices, Guardrails, apply_guardrails, price_bounds
from demand.optimiser import optimal_prices

GUARDRAILS = Guardrails()  # the product's defaults: band 0.8-1.2 x list, floor at cost, whole cents
UNIFORM_GRID = 401  # coarse grid over the guardrail interval before refining to whole cents


@dataclass(frozen=True, eq=False)
class PricingRows:
    """Rows to price, (customer, product) each, with list price, unit cost and the true demand."""

    list_price: np.ndarray
    unit_cost: np.ndarray
    true_mu: np.ndarray  # in list-price units
    true_s: np.ndarray
    product_id: np.ndarray

    def __len__(self) -> int:
        return len(self.list_price)


def guarded(rows: PricingRows, raw_prices: np.ndarray) -> GuardedPrices:
    """Apply the default guardrails (always last, as the product does)."""
    return apply_guardrails(GUARDRAILS, prices=raw_prices, list_price=rows.list_price, unit_cost=rows.unit_cost)


def demand_prices(rows: PricingRows, mu: np.ndarray, scale: np.ndarray) -> GuardedPrices:
    """Profit-maximising prices for a demand curve (mu, s) in list-price units, inside the guardrails."""
    lower, upper = price_bounds(GUARDRAILS, list_price=rows.list_price, unit_cost=rows.unit_cost)
    raw = optimal_prices(mu=mu, scale=scale, list_price=rows.list_price, unit_cost=rows.unit_cost,
                         lower=lower, upper=upper)
    return guarded(rows, raw)


def uniform_prices(rows: PricingRows, *, mu: np.ndarray | None = None, scale: np.ndarray | None = None) -> GuardedPrices:
    """One price per product maximising expected profit over all its rows (to a cent) under (mu, s), default the truth."""
    mu = rows.true_mu if mu is None else mu
    scale = rows.true_s if scale is None else scale
    lower, upper = price_bounds(GUARDRAILS, list_price=rows.list_price, unit_cost=rows.unit_cost)
    out = np.empty(len(rows))
    for pid in np.unique(rows.product_id):
        idx = np.flatnonzero(rows.product_id == pid)
        lo, hi = float(lower[idx].max()), float(upper[idx].min())
        coarse = np.linspace(lo, hi, UNIFORM_GRID)
        best = coarse[np.argmax(_total_profit(rows, idx, coarse, mu, scale))]
        step = (hi - lo) / (UNIFORM_GRID - 1)
        cents = np.arange(np.ceil(max(lo, best - step) * 100), np.floor(min(hi, best + step) * 100) + 1) / 100.0
        fine = np.concatenate([cents, [best]])
        out[idx] = fine[np.argmax(_total_profit(rows, idx, fine, mu, scale))]
    return guarded(rows, out)


def _total_profit(rows: PricingRows, idx: np.ndarray, candidates: np.ndarray, mu: np.ndarray, scale: np.ndarray
                  ) -> np.ndarray:
    """Expected profit under (mu, s) summed over rows `idx` for each candidate price."""
    r, c = rows.list_price[idx][:, None], rows.unit_cost[idx][:, None]
    p = candidates[None, :]
    prob = expit((mu[idx][:, None] - p / r) / scale[idx][:, None])
    result: np.ndarray = ((p - c) * prob).sum(axis=0)
    return result


def outcomes(rows: PricingRows, prices: GuardedPrices, mask: np.ndarray | None = None) -> dict[str, float]:
    """Expected profit, revenue, conversion, surplus and guardrail figures of prices under the truth."""
    m = np.ones(len(rows), bool) if mask is None else mask
    p, r, c = prices.price[m], rows.list_price[m], rows.unit_cost[m]
    z = (rows.true_mu[m] - p / r) / rows.true_s[m]
    prob = expit(z)
    surplus = r * rows.true_s[m] * np.logaddexp(0.0, z)
    buys = float(prob.sum())
    return {
        "offers": int(m.sum()),
        "profit": float(((p - c) * prob).sum()),
        "revenue": float((p * prob).sum()),
        "expected_purchases": buys,
        "conversion": buys / max(int(m.sum()), 1),
        "consumer_surplus": float(surplus.sum()),
        "at_guardrail": float(np.mean(prices.bound[m] != "none")) if m.any() else float("nan"),
        "buyers_below_list": float((prob * (p < r - 1e-9)).sum() / buys) if buys > 0 else float("nan"),
        "mean_price_to_list": float(np.mean(p / r)) if m.any() else float("nan"),
    }


def captured_share(profit: float, *, uniform: float, oracle: float) -> float:
    """Share of the uniform-to-oracle profit gap an approach captures."""
    gap = oracle - uniform
    return float("nan") if gap <= 0 else (profit - uniform) / gap
