"""Semi-synthetic evaluation on Ta Feng: a central non-private model stands in for the true demand.

Real purchase data has no counterfactual outcomes, so the demand model fitted centrally, without
privacy, on every shop's training examples is declared the truth. The federated DP model's prices
(and the seed regression's, and the best uniform price per product under that truth) are scored
against it exactly as on the synthetic market. The "oracle" row is that central model pricing
every customer itself, so it captures 100% by definition; held-out metrics use the real outcomes.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from client.prepare import prepare_shop
from client.storage import ShopPaths
from simulation.comparators import TrainSettings, fit_price_regression, load_shop_examples, pooled, train_demand_model
from simulation.diagnostics import scale_bias
from simulation.evaldata import model_truth_data
from simulation.plots import write_plots
from simulation.report import write_report
from simulation.results import fill_captured, profit_by_round, score, score_federated, score_model
from simulation.rounds import run_federation
from simulation.scorecard import demand_prices, guarded, uniform_prices
from simulation.scoring import build_scoring_set
from simulation.tafeng import SHOP_IDS, prepare_exports

log = logging.getLogger(__name__)
INTRO = ("The truth here is a model: the product's demand model fitted centrally, without privacy, on every shop's "
         "training examples. 'oracle' is that model pricing each customer itself (100% by definition); the other rows "
         "are scored under its demand curves. Held-out metrics use the real held-out outcomes.")


@dataclass(frozen=True)
class TafengSettings:
    """What the semi-synthetic evaluation trains."""

    rounds: int = 5
    epsilon: float = 3.0
    # The stand-in truth keeps the short schedule it was fixed with (the full Ta Feng data set is large).
    truth: TrainSettings = field(default_factory=lambda: TrainSettings(epochs=8, learning_rate=3e-3))
    max_customers: int | None = None  # per shop; None keeps every customer
    shops: tuple[str, ...] = SHOP_IDS


def run_tafeng_evaluation(out_dir: Path, *, cache_dir: Path, settings: TafengSettings | None = None) -> dict[str, Any]:
    """Prepare the Ta Feng shops, fit the stand-in truth, run the federation with DP, and score prices."""
    settings = settings or TafengSettings()
    started = time.perf_counter()
    work = out_dir / "work"
    if work.exists():
        shutil.rmtree(work)
    prepare_exports(cache_dir, work / "shops", shops=settings.shops, max_customers=settings.max_customers)
    paths = [ShopPaths(s, work / "shops" / s) for s in settings.shops]
    for p in paths:
        prepare_shop(p, feature_store=work / "feature_store.sqlite")
    sets = [build_scoring_set(p, priced_products=None, scratch=work) for p in paths]
    examples = load_shop_examples(paths)
    everyone = pooled(list(examples.values()))
    truth_model = train_demand_model(everyone, settings.truth)
    data = model_truth_data(sets, truth_model)
    del sets
    rows = data.rows
    oracle = score(data, "oracle", "oracle",
                   demand_prices(rows, rows.true_mu, rows.true_s), held_out_p=data.held_out_true_p,
                   curves=(rows.true_mu, rows.true_s))
    uniform = score(data, "uniform price per product", "baseline", uniform_prices(rows), held_out_p=None)
    regression = fit_price_regression(everyone)
    seed = score(data, "seed: regression of price paid", "baseline",
                 guarded(rows, regression.predict_ratio(data.x) * data.ref_price), held_out_p=None)
    name = f"federated DP eps={settings.epsilon:g}"
    run = run_federation(name.replace(" ", "-").replace("=", ""), prepared_dir=work / "shops", work_dir=work / "runs",
                         shops=list(settings.shops), rounds=settings.rounds, epsilon=settings.epsilon)
    federated = score_federated(data, name, run, settings.epsilon)
    retrained = score_model(data, "central model retrained (another seed)", "learned",
                            train_demand_model(everyone, replace(settings.truth, seed=settings.truth.seed + 1)))
    results = [oracle, uniform, seed, retrained, federated]
    fill_captured(results, uniform=uniform, oracle=oracle)
    by_round = {name: profit_by_round(data, run, uniform.outcome["profit"], oracle.outcome["profit"])}
    seconds = time.perf_counter() - started
    report: dict[str, Any] = {
        "data": {"shops": list(settings.shops), "pricing_rows": len(rows), "held_out_offers": len(data.held_out),
                 "pricing_rows_without_feasible_price": data.dropped_infeasible,
                 "list_price": "the shop's reference price (median paid price before the held-out month)",
                 "unit_cost": "the shop's median ASSET / AMOUNT before the held-out month"},
        "settings": {"rounds": settings.rounds, "epsilon": settings.epsilon, "truth_training": asdict(settings.truth),
                     "max_customers": settings.max_customers},
        "results": [r.summary() for r in results],
        "profit_by_round": by_round,
        "scale_bias": {r.name: scale_bias(data, r.curves) for r in results if r.curves is not None},
        "seconds": round(seconds, 1),
    }
    report["files"] = write_plots(out_dir / "plots", data, results, by_round)
    report["files"].update(write_report(out_dir, report, title="Semi-synthetic pricing evaluation on Ta Feng", stem="tafeng",
                                        intro=INTRO))
    log.info("Ta Feng evaluation finished in %.0f s: %s", seconds, out_dir)
    return report
