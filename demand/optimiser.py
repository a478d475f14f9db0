"""The profit-maximising price under the willingness-to-pay demand model, vectorised and pure.

For one (customer, item) the demand model gives a location mu and a scale s > 0 in units of the
item's reference (list) price r, and P(buy | p) = sigmoid((mu - p/r) / s). With unit cost c the
expected margin is (p - c) * P(buy | p); in price ratios u = p/r and k = c/r that is r * f(u) with
f(u) = (u - k) * sigmoid((mu - u) / s).

Setting f'(u) = 0 gives u - k = s / (1 - P), whose solution is u* = k + s * (1 + W(exp(a))) with
a = (mu - k)/s - 1 and W the principal Lambert W. W(exp(a)) is the Wright omega function of a, which
scipy evaluates for real a without forming exp(a), so large or tiny arguments neither overflow nor
underflow into a warning.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, wrightomega

# Bounds closer than this (in currency units) count as touching rather than crossed.
BOUND_TOLERANCE = 1e-9

# Above this, a = (mu - k)/s - 1 only matters through s * log(W), which is ~ 0; capping keeps it finite.
_MAX_EXPONENT = 1e300

Array = NDArray[np.float64]


def _validated(
    arrays: dict[str, ArrayLike],
    *,
    positive: tuple[str, ...] = (),
    allow_infinite: tuple[str, ...] = (),
) -> list[Array]:
    """Return the arguments as broadcast float64 arrays, or raise one ValueError listing every problem."""
    converted: dict[str, Array] = {}
    problems: list[str] = []
    for name, value in arrays.items():
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            problems.append(f"{name} must be numeric")
            continue
        if name in allow_infinite:
            bad = np.isnan(arr)
            what = "not NaN"
        else:
            bad = ~np.isfinite(arr)
            what = "finite"
        if bad.any():
            problems.append(f"{name} must be {what} ({int(bad.sum())} bad values)")
        elif name in positive and not (arr > 0).all():
            problems.append(f"{name} must be > 0 ({int((arr <= 0).sum())} bad values)")
        converted[name] = arr
    if not problems:
        try:
            return list(np.broadcast_arrays(*converted.values()))
        except ValueError:
            shapes = ", ".join(f"{name}{arr.shape}" for name, arr in converted.items())
            problems.append(f"shapes do not broadcast: {shapes}")
    raise ValueError("; ".join(problems))


def _optimal_ratio(mu: Array, scale: Array, cost_ratio: Array) -> Array:
    """u* for already validated, broadcast arrays."""
    with np.errstate(over="ignore"):  # only for scale so small that the ratio overflows; capped below
        a = np.minimum((mu - cost_ratio) / scale - 1.0, _MAX_EXPONENT)
    w = wrightomega(a)
    # For w <= 1 use k + s(1 + w) directly; for w > 1 use the equivalent mu - s*log(w) (from
    # w + log w = a), which stays exact when a was capped or s*w would lose the scale.
    large = w > 1.0
    log_w = np.log(w, out=np.zeros_like(w), where=large)
    result: Array = np.where(large, mu - scale * log_w, cost_ratio + scale * (1.0 + w))
    return result


def unconstrained_optimal_ratio(*, mu: ArrayLike, scale: ArrayLike, cost_ratio: ArrayLike) -> Array:
    """Return u* = p*/r maximising (u - k) * sigmoid((mu - u)/s), with k = cost_ratio = c/r."""
    mu_a, scale_a, k_a = _validated({"mu": mu, "scale": scale, "cost_ratio": cost_ratio}, positive=("scale",))
    return _optimal_ratio(mu_a, scale_a, k_a)


def optimal_prices(
    *,
    mu: ArrayLike,
    scale: ArrayLike,
    list_price: ArrayLike,
    unit_cost: ArrayLike,
    lower: ArrayLike,
    upper: ArrayLike,
) -> Array:
    """Return the price in [lower, upper] maximising (p - unit_cost) * P(buy | p), element-wise.

    Clipping the unconstrained optimum is exact: f'(u) = P * (1 - (u - k)(1 - P)/s) and (u - k)(1 - P)
    is negative for u <= k and strictly increasing for u > k, so f' changes sign once, at u*, and f
    is unimodal on the whole real line. Bounds may be infinite (no bound on that side); a lower bound
    above the upper one by more than BOUND_TOLERANCE raises ValueError.
    """
    mu_a, scale_a, r_a, c_a, lo_a, hi_a = _validated(
        {
            "mu": mu,
            "scale": scale,
            "list_price": list_price,
            "unit_cost": unit_cost,
            "lower": lower,
            "upper": upper,
        },
        positive=("scale", "list_price"),
        allow_infinite=("lower", "upper"),
    )
    crossed = lo_a > hi_a + BOUND_TOLERANCE
    if crossed.any():
        raise ValueError(f"lower exceeds upper for {int(crossed.sum())} elements")
    return clipped_optimum(mu_a, scale_a, r_a, c_a, lo_a, hi_a)


def clipped_optimum(mu: Array, scale: Array, list_price: Array, unit_cost: Array, lower: Array, upper: Array) -> Array:
    """`optimal_prices` without its checks: for float64 arrays of one shape that a caller already validated."""
    price = list_price * _optimal_ratio(mu, scale, unit_cost / list_price)
    # minimum before maximum: where the bounds cross within tolerance, lower (the cost floor) wins.
    result: Array = np.maximum(np.minimum(price, upper), lower)
    return result


def purchase_probability(
    *, mu: ArrayLike, scale: ArrayLike, price: ArrayLike, list_price: ArrayLike
) -> Array:
    """Return P(buy | price) = sigmoid((mu - price/list_price) / scale), stable for any finite input."""
    mu_a, scale_a, p_a, r_a = _validated(
        {"mu": mu, "scale": scale, "price": price, "list_price": list_price},
        positive=("scale", "list_price"),
    )
    return checked_probability(mu_a, scale_a, p_a, r_a)


def checked_probability(mu: Array, scale: Array, price: Array, list_price: Array) -> Array:
    """`purchase_probability` without its checks: for float64 arrays that a caller already validated."""
    with np.errstate(over="ignore"):  # an infinite logit still gives an exact 0 or 1 from expit
        logit = (mu - price / list_price) / scale
    result: Array = expit(logit)
    return result


def expected_margin(
    *,
    mu: ArrayLike,
    scale: ArrayLike,
    price: ArrayLike,
    list_price: ArrayLike,
    unit_cost: ArrayLike,
) -> Array:
    """Return the expected margin (price - unit_cost) * P(buy | price) per element."""
    (c_a,) = _validated({"unit_cost": unit_cost})
    prob = purchase_probability(mu=mu, scale=scale, price=price, list_price=list_price)
    result: Array = (np.asarray(price, dtype=np.float64) - c_a) * prob
    return result
