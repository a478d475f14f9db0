"""Training and evaluation example containers, serialised with safetensors (bytes, no file I/O)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Self

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save


@dataclass(frozen=True)
class _Rows:
    """Four aligned arrays of offer rows; the leading axis is what `len` counts."""

    x: np.ndarray
    price_ratio: np.ndarray
    bought: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def _arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_bytes(self) -> bytes:
        """Serialise to safetensors bytes."""
        return st_save(self._arrays())

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Deserialise from safetensors bytes."""
        t = st_load(data)
        return cls(**{f.name: t[f.name] for f in fields(cls)})

    @classmethod
    def concat(cls, parts: list[Self]) -> Self:
        """Stack several shops' rows (or customers) along the leading axis."""
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})


@dataclass(frozen=True)
class CustomerExamples(_Rows):
    """One training example per customer: a padded set of offer rows (weight 0 = padding).

    x [n_customers, rows, n_features]; price_ratio, bought, weight [n_customers, rows]; float32.
    """

    def flat(self) -> OfferRows:
        """All real (non-padding) rows, with their weights, as flat offer rows."""
        mask = self.weight > 0
        return OfferRows(x=self.x[mask], price_ratio=self.price_ratio[mask], bought=self.bought[mask],
                         weight=self.weight[mask])


@dataclass(frozen=True)
class OfferRows(_Rows):
    """Flat offer rows (held-out evaluation): one row per (visit, candidate product).

    x [n_rows, n_features]; price_ratio, bought, weight [n_rows] (weight 1 for held-out rows); float32.
    """
