"""Local DP-SGD rounds charge one lifetime ledger: a shop restarted mid-run (a new process) keeps its epsilon,
which follows the golden RDP values; Poisson sampling is really used; a budget below the plan stops training."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from opacus import PrivacyEngine
from opacus.data_loader import DPDataLoader
from privacy_shops import copy_exports, prepare_copies

from client.storage import ShopPaths, load_train
from client.train import DPConfig, train_round
from demand.examples import CustomerExamples
from demand.model import DemandModel
from fedprice.errors import BudgetExhaustedError
from privacy.accounting import epsilon
from privacy.ledger import PrivacyLedger

STEPS = 20  # the first 20*B customers in batches of B: 20 batches a round, q = 1/20 = 0.05 (the golden setting)


def golden(examples: CustomerExamples) -> tuple[CustomerExamples, DPConfig]:
    """A whole number of batches of this shop's customers, so that q is exactly 0.05."""
    batch = len(examples) // STEPS
    n = batch * STEPS
    sub = CustomerExamples(x=examples.x[:n], price_ratio=examples.price_ratio[:n], bought=examples.bought[:n],
                           weight=examples.weight[:n])
    return sub, DPConfig(batch_size=batch)

RUN = "run-7"
PLANNED = 30  # rounds the federation plans for epsilon 3 in the budget test

ROUND_IN_NEW_PROCESS = textwrap.dedent("""
    import sys
    from pathlib import Path
    from client.storage import ShopPaths, load_train
    from client.train import DPConfig, train_round
    from demand.examples import CustomerExamples
    from demand.model import DemandModel
    paths = ShopPaths("S1", Path(sys.argv[1]))
    ring = paths.keyring(create=False)
    store = paths.ledger_store(ring)
    ledger = store.load()
    ex, batch = load_train(paths, ring), int(sys.argv[4])
    n = 20 * batch
    ex = CustomerExamples(x=ex.x[:n], price_ratio=ex.price_ratio[:n], bought=ex.bought[:n], weight=ex.weight[:n])
    train_round(DemandModel(), ex, ledger, run_id=sys.argv[2], server_round=int(sys.argv[3]),
                rounds_total=5, config=DPConfig(batch_size=batch), seed=3)
    store.save(ledger)
""")


@pytest.fixture()
def shop(market_dir: Path, tmp_path: Path) -> ShopPaths:
    copy_exports(market_dir, tmp_path / "shops", ["S1"])
    return prepare_copies(tmp_path / "shops", tmp_path / "fs.sqlite", ["S1"])["S1"]


def _round_in_this_process(paths: ShopPaths, rnd: int) -> None:
    ring = paths.keyring(create=False)  # fresh objects every round: nothing carried in memory
    store = paths.ledger_store(ring)
    ledger = store.load()
    examples, config = golden(load_train(paths, ring))
    train_round(DemandModel(), examples, ledger, run_id=RUN, server_round=rnd, rounds_total=5, config=config, seed=rnd)
    store.save(ledger)


def test_a_shop_restarted_mid_run_keeps_its_epsilon_which_matches_the_golden_values(shop: ShopPaths) -> None:
    store = shop.ledger_store()
    ledger = store.load(budget=5.0, delta=1e-4)
    ledger.plans[RUN] = 1.0  # this run was planned at sigma = 1 (privacy-facts golden setting)
    store.save(ledger)
    eps = []
    for rnd in range(1, 6):
        if rnd == 3:  # the shop's process restarts in the middle of the run
            batch = golden(load_train(shop, shop.keyring(create=False)))[1].batch_size
            out = subprocess.run([sys.executable, "-c", ROUND_IN_NEW_PROCESS, str(shop.root), RUN, "3", str(batch)],
                                 capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, out.stderr[-2000:]
        else:
            _round_in_this_process(shop, rnd)
        eps.append(shop.ledger_store().load().epsilon())
    assert all(a < b for a, b in zip(eps, eps[1:], strict=False))
    assert eps[0] == pytest.approx(1.977, abs=5e-3) and eps[-1] == pytest.approx(3.387, abs=5e-3)
    final = shop.ledger_store().load()
    assert [(e.server_round, e.sigma, e.sample_rate, e.steps) for e in final.entries] == [(r, 1.0, 0.05, 20) for r in range(1, 6)]
    assert sum(n for *_, n in final.history) == 100


def test_training_really_uses_poisson_sampling(shop: ShopPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    make_private = PrivacyEngine.make_private

    def spy(self: PrivacyEngine, **kwargs: Any) -> Any:
        out = make_private(self, **kwargs)
        seen.update(kwargs, loader=out[2])
        return out

    monkeypatch.setattr(PrivacyEngine, "make_private", spy)
    examples, config = golden(load_train(shop, shop.keyring(create=False)))
    ledger = PrivacyLedger(shop_id="S1", budget=8.0, delta=1e-5)
    train_round(DemandModel(), examples, ledger, run_id="p", server_round=1, rounds_total=1, config=config, seed=0)
    assert seen["poisson_sampling"] is True and isinstance(seen["loader"], DPDataLoader)
    sizes = [len(batch[0]) for _ in range(3) for batch in seen["loader"]]
    assert len(set(sizes)) > 3 and abs(sum(sizes) / len(sizes) - len(examples) / STEPS) < 3  # random sizes around q * N
    assert ledger.report()["poisson_sampling"] is True


def test_a_budget_of_1_with_a_plan_needing_3_stops_at_the_budget_and_says_so(shop: ShopPaths) -> None:
    ring = shop.keyring(create=False)
    examples = load_train(shop, ring)
    trained, refused = 0, ""
    for rnd in range(1, PLANNED + 1):  # the federation plans 30 rounds for epsilon 3; this shop allows 1
        store = shop.ledger_store(ring)
        ledger = store.load(budget=1.0, delta=1e-5)
        try:
            train_round(DemandModel(), examples, ledger, run_id="r", server_round=rnd, rounds_total=PLANNED,
                        config=DPConfig(batch_size=32), seed=rnd, plan_target=3.0)
            trained += 1
        except BudgetExhaustedError as exc:  # what the ClientApp does: record, save, reply 4001
            refused = str(exc)
            ledger.refuse(run_id="r", server_round=rnd, reason=refused)
        store.save(ledger)
        if refused:
            break
    final = shop.ledger_store().load()
    q, steps = final.entries[0].sample_rate, final.entries[0].steps
    assert epsilon([(final.plans["r"], q, steps * PLANNED)], delta=1e-5) == pytest.approx(3.0, abs=0.02)  # the plan
    assert 1 <= trained < PLANNED and len(final.entries) == trained
    assert final.epsilon() <= 1.0 + 1e-6
    assert refused.startswith("shop S1: budget exhausted: the next round would reach epsilon=")
    assert "> budget 1.000" in refused and final.refusals[0]["server_round"] == trained + 1
