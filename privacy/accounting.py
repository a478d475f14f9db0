"""Pure DP-SGD accounting maths (Opacus RDP): epsilon of a history and noise for a budget."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

from opacus.accountants import RDPAccountant

from fedprice.errors import BudgetExhaustedError

Step = tuple[float, float, int]  # (noise multiplier sigma, sample rate q, number of steps)
# Beyond this noise multiplier an update is noise, not learning: a budget that needs more is spent.
MAX_SIGMA = 50.0


def epsilon(history: Sequence[Step], *, delta: float) -> float:
    """Epsilon at `delta` after composing every (sigma, q, steps) block of `history` (RDP)."""
    if not history:
        return 0.0
    acc = RDPAccountant()
    acc.history = [(float(s), float(q), int(n)) for s, q, n in history]
    with warnings.catch_warnings():
        # At extreme sigma the optimal RDP order is at the edge of the grid: the bound is still valid.
        warnings.filterwarnings("ignore", message="Optimal order is the (largest|smallest) alpha")
        return float(acc.get_epsilon(delta))


def delta_for(n_customers: int) -> float:
    """The delta rule: min(1e-5, 1 / (10 * customers))."""
    return min(1e-5, 1.0 / (10.0 * max(n_customers, 1)))


def noise_for_budget(
    *, history: Sequence[Step], sample_rate: float, steps: int, delta: float, budget: float, tolerance: float = 0.005
) -> float:
    """Smallest sigma (to a tolerance) such that history + `steps` more steps stays within `budget`.

    Raises BudgetExhaustedError when even a huge sigma would overshoot.
    """
    if steps <= 0:
        raise ValueError("steps must be positive")
    spent = epsilon(history, delta=delta)

    def eps_at(sigma: float) -> float:
        return epsilon([*history, (sigma, sample_rate, steps)], delta=delta)

    if spent >= budget or eps_at(MAX_SIGMA) > budget:
        raise BudgetExhaustedError(
            f"privacy budget exhausted: spent epsilon={spent:.3f} of {budget:.3f}; "
            f"{steps} more steps at q={sample_rate:.4f} do not fit even at noise multiplier {MAX_SIGMA:g}"
        )
    lo, hi = 0.05, 1.0
    while eps_at(hi) > budget:
        lo, hi = hi, min(hi * 2, MAX_SIGMA)  # terminates: MAX_SIGMA fits (checked above)
    if eps_at(lo) <= budget:
        return lo
    while hi - lo > tolerance * max(lo, 0.1):
        mid = math.sqrt(lo * hi)
        if eps_at(mid) > budget:
            lo = mid
        else:
            hi = mid
    return hi
