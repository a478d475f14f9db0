"""Business guardrails applied after optimisation: cost floor, band around list price, competitor cap,
price endings. Pure and vectorised; a price never leaves its [lower, upper] interval.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from demand.optimiser import BOUND_TOLERANCE, checked_probability, clipped_optimum

Array = NDArray[np.float64]

# Which guardrail set the final price's bound; "none" when the optimum was inside the interval.
BOUND_LABELS: tuple[str, ...] = ("none", "cost_floor", "band_low", "band_high", "competitor_cap")
_NONE, _COST_FLOOR, _BAND_LOW, _BAND_HIGH, _COMPETITOR_CAP = range(5)

# How the final price was rounded. "cents_fallback": no price with the requested ending lies in the
# interval, so it was rounded to cents instead; "unrounded": not even a whole cent lies in it.
ROUNDING_LABELS: tuple[str, ...] = ("ending", "cents", "cents_fallback", "unrounded")
_ENDING, _CENTS, _CENTS_FALLBACK, _UNROUNDED = range(4)
_BOUND_ARRAY, _ROUNDING_ARRAY = np.asarray(BOUND_LABELS), np.asarray(ROUNDING_LABELS)  # indexed by the codes above


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Guardrails:
    """Guardrail settings; every price is kept in [lower, upper] as computed by `price_bounds`."""

    min_margin: float = 0.0  # floor = unit_cost * (1 + min_margin)
    band_low: float = 0.8  # price >= band_low * list_price
    band_high: float = 1.2  # price <= band_high * list_price
    competitor_cap: float | None = None  # price <= competitor_price * competitor_cap, when given
    price_ending: float | None = None  # e.g. 0.99 -> prices end in .99; None -> whole cents

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not (_is_real(self.min_margin) and self.min_margin >= 0):
            problems.append(f"min_margin must be a finite number >= 0 (got {self.min_margin!r})")
        if not (_is_real(self.band_low) and 0 < self.band_low <= 1):
            problems.append(f"band_low must satisfy 0 < band_low <= 1 (got {self.band_low!r})")
        if not (_is_real(self.band_high) and self.band_high >= 1):
            problems.append(f"band_high must be a finite number >= 1 (got {self.band_high!r})")
        if self.competitor_cap is not None and not (
            _is_real(self.competitor_cap) and self.competitor_cap > 0
        ):
            problems.append(
                f"competitor_cap must be a finite number > 0 or None (got {self.competitor_cap!r})"
            )
        if self.price_ending is not None and not (
            _is_real(self.price_ending)
            and 0 <= self.price_ending < 1
            and abs(self.price_ending * 100 - round(self.price_ending * 100)) < 1e-6
        ):
            problems.append(
                f"price_ending must be a whole number of cents in [0, 1) or None (got {self.price_ending!r})"
            )
        if problems:
            raise ValueError("invalid Guardrails: " + "; ".join(problems))


@dataclass(frozen=True, eq=False)
class GuardedPrices:
    """Final prices with the guardrail that bound each one and the interval it was kept in."""

    price: Array
    bound: NDArray[np.str_]  # values from BOUND_LABELS
    rounding: NDArray[np.str_]  # values from ROUNDING_LABELS
    lower: Array
    upper: Array


def _validated_inputs(
    *,
    list_price: ArrayLike,
    unit_cost: ArrayLike,
    competitor_price: ArrayLike | None,
    prices: ArrayLike | None = None,
) -> tuple[Array, Array, Array | None, Array | None]:
    """Broadcast float64 arrays, or one ValueError listing every problem."""
    problems: list[str] = []
    r = np.asarray(list_price, dtype=np.float64)
    c = np.asarray(unit_cost, dtype=np.float64)
    if not (np.isfinite(r) & (r > 0)).all():
        problems.append("list_price must be finite and > 0")
    if not (np.isfinite(c) & (c >= 0)).all():
        problems.append("unit_cost must be finite and >= 0")
    arrays = [r, c]
    comp = None
    if competitor_price is not None:
        comp = np.asarray(competitor_price, dtype=np.float64)
        given = ~np.isnan(comp)
        if not (np.isfinite(comp[given]) & (comp[given] > 0)).all():
            problems.append("competitor_price must be NaN (none given) or finite and > 0")
        arrays.append(comp)
    p = None
    if prices is not None:
        p = np.asarray(prices, dtype=np.float64)
        if not np.isfinite(p).all():
            problems.append("prices must be finite")
        arrays.append(p)
    if not problems and len({a.shape for a in arrays}) == 1:
        return r, c, comp, p  # one shape already: nothing to broadcast (broadcast_to costs microseconds per array)
    if not problems:
        try:
            shape = np.broadcast_shapes(*(a.shape for a in arrays))
        except ValueError:
            problems.append("shapes do not broadcast: " + ", ".join(str(a.shape) for a in arrays))
    if problems:
        raise ValueError("; ".join(problems))
    r, c = np.broadcast_to(r, shape), np.broadcast_to(c, shape)
    comp = None if comp is None else np.broadcast_to(comp, shape)
    p = None if p is None else np.broadcast_to(p, shape)
    return r, c, comp, p


def _bounds_with_sources(
    g: Guardrails, r: Array, c: Array, comp: Array | None
) -> tuple[Array, Array, NDArray[np.intp], NDArray[np.intp]]:
    floor = c * (1.0 + g.min_margin)
    band_low = g.band_low * r
    lower = np.maximum(floor, band_low)
    lower_source = np.where(floor >= band_low, _COST_FLOOR, _BAND_LOW)
    upper = g.band_high * r
    upper_source = np.full(upper.shape, _BAND_HIGH)
    if comp is not None and g.competitor_cap is not None:
        cap = np.where(np.isnan(comp), np.inf, comp * g.competitor_cap)
        upper_source = np.where(cap <= upper, _COMPETITOR_CAP, _BAND_HIGH)
        upper = np.minimum(upper, cap)
    return lower, upper, lower_source, upper_source


def price_bounds(
    g: Guardrails,
    *,
    list_price: ArrayLike,
    unit_cost: ArrayLike,
    competitor_price: ArrayLike | None = None,
) -> tuple[Array, Array]:
    """Return (lower, upper) = (max(cost floor, band bottom), min(band top, competitor cap))."""
    r, c, comp, _ = _validated_inputs(
        list_price=list_price, unit_cost=unit_cost, competitor_price=competitor_price
    )
    lower, upper, _, _ = _bounds_with_sources(g, r, c, comp)
    return lower, upper


def infeasible(lower: ArrayLike, upper: ArrayLike) -> NDArray[np.bool_]:
    """Return where no price satisfies every guardrail (lower > upper beyond rounding noise)."""
    lo, hi = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    result: NDArray[np.bool_] = lo > hi + BOUND_TOLERANCE
    return result


def _ceil_cents(value: Array) -> Array:
    """Smallest n with n/100 >= value, in floating point as the comparison will be made."""
    n = np.ceil(value * 100.0)
    n = np.where(n / 100.0 < value, n + 1.0, n)
    result: Array = np.where((n - 1.0) / 100.0 >= value, n - 1.0, n)
    return result


def _floor_cents(value: Array) -> Array:
    """Largest n with n/100 <= value, in floating point as the comparison will be made."""
    n = np.floor(value * 100.0)
    n = np.where(n / 100.0 > value, n - 1.0, n)
    result: Array = np.where((n + 1.0) / 100.0 <= value, n + 1.0, n)
    return result


def _describe_first(mask: NDArray[np.bool_]) -> str:
    first = np.unravel_index(int(np.flatnonzero(mask)[0]), mask.shape)
    return str(int(first[0])) if len(first) == 1 else str(tuple(int(i) for i in first))


def apply_guardrails(
    g: Guardrails,
    *,
    prices: ArrayLike,
    list_price: ArrayLike,
    unit_cost: ArrayLike,
    competitor_price: ArrayLike | None = None,
) -> GuardedPrices:
    """Clip prices into the guardrail interval and round them (ending or cents) without leaving it.

    Rounding picks the nearest price with the requested ending inside the interval (ties go to the one
    below); without one it rounds to the nearest whole cent inside; without one of those it keeps the
    clipped price. Raises ValueError if any element has no feasible price.
    """
    r, c, comp, p = _validated_inputs(
        list_price=list_price, unit_cost=unit_cost, competitor_price=competitor_price, prices=prices
    )
    assert p is not None
    lower, upper, lower_source, upper_source = _bounds_with_sources(g, r, c, comp)
    bad = infeasible(lower, upper)
    if bad.any():
        raise ValueError(
            f"no price satisfies the guardrails for {int(bad.sum())} of {bad.size} elements "
            f"(lower bound above upper bound); first at index {_describe_first(bad)}"
        )
    return _guarded(g, p, lower, upper, lower_source, upper_source)


def _guarded(
    g: Guardrails, p: Array, lower: Array, upper: Array, lower_source: NDArray[np.intp], upper_source: NDArray[np.intp]
) -> GuardedPrices:
    """Clip and round checked prices into feasible intervals (the work of `apply_guardrails` after its checks)."""
    # Bounds crossing by less than the tolerance collapse onto lower, which holds the cost floor.
    upper = np.maximum(upper, lower)
    clipped = np.minimum(np.maximum(p, lower), upper)
    source = np.where(p <= lower, lower_source, np.where(p >= upper, upper_source, _NONE))

    lo_c, hi_c = _ceil_cents(lower), _floor_cents(upper)
    has_cent = lo_c <= hi_c
    x = clipped * 100.0
    nearest_cent = np.clip(np.ceil(x - 0.5), lo_c, hi_c)  # ties to the cent below
    price = np.where(has_cent, nearest_cent / 100.0, clipped)
    if g.price_ending is None:
        rounding = np.where(has_cent, _CENTS, _UNROUNDED)
    else:
        ending = float(round(g.price_ending * 100))
        below = np.floor((x - ending) / 100.0) * 100.0 + ending
        above = below + 100.0
        below_ok = (below >= lo_c) & (below <= hi_c)
        above_ok = (above >= lo_c) & (above <= hi_c)
        take_below = below_ok & (~above_ok | (x - below <= above - x))
        has_ending = below_ok | above_ok
        price = np.where(has_ending, np.where(take_below, below, above) / 100.0, price)
        rounding = np.where(has_ending, _ENDING, np.where(has_cent, _CENTS_FALLBACK, _UNROUNDED))
    return GuardedPrices(
        price=price,
        bound=_BOUND_ARRAY[source],
        rounding=_ROUNDING_ARRAY[rounding],
        lower=lower,
        upper=upper,
    )


@dataclass(frozen=True, eq=False)
class CheckedItems:
    """Items validated once by `check_items`: float64 arrays of one shape and their guardrail interval.

    Its methods do what `optimal_prices`, `apply_guardrails` and `purchase_probability` do for these items,
    without checking the same arrays again.
    """

    guardrails: Guardrails
    mu: Array
    scale: Array
    list_price: Array
    unit_cost: Array
    lower: Array  # as `price_bounds` gives them
    upper: Array
    lower_source: NDArray[np.intp]
    upper_source: NDArray[np.intp]

    def infeasible(self) -> NDArray[np.bool_]:
        """Where no price satisfies every guardrail (see `infeasible`)."""
        return infeasible(self.lower, self.upper)

    def take(self, index: NDArray[np.intp]) -> CheckedItems:
        """The items at `index`."""
        return CheckedItems(self.guardrails, self.mu[index], self.scale[index], self.list_price[index],
                            self.unit_cost[index], self.lower[index], self.upper[index], self.lower_source[index],
                            self.upper_source[index])

    def optimal(self) -> GuardedPrices:
        """The margin-maximising prices inside the guardrails, rounded: `apply_guardrails(optimal_prices(...))`.

        Every item must be feasible (raises ValueError otherwise; `take` the feasible ones first).
        """
        self._require_feasible()
        best = clipped_optimum(self.mu, self.scale, self.list_price, self.unit_cost, self.lower,
                               np.maximum(self.upper, self.lower))
        return _guarded(self.guardrails, best, self.lower, self.upper, self.lower_source, self.upper_source)

    def guard(self, prices: Array) -> GuardedPrices:
        """`apply_guardrails` for these items at finite float64 `prices` of their shape (every item feasible)."""
        self._require_feasible()
        if not np.isfinite(prices).all():
            raise ValueError("prices must be finite")
        return _guarded(self.guardrails, prices, self.lower, self.upper, self.lower_source, self.upper_source)

    def probability(self, prices: Array) -> Array:
        """P(buy | price) at finite float64 `prices` of their shape, as `purchase_probability` gives it."""
        return checked_probability(self.mu, self.scale, prices, self.list_price)

    def _require_feasible(self) -> None:
        bad = self.infeasible()
        if bad.any():
            raise ValueError(f"no price satisfies the guardrails for {int(bad.sum())} of {bad.size} items")


def check_items(
    g: Guardrails,
    *,
    mu: ArrayLike,
    scale: ArrayLike,
    list_price: ArrayLike,
    unit_cost: ArrayLike,
    competitor_price: ArrayLike | None = None,
) -> CheckedItems:
    """Validate the items' demand and prices once (one ValueError listing every problem) and bound them."""
    problems = []
    try:
        r, c, comp, _ = _validated_inputs(list_price=list_price, unit_cost=unit_cost, competitor_price=competitor_price)
    except ValueError as exc:
        problems.append(str(exc))
    mu_a, scale_a = np.asarray(mu, dtype=np.float64), np.asarray(scale, dtype=np.float64)
    if not np.isfinite(mu_a).all():
        problems.append("mu must be finite")
    if not (np.isfinite(scale_a) & (scale_a > 0)).all():
        problems.append("scale must be finite and > 0")
    if not problems and not mu_a.shape == scale_a.shape == r.shape:
        problems.append(f"mu{mu_a.shape} and scale{scale_a.shape} must have the prices' shape {r.shape}")
    if problems:
        raise ValueError("; ".join(problems))
    lower, upper, lower_source, upper_source = _bounds_with_sources(g, r, c, comp)
    return CheckedItems(g, mu_a, scale_a, r, c, lower, upper, lower_source, upper_source)
