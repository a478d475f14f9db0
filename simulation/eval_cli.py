"""`fedprice sim evaluate` and `fedprice sim evaluate-tafeng`: pricing against ground truth, summarised."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def _pct(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def _print(report: dict[str, Any], out: Path) -> None:
    table = Table(title="captured share of the uniform-to-oracle profit gap")
    for column in ("approach", "captured", "profit", "held-out AUC"):
        table.add_column(column, justify="left" if column == "approach" else "right")
    for row in report["results"]:
        auc = (row.get("held_out") or {}).get("auc")
        table.add_row(row["name"], _pct(row["captured_share"]), f"{row['profit']:,.0f}",
                      "n/a" if auc is None else f"{auc:.4f}")
    console.print(table)
    for key, value in report.get("targets", {}).items():
        if isinstance(value, bool):
            console.print(f"{key}: {'[green]met[/green]' if value else '[red]not met[/red]'}")
    for key, rel in report["files"].items():
        console.print(f"{key}: {out / rel}")


def evaluate(
    small: Annotated[bool, typer.Option(help="Three small shops, DP at epsilon 3 only (the test-suite setting).")] = False,
    out: Annotated[Path, typer.Option(help="Output directory (report, plots, and a work/ directory).")] = Path(
        "var/evaluation"),
) -> None:
    """Score every approach's prices against the synthetic market's true demand (JSON, Markdown, PNG plots)."""
    from simulation.evaluate import EvalSettings, run_evaluation

    report = run_evaluation(out, EvalSettings.small() if small else EvalSettings())
    _print(report, out)


def evaluate_tafeng(
    out: Annotated[Path, typer.Option(help="Output directory (report, plots, and a work/ directory).")] = Path(
        "var/evaluation/tafeng"),
    cache_dir: Annotated[Path, typer.Option(help="Download cache of the verified Ta Feng wheel.")] = Path("var/cache"),
    epsilon: Annotated[float, typer.Option(help="Epsilon per shop of the federated DP run.")] = 3.0,
    rounds: Annotated[int, typer.Option(help="Federated rounds.")] = 5,
    max_customers: Annotated[int | None, typer.Option(help="Keep only this many customers per shop.")] = None,
) -> None:
    """Semi-synthetic: a central non-private model on all Ta Feng shops is the truth; score the federated DP prices."""
    from simulation.evaluate_tafeng import TafengSettings, run_tafeng_evaluation

    settings = TafengSettings(rounds=rounds, epsilon=epsilon, max_customers=max_customers)
    _print(run_tafeng_evaluation(out, cache_dir=cache_dir, settings=settings), out)
