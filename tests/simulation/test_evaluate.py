"""The pricing evaluation on the small synthetic market: what it writes, and where each approach lands."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from simulation.evaluate import EvalSettings, run_evaluation
from simulation.synthetic import load_truth

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One small evaluation run (3 shops, real shop pipeline, federated DP at epsilon 3 in Flower's simulation)."""
    out = tmp_path_factory.mktemp("evaluation")
    return out, run_evaluation(out, EvalSettings.small())


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in report["results"]}


def test_every_approach_is_scored_with_the_gap_measured_from_uniform_to_oracle(evaluation) -> None:  # type: ignore[no-untyped-def]
    _, report = evaluation
    rows = _by_name(report)
    assert {"oracle", "uniform price per product", "seed: regression of price paid", "each shop alone",
            "centralised (pooled, non-private)", "federated DP eps=3"} <= set(rows)
    assert rows["oracle"]["captured_share"] == pytest.approx(1.0)
    assert rows["uniform price per product"]["captured_share"] == pytest.approx(0.0)
    oracle = rows["oracle"]["profit"]
    for name, row in rows.items():
        # the oracle prices every row at its true optimum; nothing earns more than a cent-rounding hair above it
        assert row["profit"] <= oracle * (1 + 1e-6), name
        assert 0.0 <= row["conversion"] <= 1.0 and row["consumer_surplus"] > 0
        assert 0.0 <= row["at_guardrail"] <= 1.0 and 0.0 <= row["buyers_below_list"] <= 1.0
    # the best single price per product under the truth beats any other single price per product
    assert rows["uniform price per product"]["profit"] >= rows["centralised model, one price per product"]["profit"]


def test_models_report_held_out_quality_and_price_only_baselines_do_not(evaluation) -> None:  # type: ignore[no-untyped-def]
    _, report = evaluation
    rows = _by_name(report)
    for name in ("oracle", "each shop alone", "centralised (pooled, non-private)", "federated DP eps=3"):
        held = rows[name]["held_out"]
        assert 0.5 < held["auc"] <= 1.0 and 0.0 < held["log_loss"] < 1.0 and held["calibration_error"] >= 0, name
    assert rows["seed: regression of price paid"]["held_out"] is None


def test_dp_run_spends_at_most_its_epsilon_in_every_shop_and_keeps_a_ledger(evaluation) -> None:  # type: ignore[no-untyped-def]
    _, report = evaluation
    dp = _by_name(report)["federated DP eps=3"]
    assert set(dp["epsilon_per_shop"]) == {"S1", "S2", "S3"}
    assert all(0.0 < eps <= 3.0 + 1e-6 for eps in dp["epsilon_per_shop"].values())
    assert sorted(dp["ledgers_written"]) == ["S1", "S2", "S3"]
    rounds = EvalSettings.small().rounds
    assert [r["round"] for r in report["profit_by_round"]["federated DP eps=3"]] == list(range(1, rounds + 1))


def test_report_files_are_written_and_hold_no_customer_ids(evaluation) -> None:  # type: ignore[no-untyped-def]
    out, report = evaluation
    doc = json.loads((out / "evaluation.json").read_text())
    assert [r["name"] for r in doc["results"]] == [r["name"] for r in report["results"]]
    md = (out / "evaluation.md").read_text()
    assert "| approach | captured share of gap |" in md and "federated DP eps=3" in md
    for key in ("plot_captured_vs_epsilon", "plot_profit_by_round", "plot_price_by_segment", "plot_demand_curves"):
        data = (out / report["files"][key]).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, key
    truth = load_truth(out / "work" / "market")
    numbers = set(re.findall(r"[0-9]+", (out / "evaluation.json").read_text() + md))  # whole digit runs only
    assert numbers.isdisjoint(set(truth.customers["customer_id"]))


def test_oracle_beats_centralised_beats_federated_dp_beats_uniform(evaluation) -> None:  # type: ignore[no-untyped-def]
    """The issue's ordering on a fixed seed (on this small market DP at eps=3 clears uniform by a thin 0.3%)."""
    _, report = evaluation
    rows = _by_name(report)
    profits = [rows[n]["profit"] for n in ("oracle", "centralised (pooled, non-private)", "federated DP eps=3",
                                           "uniform price per product")]
    assert profits[0] >= profits[1] >= profits[2] > profits[3], profits
