"""DP accounting: golden RDP values, composition across rounds, and noise that never overshoots its budget."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedprice.errors import BudgetExhaustedError
from privacy.accounting import MAX_SIGMA, delta_for, epsilon, noise_for_budget


def test_golden_values_of_privacy_facts() -> None:
    """RDP, sigma=1, q=0.05, delta=1e-4: 1.977 after 20 steps and 3.387 after 100 (privacy-facts.md section 2.2)."""
    assert epsilon([(1.0, 0.05, 20)], delta=1e-4) == pytest.approx(1.977, abs=5e-3)
    assert epsilon([(1.0, 0.05, 100)], delta=1e-4) == pytest.approx(3.387, abs=5e-3)


def test_five_rounds_compose_to_the_cumulative_value_not_the_per_round_one() -> None:
    per_round = [epsilon([(1.0, 0.05, 20)] * k, delta=1e-4) for k in range(1, 6)]
    assert per_round == sorted(per_round) and len(set(per_round)) == 5  # strictly increasing
    assert per_round[0] == pytest.approx(1.98, abs=5e-3) and per_round[-1] == pytest.approx(3.39, abs=5e-3)
    assert [round(e, 2) for e in per_round] == [1.98, 2.42, 2.78, 3.10, 3.39]


def test_delta_rule() -> None:
    assert delta_for(1_000) == 1e-5 and delta_for(50_000) == pytest.approx(2e-6) and delta_for(0) == 1e-5


@settings(max_examples=15, deadline=None)
@given(
    spent_steps=st.integers(0, 300),
    q=st.floats(0.005, 0.5),
    steps=st.integers(1, 500),
    budget=st.floats(0.2, 10.0),
    delta=st.sampled_from([1e-4, 1e-5, 1e-6]),
)
def test_noise_for_budget_never_overshoots_its_target(spent_steps: int, q: float, steps: int, budget: float,
                                                      delta: float) -> None:
    history = [(1.5, q, spent_steps)] if spent_steps else []
    try:
        sigma = noise_for_budget(history=history, sample_rate=q, steps=steps, delta=delta, budget=budget)
    except BudgetExhaustedError:
        at_max = epsilon([*history, (MAX_SIGMA, q, steps)], delta=delta)
        assert epsilon(history, delta=delta) >= budget or at_max > budget  # refused only when nothing fits
        return
    assert 0 < sigma <= MAX_SIGMA
    assert epsilon([*history, (sigma, q, steps)], delta=delta) <= budget
    if sigma > 0.06:  # and it is not wastefully noisy: 2 % less noise would overshoot
        assert epsilon([*history, (sigma * 0.98, q, steps)], delta=delta) > budget


def test_a_spent_budget_is_refused_with_a_clear_message() -> None:
    with pytest.raises(BudgetExhaustedError, match="privacy budget exhausted: spent epsilon=3.387 of 3.000"):
        noise_for_budget(history=[(1.0, 0.05, 100)], sample_rate=0.05, steps=20, delta=1e-4, budget=3.0)
