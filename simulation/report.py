"""The evaluation's JSON and Markdown report (figures only: no customer ids, no per-customer rows)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from privacy.keys import atomic_write

COLUMNS: tuple[tuple[str, str], ...] = (
    ("captured_share", "captured share of gap"), ("profit", "profit"), ("revenue", "revenue"),
    ("conversion", "conversion"), ("consumer_surplus", "consumer surplus"), ("log_loss", "held-out log-loss"),
    ("auc", "held-out AUC"), ("calibration_error", "calibration error"), ("at_guardrail", "quotes at a guardrail"),
    ("buyers_below_list", "buyers paying below list"), ("epsilon", "epsilon per shop"),
)
HELD_OUT = ("log_loss", "auc", "calibration_error")
LEGEND = ("Profit, revenue and consumer surplus are expected values under the true demand, summed over the held-out "
          "month's customers x priced products (one offer each), every price inside the default guardrails. Captured share "
          "= (profit - uniform) / (oracle - uniform). Held-out metrics are on the shops' real held-out offers. 'Buyers "
          "paying below list' is the share of expected purchases made at a price below the list price.")


def jsonable(value: Any) -> Any:
    """Plain JSON values: non-finite floats become null, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(value: Any, key: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if key in ("captured_share", "conversion", "at_guardrail", "buyers_below_list"):
        return f"{100 * value:.1f}%"
    if key in ("profit", "revenue", "consumer_surplus"):
        return f"{value:,.0f}"
    return f"{value:.4f}"


def _epsilon(row: dict[str, Any]) -> str:
    per_shop = row.get("epsilon_per_shop")
    if not per_shop:
        return "n/a"
    values = [v for v in per_shop.values() if v is not None and math.isfinite(v)]
    if not values:
        return "inf (no DP)"
    return f"{min(values):.2f}-{max(values):.2f}"


def table(results: list[dict[str, Any]]) -> list[str]:
    """The comparison table, one row per approach, in Markdown."""
    lines = ["| approach | " + " | ".join(label for _, label in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for row in results:
        lines.append(f"| {row['name']} | " + " | ".join(_cell(row, key) for key, _ in COLUMNS) + " |")
    return lines


def _cell(row: dict[str, Any], key: str) -> str:
    if key == "epsilon":
        return _epsilon(row)
    if key in HELD_OUT:
        return _fmt((row.get("held_out") or {}).get(key), key)
    return _fmt(row.get(key), key)


def _targets(t: dict[str, Any]) -> list[str]:
    def mark(ok: Any) -> str:
        return "met" if ok else "**not met**"

    lines = [f"- centralised non-private captures >= 80% of the gap: {mark(t['centralised_captures_at_least_80pct'])} "
             f"({_fmt(t['centralised_captured_share'], 'captured_share')})"]
    if "dp_eps3_keeps_of_centralised" in t:
        lines.append(f"- federated DP at epsilon=3 keeps >= 90% of what centralised captures: "
                     f"{mark(t['dp_eps3_keeps_at_least_90pct'])} ({_fmt(t['dp_eps3_keeps_of_centralised'], 'captured_share')})")
        lines.append(f"- ordering oracle >= centralised >= federated DP eps=3 > uniform (profit): "
                     f"{mark(t['ordering_oracle_ge_central_ge_dp3_gt_uniform'])} "
                     f"({', '.join(f'{p:,.0f}' for p in t['profits_oracle_central_dp3_uniform'])})")
    lines.append(f"- whole evaluation under 15 minutes: {mark(t['under_15_minutes'])} ({t['seconds']:.0f} s)")
    return lines


def markdown(report: dict[str, Any], title: str, intro: str = "") -> str:
    """The human-readable report."""
    lines = [f"# {title}", "", *([intro, ""] if intro else []), LEGEND, "", *table(report["results"]), ""]
    if "targets" in report:
        lines += ["## Targets (issue 3, 'done when')", "", *_targets(report["targets"]), ""]
    if "learnability" in report:
        learn = report["learnability"]
        lines += ["## How much there is to learn", "",
                  f"The uniform-to-oracle gap is {100 * learn['gap_share_of_oracle_profit']:.2f}% of the oracle's profit. "
                  "Captured share of oracles missing one piece of the truth:", "",
                  "| variant | captured share |", "|---|---:|"]
        lines += [f"| {k} | {_fmt(v, 'captured_share')} |" for k, v in learn["captured_share_of_variants"].items()]
        lines.append("")
    if report.get("scale_bias"):
        lines += ["Scale (price sensitivity) of each demand curve against the truth's, over the pricing rows:", "",
                  "| approach | mean scale | mean / true mean | correlation with true scale |", "|---|---:|---:|---:|"]
        lines += [f"| {k} | {v['scale_mean']:.3f} | {v['scale_over_true_scale']:.3f} | {v['scale_correlation_with_truth']:.3f} |"
                  for k, v in report["scale_bias"].items()]
        lines.append("")
    if report.get("profit_by_round"):
        lines += ["## Captured share by federated round", ""]
        for name, rounds in report["profit_by_round"].items():
            lines.append(f"- {name}: " + ", ".join(_fmt(r["captured_share"], "captured_share") for r in rounds))
        lines.append("")
    plots = {k: v for k, v in report.get("files", {}).items() if k.startswith("plot")}
    if plots:
        lines += ["## Plots", "", *[f"- [{k}]({v})" for k, v in plots.items()], ""]
    return "\n".join(lines)


def write_report(out_dir: Path, report: dict[str, Any], *, title: str, stem: str = "evaluation", intro: str = ""
                 ) -> dict[str, str]:
    """Write `<stem>.json` and `<stem>.md` under `out_dir`; returns their paths relative to it."""
    files = {"json": f"{stem}.json", "markdown": f"{stem}.md"}
    report.setdefault("files", {}).update(files)
    atomic_write(out_dir / files["json"], json.dumps(jsonable(report), indent=1, allow_nan=False).encode(), mode=0o644)
    atomic_write(out_dir / files["markdown"], markdown(report, title, intro).encode(), mode=0o644)
    return files
