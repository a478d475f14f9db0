"""One scored approach: its prices, their outcomes under the truth, and its held-out prediction quality."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from demand.guardrails import GuardedPrices
from demand.metrics import summarise
from demand.model import DemandModel, buy_probability
from simulation.evaldata import EvalData
from simulation.rounds import FederatedRun
from simulation.scorecard import captured_share, demand_prices, outcomes


@dataclass(eq=False)
class Scored:
    """An approach's prices and figures; `curves` is its (mu, s) per pricing row in list-price units, if it has one."""

    name: str
    kind: str  # "baseline", "learned", "federated", "oracle" or "diagnostic"
    prices: GuardedPrices
    outcome: dict[str, float]
    held_out: dict[str, float] | None
    curves: tuple[np.ndarray, np.ndarray] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    captured: float = math.nan

    def summary(self) -> dict[str, Any]:
        """JSON-able figures (no per-customer data)."""
        return {"name": self.name, "kind": self.kind, "captured_share": self.captured, **self.outcome,
                "held_out": self.held_out, **self.extra}


def held_out_metrics(data: EvalData, prob: np.ndarray | None) -> dict[str, float] | None:
    """Log-loss, AUC and calibration error of predicted purchase probabilities on the held-out offers."""
    if prob is None:
        return None
    m = summarise(data.held_out.bought, prob)
    return {k: m[k] for k in ("log_loss", "auc", "calibration_error", "mean_predicted", "base_rate")}


def score(data: EvalData, name: str, kind: str, prices: GuardedPrices, *, held_out_p: np.ndarray | None,
          curves: tuple[np.ndarray, np.ndarray] | None = None, **extra: Any) -> Scored:
    """Score prices under the truth and held-out probabilities against the real outcomes."""
    return Scored(name=name, kind=kind, prices=prices, outcome=outcomes(data.rows, prices),
                  held_out=held_out_metrics(data, held_out_p), curves=curves, extra=dict(extra))


def score_model(data: EvalData, name: str, kind: str, model: DemandModel, **extra: Any) -> Scored:
    """Price every row with one model's demand curves and score it."""
    curves = data.model_curves(model)
    prob = buy_probability(model, data.held_out.x, data.held_out.price_ratio)
    return score(data, name, kind, demand_prices(data.rows, *curves), held_out_p=prob, curves=curves, **extra)


def score_per_shop(data: EvalData, name: str, models: dict[str, DemandModel], **extra: Any) -> Scored:
    """Price each shop's rows with that shop's own model."""
    mu, scale = np.empty(len(data.shop)), np.empty(len(data.shop))
    prob = np.empty(len(data.held_out))
    for shop, model in models.items():
        rows, held = data.shop == shop, data.held_out_shop == shop
        mu[rows], scale[rows] = data.model_curves(model, rows)
        prob[held] = buy_probability(model, data.held_out.x[held], data.held_out.price_ratio[held])
    return score(data, name, "learned", demand_prices(data.rows, mu, scale), held_out_p=prob, curves=(mu, scale),
                 **extra)


def fill_captured(results: list[Scored], *, uniform: Scored, oracle: Scored) -> None:
    """Set every approach's share of the uniform-to-oracle profit gap."""
    for r in results:
        r.captured = captured_share(r.outcome["profit"], uniform=uniform.outcome["profit"],
                                    oracle=oracle.outcome["profit"])


def score_federated(data: EvalData, name: str, run: FederatedRun, epsilon: float | None) -> Scored:
    """Score a federated run's final model, with its privacy figures (each setting ran on fresh shop copies)."""
    per_shop = run.manifest["privacy"]["per_shop"]
    return score_model(
        data, name, "federated", run.model, epsilon_target=epsilon,
        epsilon_per_shop={s: v.get("epsilon") for s, v in sorted(per_shop.items())},
        rounds_completed=run.manifest.get("rounds_completed"), seconds=round(run.seconds, 1),
        ledgers_written=run.ledgers_written, model_version=run.manifest.get("version"),
    )


def profit_by_round(data: EvalData, run: FederatedRun, uniform: float, oracle: float) -> list[dict[str, float]]:
    """Expected profit and captured share of the global model after every round."""
    out = []
    for k, model in enumerate(run.round_models, start=1):
        profit = outcomes(data.rows, demand_prices(data.rows, *data.model_curves(model)))["profit"]
        out.append({"round": k, "profit": profit, "captured_share": captured_share(profit, uniform=uniform, oracle=oracle)})
    return out
