"""The central team's Flower ServerApp: FedAvg over shops, then publish the signed model."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import flwr
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord
from flwr.serverapp import Grid, ServerApp

from demand.model import DemandModel
from fedprice.appconfig import resolve
from fedprice.errors import FedpriceError
from privacy.report import LIMITATIONS as PRIVACY_LIMITATIONS
from server.registry import publish
from server.signing import load_or_create_signing_key
from server.strategy import ShopFedAvg

log = logging.getLogger("fedprice.federation")
app = ServerApp()


class FederationFailed(FedpriceError):
    """No round produced an aggregated model; the registry keeps its previous model."""

    exit_code = 70


class MinimumShopsFedAvg(ShopFedAvg):
    """ShopFedAvg that ends the run with a clear message when fewer than `min_train_nodes` shops connect or reply."""

    def __init__(self, *args: Any, wait_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wait_seconds = wait_seconds
        self.sent: dict[int, int] = {}

    def _connected(self, grid: Grid, need: int) -> int:
        """Wait up to `wait_seconds` for `need` connected shops; return how many are connected."""
        deadline = time.monotonic() + self.wait_seconds
        while (n := len(list(grid.get_node_ids()))) < need and time.monotonic() < deadline:
            time.sleep(1.0)
        return n

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        """Sample shops as FedAvg does, but give up after the round timeout instead of waiting forever."""
        if (n := self._connected(grid, self.min_available_nodes)) < self.min_available_nodes:
            raise FederationFailed(f"round {server_round}: only {n} shop(s) connected after {self.wait_seconds:.0f} s, "
                                   f"at least {self.min_available_nodes} are needed (min-train-nodes); "
                                   "the registry keeps its previous model")
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self.sent[server_round] = len(messages)
        return messages

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        """Skip this round's evaluation (rather than hang) when too few shops are connected."""
        if (n := self._connected(grid, self.min_available_nodes)) < self.min_available_nodes:
            log.warning("round %d: held-out evaluation skipped, only %d shop(s) connected", server_round, n)
            return []
        return super().configure_evaluate(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Aggregate when enough shops returned an update; otherwise end the run, keeping the registry's model."""
        replies = list(replies)
        ok = sum(1 for m in replies if not m.has_error())
        if ok < self.min_train_nodes:
            reasons = sorted({str(m.error.reason) for m in replies if m.has_error()})
            raise FederationFailed(
                f"round {server_round}: {ok} of {self.sent.get(server_round, len(replies))} shop(s) returned an update "
                f"within the round timeout, at least {self.min_train_nodes} are needed (min-train-nodes)"
                + (f"; errors: {' | '.join(reasons)}" if reasons else "") + "; the registry keeps its previous model")
        return super().aggregate_train(server_round, replies)


def _log_to_run_output() -> None:
    """Under `flwr run`, our INFO lines go to stdout, which Flower streams as the run's log (simulation CLIs set up their own)."""
    if logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(levelname)-8s: fedprice  %(message)s"))
    for name in ("fedprice", "server"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)


def build_manifest(strategy: ShopFedAvg, cfg: dict[str, Any], run_id: int, rounds_done: int) -> dict[str, Any]:
    """The manifest's content: rounds, per-shop privacy, held-out metrics, provenance."""
    shops: dict[str, dict[str, Any]] = {}
    for rnd in sorted(strategy.train_history):
        for shop, m in strategy.train_history[rnd].items():
            entry = shops.setdefault(shop, {"rounds_trained": 0})
            entry.update({"epsilon": round(m["epsilon"], 4), "delta": m["delta"], "sigma": round(m["sigma"], 4),
                          "sample_rate": round(m["sample-rate"], 6), "epsilon_budget": m["epsilon-budget"],
                          "num_examples": int(m["num-examples"])})
            entry["rounds_trained"] += 1
            entry["steps"] = entry.get("steps", 0) + int(m["steps"])
    last_eval = strategy.eval_history.get(max(strategy.eval_history, default=0), {})
    for shop, m in last_eval.items():
        shops.setdefault(shop, {"rounds_trained": 0})["held_out"] = {k: m[k] for k in ("log-loss", "auc", "num-examples")}
    return {
        "flower_run_id": str(run_id),
        "rounds_planned": int(cfg["num-server-rounds"]),
        "rounds_completed": rounds_done,
        "strategy": "FedAvg (weighted by customers)",
        "hidden": 64,
        "privacy": {
            "mechanism": "DP-SGD (Opacus) in each shop, Poisson sampling, flat clipping",
            "unit": "customer (one training example = one customer's offer rows)",
            "accountant": "RDP",
            "clipping_norm": float(cfg["clipping-norm"]),
            "per_shop": shops,
            "not_covered": "metrics sent by shops (num-examples, loss, AUC) are not protected by DP",
            "adjacency": "add/remove one customer (all of their offer rows) of one shop",
            "epsilon_scope": "per shop, lifetime: every round of every run in the shop's ledger, at the shop's delta",
            "multi_shop_customers": "a customer of several shops is covered at the sum of those shops' epsilon and delta",
            "limitations": list(PRIVACY_LIMITATIONS),
        },
        "held_out": {
            "per_round": {str(r): _mean_metrics(v) for r, v in sorted(strategy.eval_history.items())},
        },
        "refusals": {str(r): v for r, v in strategy.failures.items()},
        "flwr_version": flwr.__version__,
    }


def _mean_metrics(per_shop: dict[str, dict[str, float]]) -> dict[str, float]:
    total = sum(m["num-examples"] for m in per_shop.values()) or 1.0
    return {k: sum(m[k] * m["num-examples"] for m in per_shop.values()) / total for k in ("log-loss", "auc")}


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run FedAvg for the configured rounds and publish the signed, aggregated model."""
    _log_to_run_output()
    cfg = resolve(context.run_config)
    torch.manual_seed(int(cfg["seed"]))
    min_nodes = int(cfg["min-train-nodes"])
    strategy = MinimumShopsFedAvg(fraction_train=float(cfg["fraction-train"]), fraction_evaluate=1.0,
                                  min_train_nodes=min_nodes, min_evaluate_nodes=min_nodes, min_available_nodes=min_nodes,
                                  wait_seconds=float(cfg["round-timeout"]))
    rounds = int(cfg["num-server-rounds"])
    log.info("federation: %d rounds, epsilon budget %.2f per shop, at least %d shops per round",
             rounds, float(cfg["epsilon-budget"]), min_nodes)
    result = strategy.start(grid=grid, initial_arrays=ArrayRecord(DemandModel().state_dict()), num_rounds=rounds,
                            timeout=float(cfg["round-timeout"]),
                            train_config=ConfigRecord({"num-server-rounds": rounds}))
    rounds_done = sum(1 for r in strategy.train_history.values() if len(r) >= min_nodes)
    if rounds_done == 0:
        raise FederationFailed("no round had enough shops to aggregate; the registry keeps its previous model")
    manifest = build_manifest(strategy, cfg, context.run_id, rounds_done)
    key = load_or_create_signing_key(Path(cfg["central-dir"]) / "keys" / "signing.key")
    publish(Path(cfg["registry-dir"]), result.arrays.to_torch_state_dict(), manifest, key)
