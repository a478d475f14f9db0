"""The shop's privacy report for people: load ledgers and render them as rich tables (used by `fedprice shop`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from client.storage import ShopPaths
from fedprice.errors import ConfigError
from privacy.ledger import PrivacyLedger


def load_ledgers(shops_dir: Path, shops: list[str], *, every_shop: bool = False) -> list[PrivacyLedger]:
    """The ledgers of the named shops (or of every shop under `shops_dir` that has one)."""
    if every_shop:
        shops = sorted(p.name for p in shops_dir.iterdir() if (p / "ledger.enc").exists()) if shops_dir.is_dir() else []
        if not shops:
            raise ConfigError(f"no shop under {shops_dir} has a privacy ledger yet (none has trained)")
    if not shops:
        raise ConfigError("name at least one shop, or pass --all")
    out = []
    for shop in shops:
        paths = ShopPaths(shop, shops_dir / shop)
        store = paths.ledger_store()
        if not store.exists() and not store.anchor_path.exists():
            raise ConfigError(f"shop {shop} has no privacy ledger at {store.path} yet (it has not trained)")
        out.append(store.load())
    return out


def _facts(rep: dict[str, Any]) -> Table:
    t = Table(title=f"shop {rep['shop_id']}: privacy spent", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    spent = (f"{rep['epsilon']:.4f} of budget {rep['budget']:.3f} (left {rep['budget_left']:.4f})" if rep["dp_guarantee"]
             else f"NO DP GUARANTEE: {len(rep['unprotected_rounds'])} round(s) trained without DP")
    rows = [
        ("epsilon (lifetime)", spent),
        ("delta", f"{rep['delta']:.2e}"),
        ("unit of privacy", rep["unit_of_privacy"]),
        ("adjacency", rep["adjacency"]),
        ("accountant", rep["accountant"]),
        ("sampling", rep["sampling"]),
        ("noise multipliers", ", ".join(f"{s:.4g}" for s in rep["noise_multipliers"]) or "-"),
        ("sample rates", ", ".join(f"{q:.4g}" for q in rep["sample_rates"]) or "-"),
        ("clipping norms", ", ".join(f"{c:g}" for c in rep["clipping_norms"]) or "-"),
        ("rounds / runs / steps", f"{rep['rounds_trained']} rounds in {len(rep['runs'])} run(s), {rep['total_steps']} steps"),
        ("refused rounds", str(len(rep["refusals"]))),
        ("customers of several shops", rep["multi_shop_customers"]),
        ("not covered by DP", "\n".join(f"- {x}" for x in rep["not_covered"])),
        ("known limitations", "\n".join(f"- {x}" for x in rep["limitations"])),
    ]
    for k, v in rows:
        t.add_row(k, v)
    return t


def _rounds(rep: dict[str, Any]) -> Table:
    t = Table(title=f"shop {rep['shop_id']}: rounds", title_justify="left")
    for col in ("run", "round", "sigma", "q", "steps", "epsilon after", "clip", "Poisson", "at"):
        t.add_column(col)
    for r in rep["rounds"]:
        poisson = "yes" if r["poisson_sampling"] else "NO"
        t.add_row(str(r["run_id"])[-8:], str(r["server_round"]), f"{r['sigma']:.4f}", f"{r['sample_rate']:.4g}",
                  str(r["steps"]), f"{r['epsilon_after']:.4f}", f"{r['clipping_norm']:g}", poisson, r["at"])
    for r in rep["refusals"]:
        t.add_row(str(r["run_id"])[-8:], str(r["server_round"]), "-", "-", "0", "refused: budget", "-", "-", r["at"])
    return t


def render(console: Console, reports: list[dict[str, Any]], summary: dict[str, Any] | None) -> None:
    """Print each shop's facts and rounds, then the across-shops composition."""
    for rep in reports:
        console.print(_facts(rep))
        if rep["rounds"] or rep["refusals"]:
            console.print(_rounds(rep))
    if summary is not None:
        one, every = summary["customer_of_one_shop"], summary["customer_of_all_shops"]

        def eps(x: float | None) -> str:
            return "inf (no guarantee)" if x is None else f"{x:.4f}"

        console.print(f"[bold]across {len(summary['shops'])} shops[/bold]: a customer of one shop is covered at "
                      f"epsilon <= {eps(one['epsilon_max'])}, delta <= {one['delta_max']:.1e}; a customer of all of them at "
                      f"epsilon <= {eps(every['epsilon'])}, delta <= {every['delta']:.1e} ({summary['note']})")
