"""Comparators trained in the demo's own process: centralised non-private and popularity."""

from __future__ import annotations

import numpy as np
import torch

from client.storage import ShopPaths, load_test, load_train
from demand.examples import CustomerExamples, OfferRows
from demand.model import DemandModel
from demand.training import fit
from simulation import comparators


def pooled(shops: list[ShopPaths]) -> tuple[CustomerExamples, OfferRows]:
    """Every shop's training examples and held-out offers, pooled (what no real shop may do)."""
    trains, tests = [], []
    for paths in shops:
        ring = paths.keyring(create=False)
        trains.append(load_train(paths, ring))
        tests.append(load_test(paths, ring))
    train = comparators.pooled(trains)
    return train, OfferRows.concat(tests)


def centralised_model(train: CustomerExamples, *, epochs: int = 4, seed: int = 7) -> DemandModel:
    """The non-private ceiling: the same model trained on all shops' data pooled."""
    torch.manual_seed(seed)
    model = DemandModel()
    fit(model, train, epochs=epochs, lr=3e-3, batch_size=128, seed=seed)
    return model


def popularity_scores(test: OfferRows) -> np.ndarray:
    """Popularity baseline: each offer scored by its product's buy rate in the shop's history."""
    from demand.schema import FEATURES, UNKNOWN_BUY_RATE

    col = FEATURES.index("p_log_buy_rate")
    # invert the schema transform log(max(rate, floor)) / 5 + 1
    return np.maximum(np.exp((test.x[:, col].astype(np.float64) - 1.0) * 5.0), UNKNOWN_BUY_RATE)
