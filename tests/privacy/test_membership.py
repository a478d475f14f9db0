"""Membership inference: the loss-threshold attack beats an overfit model and fails against DP-SGD at epsilon <= 1."""

from __future__ import annotations

import math

import numpy as np
import pytest

from privacy.membership import attack_advantage, attack_auc, overfit_experiment

SEEDS = (0, 1, 2)


def test_auc_and_advantage_of_known_score_sets() -> None:
    assert attack_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert attack_auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert attack_auc(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5  # ties count half
    assert attack_advantage(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0


def test_the_attack_breaks_an_overfit_model_without_dp() -> None:
    for seed in SEEDS:
        res = overfit_experiment(target_epsilon=None, seed=seed)
        assert res.train_mse < 0.1 * res.test_mse  # deliberately overfit
        assert res.auc >= 0.9, f"seed {seed}: attack AUC {res.auc:.3f}"


@pytest.mark.parametrize("seed", SEEDS)
def test_dp_sgd_at_epsilon_1_defeats_the_attack(seed: int) -> None:
    res = overfit_experiment(target_epsilon=1.0, seed=seed)
    assert res.epsilon is not None and res.epsilon <= 1.0  # the accountant's epsilon over every step taken
    assert res.auc <= 0.6, f"seed {seed}: attack AUC {res.auc:.3f} against DP at epsilon {res.epsilon:.3f}"
    delta = 1.0 / (10 * 200)
    bound = (math.exp(res.epsilon) - 1 + 2 * delta) / (math.exp(res.epsilon) + 1)  # (eps, delta)-DP advantage bound
    assert res.advantage <= bound
