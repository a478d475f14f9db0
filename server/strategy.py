"""FedAvg that keeps a per-shop record of every round: epsilon spent, refusals, held-out metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAvg

log = logging.getLogger("fedprice.federation")


def _shop_of(msg: Message) -> str:
    try:
        return str(msg.content["shop"]["shop-id"])
    except (KeyError, TypeError, AttributeError):
        return f"node-{msg.metadata.src_node_id}"


class ShopFedAvg(FedAvg):
    """FedAvg weighted by customers; logs each shop's cumulative epsilon as the round closes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.train_history: dict[int, dict[str, dict[str, Any]]] = {}
        self.eval_history: dict[int, dict[str, dict[str, float]]] = {}
        self.failures: dict[int, list[str]] = {}

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Record per-shop figures (and refusals), then aggregate as FedAvg does."""
        replies = list(replies)
        per_shop: dict[str, dict[str, Any]] = {}
        for msg in replies:
            if msg.has_error():
                reason = str(msg.error.reason)
                self.failures.setdefault(server_round, []).append(reason)
                log.warning("round %d: a shop did not train: %s", server_round, reason)
                continue
            per_shop[_shop_of(msg)] = {k: float(v) for k, v in msg.content["metrics"].items()}  # type: ignore[arg-type]
        self.train_history[server_round] = per_shop
        line = "  ".join(
            f"{shop}: eps={m['epsilon']:.2f}/{m['epsilon-budget']:.1f} sigma={m['sigma']:.2f}"
            for shop, m in sorted(per_shop.items())
        )
        log.info("round %d: %d shops trained | cumulative epsilon  %s", server_round, len(per_shop), line)
        return super().aggregate_train(server_round, replies)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Record per-shop held-out metrics, then aggregate (weighted by held-out rows)."""
        replies = list(replies)
        self.eval_history[server_round] = {
            _shop_of(m): {k: float(v) for k, v in m.content["metrics"].items()}  # type: ignore[arg-type]
            for m in replies if not m.has_error()
        }
        agg = super().aggregate_evaluate(server_round, replies)
        if agg is not None:
            log.info("round %d: held-out log-loss %.4f  AUC %.4f (weighted over shops)",
                     server_round, float(agg["log-loss"]), float(agg["auc"]))  # type: ignore[arg-type]
        return agg
