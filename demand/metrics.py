"""Held-out quality metrics: log-loss, AUC, calibration (pure numpy)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

EPS = 1e-7


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean Bernoulli negative log-likelihood."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(y, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged); NaN if one class is absent."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def calibration_error(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> float:
    """Expected calibration error over quantile bins of the predicted probability."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(p) == 0:
        return float("nan")
    order = np.argsort(p)
    err = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            err += len(chunk) * abs(p[chunk].mean() - y[chunk].mean())
    return float(err / len(p))


def summarise(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The held-out metrics reported for every model."""
    return {
        "log_loss": log_loss(y, p),
        "auc": auc(y, p),
        "calibration_error": calibration_error(y, p),
        "mean_predicted": float(np.mean(p)) if len(p) else float("nan"),
        "base_rate": float(np.mean(y)) if len(y) else float("nan"),
    }
