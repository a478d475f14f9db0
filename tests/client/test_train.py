"""Local DP-SGD: loss falls on a seeded shop, epsilon composes across rounds, the budget is enforced."""

import pytest
import torch

from client.storage import load_test, load_train
from client.train import DPConfig, train_round
from demand.model import DemandModel
from demand.training import evaluate
from fedprice.errors import BudgetExhaustedError
from privacy.accounting import delta_for
from privacy.ledger import PrivacyLedger


def test_dp_rounds_learn_and_spend_cumulative_epsilon_within_budget(prepared) -> None:  # type: ignore[no-untyped-def]
    paths, _ = prepared["S1"]
    ring = paths.keyring(create=False)
    train, test = load_train(paths, ring), load_test(paths, ring)
    ledger = PrivacyLedger(shop_id="S1", budget=8.0, delta=delta_for(len(train)))
    model = DemandModel()
    torch.manual_seed(0)
    before = evaluate(model, test)["log_loss"]
    eps = []
    for rnd in (1, 2, 3):
        res = train_round(model, train, ledger, run_id="r", server_round=rnd, rounds_total=3,
                          config=DPConfig(batch_size=32, learning_rate=0.02), seed=rnd)
        model.load_state_dict(res.state_dict)  # keys without Opacus's _module. prefix
        eps.append(res.epsilon)
    assert eps[0] < eps[1] < eps[2] <= 8.0 + 1e-6
    assert eps[2] > 7.0  # the plan spends (nearly) the whole budget over the planned rounds
    assert evaluate(model, test)["log_loss"] < before
    assert len(ledger.entries) == 3 and all(e.poisson_sampling for e in ledger.entries)


def test_a_shop_budget_below_the_plan_stops_training_at_the_budget(prepared) -> None:  # type: ignore[no-untyped-def]
    paths, _ = prepared["S1"]
    train = load_train(paths, paths.keyring(create=False))
    ledger = PrivacyLedger(shop_id="S1", budget=1.0, delta=delta_for(len(train)))
    model = DemandModel()
    cfg = DPConfig(batch_size=32)
    trained = 0
    with pytest.raises(BudgetExhaustedError, match="budget exhausted: the next round would reach"):
        for rnd in range(1, 6):  # the federation plans 5 rounds for epsilon 3; the shop allows 1
            train_round(model, train, ledger, run_id="a", server_round=rnd, rounds_total=5, config=cfg, seed=rnd,
                        plan_target=3.0)
            trained += 1
    assert trained < 5
    assert ledger.epsilon() <= 1.0
    assert len(ledger.entries) == trained
