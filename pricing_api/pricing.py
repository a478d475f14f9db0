"""The pricing core: demand model -> optimal price -> guardrails, vectorised over a flat batch of items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from demand.guardrails import BOUND_LABELS, CheckedItems, Guardrails, check_items

Array = NDArray[np.float64]
_LABEL = np.dtype(f"U{max(map(len, BOUND_LABELS))}")  # holds every guardrail label


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
    probability: Array  # P(buy) at the final price
    margin: Array  # expected margin (price - unit_cost) * P(buy)


def _describe(items: CheckedItems, comp: Array, j: int, index: int) -> ItemProblem:
    g, r, c = items.guardrails, float(items.list_price[j]), float(items.unit_cost[j])
    lower, upper = float(items.lower[j]), float(items.upper[j])
    floor = c * (1.0 + g.min_margin)
    top = g.band_high * r
    if floor > top:
        return ItemProblem(index, "unit_cost", f"unit_cost {c:g} with minimum margin {g.min_margin:g} needs a price of "
                                               f"at least {floor:.2f}, above the band's top {g.band_high:g} x list_price = "
                                               f"{top:.2f}")
    return ItemProblem(index, "competitor_price", f"competitor_price {float(comp[j]):g} caps the price at {upper:.2f}, "
                                                  f"below the lowest allowed price {lower:.2f} (cost floor and band)")


def _consistent_prices(items: CheckedItems, prev: Array | None, prev_label: NDArray[np.str_] | None,
                       same_inputs: NDArray[np.bool_] | None) -> tuple[Array, NDArray[np.str_], NDArray[np.bool_], Array]:
    """Prices, labels, where an earlier price was kept, and upper bounds, for one guardrail set's feasible items.

    An earlier price still inside today's interval is kept: as it was where the inputs are the same, else
    re-checked by the guardrails. When every item repeats an earlier quote with the same inputs, the optimum
    (which would be discarded) is not computed.
    """
    upper = np.maximum(items.upper, items.lower)  # bounds crossing within tolerance collapse onto lower, as guarded
    if prev is None:
        guarded = items.optimal()
        return guarded.price, guarded.bound, np.zeros(len(upper), dtype=bool), upper
    keep = ~np.isnan(prev) & (prev >= items.lower - 1e-9) & (prev <= upper + 1e-9)
    same = keep & (same_inputs if same_inputs is not None else False)
    if same.all():  # identical inputs and guardrails: the earlier quotes stand as they were
        return prev, np.full(len(prev), "none", _LABEL) if prev_label is None else prev_label, keep, upper
    guarded = items.optimal()
    p, lab = guarded.price, guarded.bound
    if not keep.any():
        return p, lab, keep, upper
    p, lab = p.copy(), lab.astype(_LABEL)
    if same.any():
        p[same] = prev[same]
        lab[same] = prev_label[same] if prev_label is not None else "none"
    changed = np.flatnonzero(keep & ~same)
    if len(changed):  # inputs moved but the old price is still allowed: re-check it through the guardrails
        again = items.take(changed).guard(prev[changed])
        p[changed], lab[changed] = again.price, again.bound
    return p, lab, keep, upper


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
    Each guardrail set's items are validated once (`demand.guardrails.check_items`). Raises InfeasibleItemsError
    listing every item whose guardrails leave no price.
    """
    n = len(list_price)
    price, lower, upper, prob = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    label = np.empty(n, dtype=_LABEL)
    reused = np.zeros(n, dtype=bool)
    problems: list[ItemProblem] = []
    for gi, g in enumerate(rails):
        # one guardrail set (the usual case): a slice, so the arrays below are views, not copies
        idx: slice | NDArray[np.intp] = slice(None) if len(rails) == 1 else np.flatnonzero(group == gi)
        if not isinstance(idx, slice) and len(idx) == 0:
            continue
        comp = competitor_price[idx]
        items = check_items(g, mu=mu[idx], scale=scale[idx], list_price=list_price[idx], unit_cost=unit_cost[idx],
                            competitor_price=comp if g.competitor_cap is not None else None)
        bad = items.infeasible()
        if bad.any():
            at = np.arange(n)[idx]
            problems.extend(_describe(items, comp, j, int(at[j])) for j in np.flatnonzero(bad).tolist())
            continue
        p, lab, reused[idx], upper[idx] = _consistent_prices(
            items, None if previous_price is None else previous_price[idx],
            None if previous_guardrail is None else previous_guardrail[idx], None if same_inputs is None else same_inputs[idx])
        price[idx], lower[idx], label[idx] = p, items.lower, lab
        prob[idx] = items.probability(p)
    if problems:
        raise InfeasibleItemsError(sorted(problems, key=lambda p: p.index))
    return PricedItems(price, label, lower, upper, reused, prob, (price - unit_cost) * prob)
