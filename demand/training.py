"""Training loops shared by local DP-SGD, centralised baselines and tests (no I/O)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from demand.examples import CustomerExamples, OfferRows
from demand.metrics import summarise
from demand.model import DemandModel, buy_probability, customer_loss


def examples_dataset(ex: CustomerExamples) -> TensorDataset:
    """Customer examples as a torch dataset of (x, price ratio, bought, weight)."""
    return TensorDataset(
        torch.from_numpy(ex.x), torch.from_numpy(ex.price_ratio), torch.from_numpy(ex.bought), torch.from_numpy(ex.weight)
    )


def train_epoch(model: DemandModel, loader: DataLoader, optimizer: torch.optim.Optimizer) -> float:
    """One pass over `loader`; returns the mean per-customer loss. Empty (Poisson) batches are fine."""
    model.train()
    total, count = 0.0, 0
    for x, ratio, bought, weight in loader:
        optimizer.zero_grad(set_to_none=True)
        losses = customer_loss(model, x, ratio, bought, weight)
        loss = losses.mean() if len(losses) else losses.sum()
        loss.backward()
        optimizer.step()
        total += float(losses.detach().sum())
        count += len(losses)
    return total / max(count, 1)


def fit(model: DemandModel, ex: CustomerExamples, *, epochs: int, lr: float, batch_size: int, seed: int) -> list[float]:
    """Non-private training with Adam (the centralised baseline); returns the loss per epoch."""
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(examples_dataset(ex), batch_size=batch_size, shuffle=True, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    return [train_epoch(model, loader, opt) for _ in range(epochs)]


def evaluate(model: DemandModel, rows: OfferRows) -> dict[str, float]:
    """Held-out metrics of a model on offer rows."""
    p = buy_probability(model, rows.x, rows.price_ratio)
    return summarise(rows.bought, p)


def price_response_negative(model: DemandModel, x: np.ndarray) -> bool:
    """Whether P(buy) falls as the price rises for every row (it must, by construction)."""
    lo = buy_probability(model, x, np.full(len(x), 0.9))
    hi = buy_probability(model, x, np.full(len(x), 1.1))
    return bool(np.all(hi <= lo))
