"""The shop's Flower ClientApp: local DP-SGD training and held-out evaluation on its own data."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from client.storage import ShopPaths, load_test, load_train
from client.train import DPConfig, train_round
from demand.examples import CustomerExamples
from demand.model import DemandModel
from demand.training import evaluate, fit
from fedprice.appconfig import resolve
from fedprice.errors import BudgetExhaustedError, ConfigError, FedpriceError
from privacy.accounting import delta_for

log = logging.getLogger(__name__)
app = ClientApp()
BUDGET_EXHAUSTED = 4001
SHOP_FAILED = 4002


def shop_paths(context: Context, cfg: dict[str, Any]) -> ShopPaths:
    """Which shop this node is: `shop-id`/`data-dir` from node_config (deployment) or the simulation map."""
    nc = context.node_config
    if "shop-id" in nc:
        shop_id = str(nc["shop-id"])
        root = Path(str(nc.get("data-dir", Path(cfg["shops-dir"]) / shop_id)))
        return ShopPaths(shop_id, root)
    shops_dir = Path(cfg["shops-dir"])
    shops = [s for s in str(cfg["shops"]).split(",") if s] or sorted(p.name for p in shops_dir.iterdir() if p.is_dir())
    shop_id = shops[int(nc["partition-id"])]  # simulation only: one virtual SuperNode per shop
    return ShopPaths(shop_id, shops_dir / shop_id)


def shop_budget(context: Context, cfg: dict[str, Any], shop_id: str) -> float | None:
    """The shop's own lifetime epsilon budget: its node_config `epsilon-budget`, else (simulation only)
    `shop-epsilon-budgets` = "shop=eps,…" from the run config, else None (keep the ledger's own)."""
    if "epsilon-budget" in context.node_config:
        return float(context.node_config["epsilon-budget"])
    pairs = dict(p.split("=", 1) for p in str(cfg.get("shop-epsilon-budgets", "")).split(",") if "=" in p)
    return float(pairs[shop_id]) if shop_id in pairs else None


def _train_reply(msg: Message, shop_id: str, state_dict: dict[str, Any], metrics: MetricRecord) -> Message:
    """The one train-reply schema (FedAvg needs the same keys from every shop): weights, metrics, shop id."""
    content = RecordDict({"arrays": ArrayRecord(state_dict), "metrics": metrics, "shop": ConfigRecord({"shop-id": shop_id})})
    return Message(content, reply_to=msg)


def _error(msg: Message, code: int, reason: str) -> Message:
    return Message(Error(code=code, reason=reason), reply_to=msg)


def dp_enabled(cfg: dict[str, Any]) -> bool:
    """The `dp-enabled` run-config switch (a TOML bool, or "true"/"false" as text)."""
    value = cfg.get("dp-enabled", True)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false", "1", "0"):
        raise ConfigError(f"run config dp-enabled must be true or false (got {value!r})")
    return text in ("true", "1")


def _train_without_dp(msg: Message, shop_id: str, examples: CustomerExamples, cfg: dict[str, Any]) -> Message:
    """The non-private baseline: plain local Adam epochs; the ledger records the round as unprotected (epsilon infinite)."""
    log.warning("shop %s: dp-enabled=false: training WITHOUT differential privacy (ledger now reports epsilon = inf)", shop_id)
    model = DemandModel()
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    server_round = int(msg.content.config_records["config"]["server-round"])  # type: ignore[arg-type]
    epochs, batch = int(cfg["local-epochs"]), int(cfg["batch-size"])
    losses = fit(model, examples, epochs=epochs, lr=float(cfg["learning-rate"]), batch_size=batch,
                 seed=int(cfg["seed"]) * 1000 + server_round)
    metrics = MetricRecord({
        "num-examples": len(examples), "train-loss": losses[-1], "epsilon": math.inf, "delta": 0.0, "sigma": 0.0,
        "sample-rate": min(batch / max(len(examples), 1), 1.0), "steps": math.ceil(len(examples) / batch) * epochs,
        "epsilon-budget": math.inf,
    })
    return _train_reply(msg, shop_id, model.state_dict(), metrics)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train on the shop's examples with DP-SGD, charge its ledger, reply with weights and figures."""
    cfg = resolve(context.run_config)
    paths = shop_paths(context, cfg)
    try:
        keyring = paths.keyring(create=False)
        examples = load_train(paths, keyring)
        store = paths.ledger_store(keyring)
        ledger = store.load(budget=shop_budget(context, cfg, paths.shop_id), delta=delta_for(len(examples)))
        if not dp_enabled(cfg):
            if "shop-id" in context.node_config and str(context.node_config.get("allow-non-private", "")).lower() != "true":
                reason = (f"shop {paths.shop_id}: refused to train without differential privacy (the run asked for "
                          "dp-enabled=false; a shop opts in only with node_config allow-non-private=true)")
                log.warning("%s", reason)
                return _error(msg, SHOP_FAILED, reason)
            # the shop's ledger must say so: from now on its epsilon is infinite
            ledger.record_unprotected(run_id=str(msg.metadata.run_id),
                                      server_round=int(msg.content.config_records["config"]["server-round"]),  # type: ignore[arg-type]
                                      reason="dp-enabled=false: weights released without DP")
            store.save(ledger)
            return _train_without_dp(msg, paths.shop_id, examples, cfg)
        model = DemandModel()
        model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
        server_round = int(msg.content.config_records["config"]["server-round"])  # type: ignore[arg-type]
        run_id = str(msg.metadata.run_id)
        try:
            result = train_round(
                model, examples, ledger, run_id=run_id, server_round=server_round,
                rounds_total=int(cfg["num-server-rounds"]),
                config=DPConfig(local_epochs=int(cfg["local-epochs"]), batch_size=int(cfg["batch-size"]),
                                learning_rate=float(cfg["learning-rate"]), clipping_norm=float(cfg["clipping-norm"])),
                seed=int(cfg["seed"]) * 1000 + server_round,
                plan_target=float(cfg["epsilon-budget"]),
            )
        except BudgetExhaustedError as exc:
            ledger.refuse(run_id=run_id, server_round=server_round, reason=str(exc))
            store.save(ledger)
            log.warning("%s", exc)
            return _error(msg, BUDGET_EXHAUSTED, str(exc))
        store.save(ledger)
    except FedpriceError as exc:
        log.error("shop %s: %s", paths.shop_id, exc)
        return _error(msg, SHOP_FAILED, f"shop {paths.shop_id}: {exc}")
    metrics = MetricRecord({
        "num-examples": result.num_examples,
        "train-loss": result.train_loss,
        "epsilon": result.epsilon,
        "delta": result.delta,
        "sigma": result.sigma,
        "sample-rate": result.sample_rate,
        "steps": result.steps,
        "epsilon-budget": ledger.budget,
    })
    return _train_reply(msg, paths.shop_id, result.state_dict, metrics)


@app.evaluate()
def evaluate_model(msg: Message, context: Context) -> Message:
    """Score the global model on the shop's held-out last month."""
    cfg = resolve(context.run_config)
    paths = shop_paths(context, cfg)
    try:
        rows = load_test(paths, paths.keyring(create=False))
    except FedpriceError as exc:
        return _error(msg, SHOP_FAILED, f"shop {paths.shop_id}: {exc}")
    model = DemandModel()
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    m = evaluate(model, rows)
    metrics = MetricRecord({"num-examples": len(rows), "log-loss": m["log_loss"], "auc": m["auc"],
                            "calibration-error": m["calibration_error"]})
    return Message(RecordDict({"metrics": metrics, "shop": ConfigRecord({"shop-id": paths.shop_id})}), reply_to=msg)
