"""The evaluation's PNG plots: captured share vs epsilon, profit by round, prices by segment, demand curves."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
from scipy.special import expit  # noqa: E402

from simulation.evaldata import EvalData  # noqa: E402
from simulation.results import Scored  # noqa: E402
from simulation.scorecard import GUARDRAILS  # noqa: E402

N_CURVES = 4


def _dp(results: list[Scored]) -> list[Scored]:
    return sorted((r for r in results if r.extra.get("epsilon_target") is not None), key=lambda r: r.extra["epsilon_target"])


def _pick(results: list[Scored], *names: str) -> list[Scored]:
    by_name = {r.name: r for r in results}
    return [by_name[n] for n in names if n in by_name]


def captured_vs_epsilon(path: Path, results: list[Scored]) -> None:
    """Captured share of the gap for each DP setting, with the non-DP approaches as reference lines."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    dp = _dp(results)
    if dp:
        ax.plot([r.extra["epsilon_target"] for r in dp], [100 * r.captured for r in dp], "o-", label="federated DP")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks([r.extra["epsilon_target"] for r in dp], [f"{r.extra['epsilon_target']:g}" for r in dp])
    styles = ["--", ":", "-.", (0, (5, 1)), (0, (1, 3)), (0, (3, 3))]
    refs = [r for r in results if r.kind != "federated" or r.extra.get("epsilon_target") is None]
    for style, r in zip(styles * 2, refs, strict=False):
        if math.isfinite(r.captured):
            ax.axhline(100 * r.captured, linestyle=style, color=f"C{1 + refs.index(r) % 9}", label=r.name)
    ax.set_xlabel("epsilon per shop (lifetime budget of the run)")
    ax.set_ylabel("share of the uniform-to-oracle gap captured (%)")
    ax.set_title("Captured share vs epsilon")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def profit_by_round(path: Path, by_round: dict[str, list[dict[str, float]]], results: list[Scored]) -> None:
    """Expected profit of each federated run's global model after every round."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rounds in by_round.items():
        ax.plot([r["round"] for r in rounds], [r["profit"] for r in rounds], "o-", label=name)
    for k, r in enumerate(_pick(results, "oracle", "uniform price per product", "centralised (pooled, non-private)")):
        ax.axhline(r.outcome["profit"], linestyle=["--", ":", "-."][k], color="grey", label=r.name)
    ax.set_xlabel("federated round")
    ax.set_ylabel("expected profit under the true demand")
    ax.set_title("Profit by round")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def price_by_segment(path: Path, data: EvalData, results: list[Scored]) -> None:
    """Distribution of price / list price per customer segment, for a few approaches side by side."""
    dp = _dp(results)
    shown = _pick(results, "oracle", "uniform price per product", "centralised (pooled, non-private)") + dp[len(dp) // 2:][:1]
    segments = sorted(np.unique(data.segment))
    fig, ax = plt.subplots(figsize=(max(7.0, 2.2 * len(segments)), 4.5))
    width = 0.8 / max(len(shown), 1)
    for k, r in enumerate(shown):
        ratio = r.prices.price / data.rows.list_price
        pos = np.arange(len(segments)) + (k - (len(shown) - 1) / 2) * width
        box = ax.boxplot([ratio[data.segment == s] for s in segments], positions=pos, widths=width * 0.9,
                         showfliers=False, patch_artist=True)
        for patch in box["boxes"]:
            patch.set_facecolor(f"C{k}")
        ax.plot([], [], color=f"C{k}", linewidth=6, label=r.name)
    ax.set_xticks(np.arange(len(segments)), segments)
    ax.set_ylabel("price / list price")
    ax.set_title("Price distribution by customer segment")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def demand_curves(path: Path, data: EvalData, results: list[Scored], seed: int = 0) -> None:
    """A few customers' true vs learned demand curves, each with the price it chose marked."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(data.rows), size=min(N_CURVES, len(data.rows)), replace=False)
    dp = _dp(results)
    curves = [r for r in _pick(results, "oracle", "centralised (pooled, non-private)") + dp[len(dp) // 2:][:1]
              if r.curves is not None]
    fig, axes = plt.subplots(1, len(picks), figsize=(4 * len(picks), 4), squeeze=False)
    for ax, i in zip(axes[0], picks, strict=True):
        r = data.rows.list_price[i]
        grid = np.linspace(0.6, 1.4, 200) * r
        for k, res in enumerate(curves):
            assert res.curves is not None
            mu, scale = res.curves[0][i], res.curves[1][i]
            label = "true" if res.kind == "oracle" else res.name
            ax.plot(grid, expit((mu - grid / r) / scale), color=f"C{k}", label=label)
            chosen = res.prices.price[i]
            ax.plot([chosen], [expit((mu - chosen / r) / scale)], "o", color=f"C{k}")
        ax.axvspan(GUARDRAILS.band_low * r, GUARDRAILS.band_high * r, color="grey", alpha=0.1)
        ax.axvline(data.rows.unit_cost[i], color="black", linewidth=0.8, linestyle=":")
        ax.set_title(f"{data.segment[i]}, list {r:.0f}", fontsize=9)
        ax.set_xlabel("price (dots: chosen price; band: guardrails; dotted: cost)", fontsize=7)
    axes[0][0].set_ylabel("P(buy)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(plot_dir: Path, data: EvalData, results: list[Scored],
                by_round: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Write every plot; returns their paths relative to the report's directory."""
    plot_dir.mkdir(parents=True, exist_ok=True)
    files = {"plot_captured_vs_epsilon": "captured_vs_epsilon.png", "plot_profit_by_round": "profit_by_round.png",
             "plot_price_by_segment": "price_by_segment.png", "plot_demand_curves": "demand_curves.png"}
    captured_vs_epsilon(plot_dir / files["plot_captured_vs_epsilon"], results)
    profit_by_round(plot_dir / files["plot_profit_by_round"], by_round, results)
    price_by_segment(plot_dir / files["plot_price_by_segment"], data, results)
    demand_curves(plot_dir / files["plot_demand_curves"], data, results)
    return {k: f"{plot_dir.name}/{v}" for k, v in files.items()}
