"""The non-federated comparators, trained in the evaluator's own process on the shops' prepared examples.

- the seed article's approach: a linear regression of the price paid (relative to the reference
  price) on the features of purchased offers, whose prediction is charged as the price;
- each shop alone and centralised (pooled) training: the product's demand model and loss, non-private.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from client.storage import ShopPaths, load_train
from demand.examples import CustomerExamples
from demand.model import DemandModel
from demand.training import fit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """Non-private training of the comparators (fixed in advance, not tuned on the evaluation)."""

    # Chosen by held-out log-loss on the default synthetic market's held-out offers (8 epochs at 3e-3: 0.2813;
    # 40 at 1e-3: 0.2811; 80 at 1e-3: 0.2819), not by the captured share.
    epochs: int = 40
    learning_rate: float = 1e-3
    batch_size: int = 64
    seed: int = 7


def load_shop_examples(shops: list[ShopPaths]) -> dict[str, CustomerExamples]:
    """Each shop's decrypted training examples (the evaluator sees every shop; no real party could)."""
    return {p.shop_id: load_train(p, p.keyring(create=False)) for p in shops}


def pooled(examples: list[CustomerExamples]) -> CustomerExamples:
    """Several shops' customers in one set (what no real shop may do)."""
    return CustomerExamples.concat(examples)


def train_demand_model(examples: CustomerExamples, settings: TrainSettings, *, epochs: int | None = None) -> DemandModel:
    """The product's demand model trained without privacy on `examples`."""
    torch.manual_seed(settings.seed)
    model = DemandModel()
    losses = fit(model, examples, epochs=settings.epochs if epochs is None else epochs, lr=settings.learning_rate,
                 batch_size=settings.batch_size, seed=settings.seed)
    log.info("trained on %d customers: loss %.4f -> %.4f", len(examples), losses[0], losses[-1])
    model.eval()
    return model


@dataclass(frozen=True)
class PriceRegression:
    """The seed article's model: price paid / reference price = x . coef + intercept."""

    coef: np.ndarray

    def predict_ratio(self, x: np.ndarray) -> np.ndarray:
        """Predicted price paid relative to the reference price."""
        result: np.ndarray = np.asarray(x, np.float64) @ self.coef[:-1] + self.coef[-1]
        return result


def fit_price_regression(examples: CustomerExamples) -> PriceRegression:
    """Least squares of the price paid on the features of purchased offers (weighted as the examples are)."""
    rows = examples.flat()
    bought = rows.bought > 0
    if not bought.any():
        raise ValueError("the price regression needs at least one purchase")
    x = np.column_stack([rows.x[bought].astype(np.float64), np.ones(int(bought.sum()))])
    w = np.sqrt(rows.weight[bought].astype(np.float64))
    coef, *_ = np.linalg.lstsq(x * w[:, None], rows.price_ratio[bought].astype(np.float64) * w, rcond=None)
    return PriceRegression(coef=coef)
