"""How learnable the market's personalisation gain is: oracles that lack one piece of the truth.

Each variant prices with the true demand curve minus one ingredient (the latent taste, the
per-customer price-sensitivity factor, or only its purely hidden part) or with the scale mis-stated by a few percent, and reports
the share of the uniform-to-oracle gap it still captures. A learner can only approach the variants
whose missing piece it cannot observe either.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from simulation.evaldata import EvalData
from simulation.scorecard import captured_share, demand_prices, outcomes
from simulation.synthetic import MarketTruth

SCALE_ERRORS = (0.95, 1.05, 0.9, 1.1, 1.2)


def learnability(data: EvalData, truth: MarketTruth, *, uniform_profit: float, oracle_profit: float) -> dict[str, Any]:
    """Captured share of truth variants, and the size of the gap relative to the oracle's profit."""
    rows = data.rows
    cust = truth.customers.set_index("customer_id")
    taste = cust["taste"].reindex(data.customer).to_numpy(np.float64)
    factor = cust["scale_factor"].reindex(data.customer).to_numpy(np.float64)
    hidden = (cust["hidden_scale_factor"].reindex(data.customer).to_numpy(np.float64)
              if "hidden_scale_factor" in cust else factor)
    shop_taste = pd.Series(taste).groupby(data.shop).transform("mean").to_numpy()

    def captured(mu: np.ndarray, scale: np.ndarray) -> float:
        profit = outcomes(rows, demand_prices(rows, mu, scale))["profit"]
        return round(captured_share(profit, uniform=uniform_profit, oracle=oracle_profit), 4)

    variants = {
        "oracle without the latent taste (shop mean instead)": captured(rows.true_mu - taste + shop_taste, rows.true_s),
        "oracle without the per-customer price-sensitivity factor": captured(rows.true_mu, rows.true_s / factor),
        "oracle without taste and without the sensitivity factor": captured(rows.true_mu - taste + shop_taste,
                                                                            rows.true_s / factor),
        "oracle without only the hidden part of the sensitivity factor": captured(rows.true_mu, rows.true_s / hidden),
    }
    for k in SCALE_ERRORS:
        variants[f"oracle with every scale s x {k:g}"] = captured(rows.true_mu, rows.true_s * k)
    return {
        "gap_share_of_oracle_profit": round((oracle_profit - uniform_profit) / oracle_profit, 5),
        "captured_share_of_variants": variants,
        "true_scale_mean": round(float(rows.true_s.mean()), 4),
    }


def scale_bias(data: EvalData, curves: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """How a model's scale compares with the true scale over the pricing rows (ratio of means, correlation)."""
    _, scale = curves
    return {"scale_mean": round(float(scale.mean()), 4),
            "scale_over_true_scale": round(float(scale.mean() / data.rows.true_s.mean()), 4),
            "scale_correlation_with_truth": round(float(np.corrcoef(scale, data.rows.true_s)[0, 1]), 4)}
