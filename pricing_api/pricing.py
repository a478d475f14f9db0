"""The pricing core: demand model -> optimal price -> guardrails, vectorised over a flat batch of items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from demand.guardrails import Guardrails, apply_guardrails, infeasible, price_bounds
from demand.optimiser import optimal_prices, purchase_probability

Array = NDArray[np.float64]


@dataclass(frozen=True)
class ItemProblem:
    """Why one item cannot be priced: its flat index, the field at fault and a message."""

    index: int
    field: str
    message: str


class InfeasibleItemsError(ValueError):
    """Some items have no price that satisfies every guardrail."""

    def __init__(self, problems: list[ItemProblem]) -> None:
        super().__init__(f"{len(problems)} items cannot be priced inside their guardrails")
        self.problems = problems


@dataclass(frozen=True, eq=False)
class PricedItems:
    """Per-item results, aligned with the input arrays."""

    price: Array
    guardrail: NDArray[np.str_]
    lower: Array
    upper: Array
    reused: NDArray[np.bool_]  # the price is an earlier quote's, kept for consistency


def _describe(g: Guardrails, r: float, c: float, comp: float, lower: float, upper: float, index: int) -> ItemProblem:
    floor = c * (1.0 + g.min_margin)
    top = g.band_high * r
    if floor > top:
        return ItemProblem(index, "unit_cost", f"unit_cost {c:g} with minimum margin {g.min_margin:g} needs a price of "
                                               f"at least {floor:.2f}, above the band's top {g.band_high:g} x list_price = "
                                               f"{top:.2f}")
    return ItemProblem(index, "competitor_price", f"competitor_price {comp:g} caps the price at {upper:.2f}, below the "
                                                  f"lowest allowed price {lower:.2f} (cost floor and band)")


def price_items(
    *,
    mu: Array,
    scale: Array,
    list_price: Array,
    unit_cost: Array,
    competitor_price: Array,
    rails: list[Guardrails],
    group: NDArray[np.intp],
    previous_price: Array | None = None,
    previous_guardrail: NDArray[np.str_] | None = None,
    same_inputs: NDArray[np.bool_] | None = None,
) -> PricedItems:
    """Optimal prices within each item's guardrails (group[i] indexes `rails`); NaN competitor = none given.

    Where `previous_price` is given (not NaN) and still lies inside today's guardrail interval it is kept
    (price consistency): as it was when `same_inputs` (same prices and guardrails), else re-checked by the guardrails.
    Raises InfeasibleItemsError listing every item whose guardrails leave no price.
    """
    n = len(list_price)
    price = np.empty(n)
    lower = np.empty(n)
    upper = np.empty(n)
    label = np.empty(n, dtype=object)
    reused = np.zeros(n, dtype=bool)
    problems: list[ItemProblem] = []
    single = len(rails) == 1
    for gi, g in enumerate(rails):
        idx = np.arange(n) if single else np.flatnonzero(group == gi)
        if len(idx) == 0:
            continue
        r, c, comp = list_price[idx], unit_cost[idx], competitor_price[idx]
        comp_arg = comp if g.competitor_cap is not None else None
        lo, hi = price_bounds(g, list_price=r, unit_cost=c, competitor_price=comp_arg)
        bad = infeasible(lo, hi)
        if bad.any():
            problems.extend(_describe(g, float(r[j]), float(c[j]), float(comp[j]), float(lo[j]), float(hi[j]), int(idx[j]))
                            for j in np.flatnonzero(bad))
            continue
        best = optimal_prices(mu=mu[idx], scale=scale[idx], list_price=r, unit_cost=c, lower=lo, upper=np.maximum(hi, lo))
        guarded = apply_guardrails(g, prices=best, list_price=r, unit_cost=c, competitor_price=comp_arg)
        p, lab = guarded.price, guarded.bound.astype(object)
        if previous_price is not None:
            prev = previous_price[idx]
            keep = ~np.isnan(prev) & (prev >= guarded.lower - 1e-9) & (prev <= guarded.upper + 1e-9)
            if keep.any():
                p = p.copy()
                same = keep & (same_inputs[idx] if same_inputs is not None else False)
                if same.any():  # identical inputs and guardrails: the earlier quote stands as it was
                    p[same] = prev[same]
                    lab[same] = (previous_guardrail[idx][same] if previous_guardrail is not None else "none")
                changed = np.flatnonzero(keep & ~same)
                if len(changed):  # inputs moved but the old price is still allowed: re-check it through the guardrails
                    again = apply_guardrails(g, prices=prev[changed], list_price=r[changed], unit_cost=c[changed],
                                             competitor_price=None if comp_arg is None else comp_arg[changed])
                    p[changed], lab[changed] = again.price, again.bound
                reused[idx[keep]] = True
        price[idx], lower[idx], upper[idx], label[idx] = p, guarded.lower, guarded.upper, lab
    if problems:
        raise InfeasibleItemsError(sorted(problems, key=lambda p: p.index))
    return PricedItems(price, label.astype(str), lower, upper, reused)


def outcomes(*, mu: Array, scale: Array, price: Array, list_price: Array, unit_cost: Array) -> tuple[Array, Array]:
    """(P(buy), expected margin (price - cost) * P(buy)) at the final prices."""
    prob = purchase_probability(mu=mu, scale=scale, price=price, list_price=list_price)
    return prob, (price - unit_cost) * prob
