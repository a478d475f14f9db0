"""The feature schema shared by shops, the server and the pricing API.

Every transform is fixed (logs, ratios, clipping): no statistic is fitted on data, so a shop,
the federation and the API turn the same raw history into the same vector without sharing
anything but this file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np

SCHEMA_VERSION = 2

AGE_GROUPS: tuple[str, ...] = (
    "<25", "25-29", "30-34", "35-39", "40-44", "45-49", "50-54", "55-59", "60-64", ">65",
)

# Raw per-customer history statistics (what `client.features` computes from purchases).
CUSTOMER_STATS: tuple[str, ...] = (
    "n_visits", "n_lines", "spend", "mean_price_ratio", "promo_share", "days_since_last",
    "n_products", "n_subclasses", "history_days",
)
CUSTOMER_FEATURES: tuple[str, ...] = (
    "c_known", "c_log_visits", "c_log_lines", "c_log_spend", "c_price_ratio", "c_promo_share",
    "c_recency", "c_log_products", "c_log_subclasses",
    *(f"c_age_{g}" for g in AGE_GROUPS), "c_age_unknown",
)
PRODUCT_STATS: tuple[str, ...] = ("buy_rate", "ref_price", "price_cv")
PRODUCT_FEATURES: tuple[str, ...] = ("p_known", "p_log_buy_rate", "p_log_ref_price", "p_price_cv")
PAIR_FEATURES: tuple[str, ...] = ("cp_log_product", "cp_log_subclass", "cp_product_rate")
CONTEXT_FEATURES: tuple[str, ...] = ("o_weekend",)
FEATURES: tuple[str, ...] = CUSTOMER_FEATURES + PRODUCT_FEATURES + PAIR_FEATURES + CONTEXT_FEATURES
N_FEATURES = len(FEATURES)

RECENCY_CAP_DAYS = 120.0
UNKNOWN_BUY_RATE = 1e-4
# Counts are taken per RATE_DAYS of the shop's history window (`history_days`): training snapshots see one or two
# months of history, serving sees them all, and raw counts would put served customers outside what training saw.
RATE_DAYS = 30.0


def schema_hash() -> str:
    """Return the sha256 that names this schema in model manifests."""
    text = f"v{SCHEMA_VERSION}|" + ",".join(FEATURES)
    return hashlib.sha256(text.encode()).hexdigest()


def _col(stats: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return np.asarray(stats[name], dtype=np.float64)


def per_period(history_days: np.ndarray) -> np.ndarray:
    """Factor turning counts over a history window of `history_days` into counts per RATE_DAYS."""
    return RATE_DAYS / np.maximum(np.asarray(history_days, dtype=np.float64), 1.0)


def customer_features(stats: Mapping[str, np.ndarray], age_group: np.ndarray) -> np.ndarray:
    """Turn raw customer history statistics into the customer block of the feature vector."""
    n_visits = _col(stats, "n_visits")
    known = (n_visits > 0).astype(np.float64)
    rate = per_period(_col(stats, "history_days"))
    recency = np.where(known > 0, _col(stats, "days_since_last"), RECENCY_CAP_DAYS)
    ages = np.asarray(age_group, dtype=object)
    onehot = np.stack([ages == g for g in AGE_GROUPS], axis=1).astype(np.float64)
    unknown_age = (onehot.sum(axis=1) == 0).astype(np.float64)[:, None]
    dense = np.stack(
        [
            known,
            np.log1p(n_visits * rate) / 3.0,
            np.log1p(_col(stats, "n_lines") * rate) / 4.0,
            np.log1p(_col(stats, "spend") * rate) / 10.0,
            np.clip(_col(stats, "mean_price_ratio") - 1.0, -0.5, 0.5) * known * 4.0,
            np.clip(_col(stats, "promo_share"), 0.0, 1.0) * known,
            np.clip(recency, 0.0, RECENCY_CAP_DAYS) / RECENCY_CAP_DAYS,
            np.log1p(_col(stats, "n_products") * rate) / 4.0,
            np.log1p(_col(stats, "n_subclasses") * rate) / 4.0,
        ],
        axis=1,
    )
    return np.concatenate([dense, onehot, unknown_age], axis=1).astype(np.float32)


def cold_start_customer(n: int = 1) -> np.ndarray:
    """Return the customer block for customers without any history (the cold-start path)."""
    zeros = {name: np.zeros(n) for name in CUSTOMER_STATS}
    return customer_features(zeros, np.array([""] * n, dtype=object))


def product_features(stats: Mapping[str, np.ndarray], known: np.ndarray | None = None) -> np.ndarray:
    """Turn a shop's product statistics into the product block (unknown products get defaults)."""
    buy_rate = _col(stats, "buy_rate")
    known_f = np.ones_like(buy_rate) if known is None else np.asarray(known, dtype=np.float64)
    ref = np.maximum(_col(stats, "ref_price"), 1e-6)
    return np.stack(
        [
            known_f,
            np.log(np.maximum(buy_rate, UNKNOWN_BUY_RATE)) / 5.0 + 1.0,
            np.log(ref) / 5.0,
            np.clip(_col(stats, "price_cv"), 0.0, 1.0) * 5.0,
        ],
        axis=1,
    ).astype(np.float32)


def pair_features(
    product_count: np.ndarray, subclass_count: np.ndarray, n_visits: np.ndarray, history_days: np.ndarray
) -> np.ndarray:
    """Customer x product history: purchases of this product and of its subclass before the offer (per RATE_DAYS)."""
    pc = np.asarray(product_count, dtype=np.float64)
    sc = np.asarray(subclass_count, dtype=np.float64)
    nv = np.asarray(n_visits, dtype=np.float64)
    per = per_period(history_days)
    rate = np.where(nv > 0, pc / np.maximum(nv, 1.0), 0.0)
    return np.stack([np.log1p(pc * per) / 2.0, np.log1p(sc * per) / 2.0, np.clip(rate, 0.0, 1.0)], axis=1).astype(
        np.float32
    )


def assemble(
    customer: np.ndarray, product: np.ndarray, pair: np.ndarray, weekend: np.ndarray
) -> np.ndarray:
    """Concatenate the blocks, row-aligned, into model inputs of width N_FEATURES."""
    ctx = np.asarray(weekend, dtype=np.float32).reshape(-1, 1)
    x = np.concatenate([customer, product, pair, ctx], axis=1).astype(np.float32)
    if x.shape[1] != N_FEATURES:
        raise ValueError(f"assembled {x.shape[1]} features, schema has {N_FEATURES}")
    return x
