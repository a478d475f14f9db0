"""Training and evaluation example containers, serialised with safetensors (bytes, no file I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save


@dataclass(frozen=True)
class CustomerExamples:
    """One training example per customer: a padded set of offer rows (weight 0 = padding)."""

    x: np.ndarray  # [n_customers, rows, n_features] float32
    price_ratio: np.ndarray  # [n_customers, rows] float32
    bought: np.ndarray  # [n_customers, rows] float32
    weight: np.ndarray  # [n_customers, rows] float32

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to_bytes(self) -> bytes:
        """Serialise to safetensors bytes."""
        return st_save(
            {"x": self.x, "price_ratio": self.price_ratio, "bought": self.bought, "weight": self.weight}
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CustomerExamples:
        """Deserialise from safetensors bytes."""
        t = st_load(data)
        return cls(x=t["x"], price_ratio=t["price_ratio"], bought=t["bought"], weight=t["weight"])

    def flat(self) -> OfferRows:
        """All real (non-padding) rows, with their weights, as flat offer rows."""
        mask = self.weight > 0
        return OfferRows(
            x=self.x[mask],
            price_ratio=self.price_ratio[mask],
            bought=self.bought[mask],
            weight=self.weight[mask],
        )


@dataclass(frozen=True)
class OfferRows:
    """Flat offer rows (held-out evaluation): one row per (visit, candidate product)."""

    x: np.ndarray  # [n_rows, n_features] float32
    price_ratio: np.ndarray  # [n_rows] float32
    bought: np.ndarray  # [n_rows] float32
    weight: np.ndarray  # [n_rows] float32 (1 for held-out rows: nothing is subsampled there)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to_bytes(self) -> bytes:
        """Serialise to safetensors bytes."""
        return st_save(
            {"x": self.x, "price_ratio": self.price_ratio, "bought": self.bought, "weight": self.weight}
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> OfferRows:
        """Deserialise from safetensors bytes."""
        t = st_load(data)
        return cls(x=t["x"], price_ratio=t["price_ratio"], bought=t["bought"], weight=t["weight"])

    @staticmethod
    def concat(parts: list[OfferRows]) -> OfferRows:
        """Stack several shops' rows."""
        return OfferRows(
            x=np.concatenate([p.x for p in parts]),
            price_ratio=np.concatenate([p.price_ratio for p in parts]),
            bought=np.concatenate([p.bought for p in parts]),
            weight=np.concatenate([p.weight for p in parts]),
        )
