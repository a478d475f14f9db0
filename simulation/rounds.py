"""Federated runs for the evaluation: fresh shop copies per setting, and the global model of every round.

The ServerApp publishes only its final model. To plot profit by round, the evaluator records the
aggregated weights each round returns, from inside its own process (Flower's simulation engine runs
the ServerApp in a thread of this process), by wrapping `ShopFedAvg.aggregate_train` for the length of
one run. The real ServerApp and ClientApp run unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from demand.model import DemandModel
from privacy.ledger import ANCHOR_FILE
from server import strategy as strategy_module

log = logging.getLogger(__name__)
SHOP_FILES = ("keys", "prepared")  # what a shop needs to train: keys and encrypted examples (no ledger)


@dataclass
class FederatedRun:
    """One federated setting's outcome: the final model, each round's global model, the manifest."""

    name: str
    model: DemandModel
    round_models: list[DemandModel]
    manifest: dict[str, Any]
    seconds: float
    ledgers_written: list[str] = field(default_factory=list)


@contextlib.contextmanager
def recorded_rounds() -> Iterator[list[dict[str, torch.Tensor]]]:
    """Collect the aggregated weights of every round of runs started inside the block."""
    original = strategy_module.ShopFedAvg.aggregate_train
    states: list[dict[str, torch.Tensor]] = []

    def recording(self: Any, server_round: int, replies: Any) -> Any:
        arrays, metrics = original(self, server_round, replies)
        if arrays is not None:
            states.append({k: v.clone() for k, v in arrays.to_torch_state_dict().items()})
        return arrays, metrics

    strategy_module.ShopFedAvg.aggregate_train = recording  # type: ignore[method-assign]
    try:
        yield states
    finally:
        strategy_module.ShopFedAvg.aggregate_train = original  # type: ignore[method-assign]


def fresh_shops(prepared_dir: Path, target: Path, shops: list[str]) -> Path:
    """Copy the prepared shops (keys and encrypted examples only, no ledger) into an empty directory."""
    trained = [s for s in shops
               if (prepared_dir / s / "ledger.enc").exists() or (prepared_dir / s / "keys" / ANCHOR_FILE).exists()]
    if trained:
        raise ValueError(f"prepared shops {', '.join(trained)} in {prepared_dir} have a privacy ledger already; "
                         "each setting must start from never-trained copies")
    if target.exists():
        shutil.rmtree(target)
    for shop in shops:
        for part in SHOP_FILES:
            shutil.copytree(prepared_dir / shop / part, target / shop / part)
    return target


def _model(state: dict[str, torch.Tensor]) -> DemandModel:
    model = DemandModel()
    model.load_state_dict(state)
    model.eval()
    return model


def run_federation(name: str, *, prepared_dir: Path, work_dir: Path, shops: list[str], rounds: int,
                   epsilon: float | None, extra: dict[str, Any] | None = None) -> FederatedRun:
    """Run the real Flower app over fresh copies of the shops: DP at `epsilon` per shop, or non-private if None."""
    from simulation.federation import simulate

    run_dir = work_dir / name
    shops_dir = fresh_shops(prepared_dir, run_dir / "shops", shops)
    overrides: dict[str, Any] = {
        "num-server-rounds": rounds, "shops-dir": str(shops_dir), "registry-dir": str(run_dir / "registry"),
        "central-dir": str(run_dir / "central"), "min-train-nodes": len(shops), **(extra or {}),
    }
    if epsilon is None:
        overrides["dp-enabled"] = False
    else:
        overrides.update({"dp-enabled": True, "epsilon-budget": epsilon,
                          "shop-epsilon-budgets": ",".join(f"{s}={epsilon}" for s in shops)})
    started = time.perf_counter()
    with recorded_rounds() as states:
        manifest = simulate(shops=shops, overrides=overrides)
    seconds = time.perf_counter() - started
    if len(states) != rounds:
        log.warning("%s: %d of %d rounds produced an aggregated model", name, len(states), rounds)
    ledgers = [s for s in shops if (shops_dir / s / "ledger.enc").exists()]
    for shop in shops:  # the copies' examples duplicate the prepared shops; keys and ledgers stay for inspection
        shutil.rmtree(shops_dir / shop / "prepared", ignore_errors=True)
    log.info("%s: %d rounds in %.0f s", name, len(states), seconds)
    return FederatedRun(name=name, model=_model(states[-1]), round_models=[_model(s) for s in states],
                        manifest=manifest, seconds=seconds, ledgers_written=ledgers)
