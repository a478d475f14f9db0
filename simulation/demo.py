"""`fedprice demo`: the main job end to end on the real Ta Feng data, in a fresh demo workspace.

Stages: real data -> 8 shops' raw exports -> shop preparation (quarantine, pseudonyms, encrypted
examples, feature publication) -> federated DP training in Flower's simulation engine -> baselines
-> the pricing API as a real uvicorn process, queried over HTTP -> summary table and JSON.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from client.prepare import prepare_shop
from client.storage import ShopPaths
from demand.metrics import summarise
from demand.training import evaluate
from server.registry import latest_version_dir, load_verified
from server.signing import load_public_key
from simulation.api_process import ApiProcess
from simulation.baselines import centralised_model, pooled, popularity_scores
from simulation.demo_queries import pick_queries, run_queries
from simulation.federation import simulate
from simulation.tafeng import SHOP_IDS, prepare_exports

log = logging.getLogger(__name__)
console = Console(width=None if sys.stdout.isatty() else 140)


@dataclass(frozen=True)
class DemoConfig:
    """Where the demo works and how big it is."""

    root: Path = Path("var/demo")
    cache: Path = Path("var/cache")
    shops: tuple[str, ...] = SHOP_IDS
    max_customers: int | None = None
    rounds: int = 5
    epsilon: float = 3.0
    central_epochs: int = 4

    @classmethod
    def fast(cls) -> DemoConfig:
        """A quick look: 3 shops, 300 customers each, 2 rounds."""
        return cls(root=Path("var/demo-fast"), shops=("105", "115", "221"), max_customers=300, rounds=2, central_epochs=2)

    @property
    def shops_dir(self) -> Path:
        return self.root / "shops"

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def central(self) -> Path:
        return self.root / "central"

    @property
    def feature_store(self) -> Path:
        return self.root / "feature_store.sqlite"


@dataclass
class Stages:
    """Wall time per stage, in seconds."""

    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        with console.status(f"[bold]{name}[/bold] …", spinner="dots"):
            out = fn(*args, **kwargs)
        self.seconds[name] = round(time.perf_counter() - start, 1)
        console.print(f"[green]✓[/green] {name} ({self.seconds[name]:.1f} s)")
        return out


def _fresh_workspace(cfg: DemoConfig) -> None:
    if cfg.root.exists():
        shutil.rmtree(cfg.root)
    cfg.root.mkdir(parents=True)
    console.print(f"demo workspace {cfg.root} (fresh: shops, keys, ledgers, registry and feature store start empty)")


def _prepare_all(cfg: DemoConfig) -> list[dict[str, Any]]:
    reports = []
    for shop in cfg.shops:
        start = time.perf_counter()
        rep = prepare_shop(ShopPaths(shop, cfg.shops_dir / shop), feature_store=cfg.feature_store)
        reports.append(asdict(rep))
        console.print(f"  shop {shop:>8}: {rep.rows:>7} rows, {rep.quarantined} quarantined, {rep.customers:>6} customers, "
                      f"{rep.train_customers:>5} training examples, {rep.test_offers:>7} held-out offers "
                      f"({time.perf_counter() - start:.1f} s)")
    return reports


def run_demo(*, fast: bool = False) -> dict[str, Any]:
    """Run every stage and write the summary JSON; returns the summary."""
    cfg = DemoConfig.fast() if fast else DemoConfig()
    t0 = time.perf_counter()
    stages = Stages()
    _fresh_workspace(cfg)
    exports = stages.run("real data: Ta Feng -> one raw export per shop", prepare_exports, cfg.cache, cfg.shops_dir,
                         shops=cfg.shops, max_customers=cfg.max_customers)
    n_rows, n_customers = sum(e.rows for e in exports), sum(e.customers for e in exports)
    console.print(f"  {len(exports)} shops, {n_rows:,} rows, {n_customers:,} customers")
    prepared = stages.run("shops: ingest, quarantine, pseudonymise, encrypt, publish features", _prepare_all, cfg)
    console.print("[bold]federated training[/bold] (Flower simulation engine, one SuperNode per shop, Opacus DP-SGD in each)")
    manifest = stages.run(
        "federated DP training", simulate, shops=list(cfg.shops),
        overrides={"num-server-rounds": cfg.rounds, "epsilon-budget": cfg.epsilon, "shops-dir": str(cfg.shops_dir),
                   "registry-dir": str(cfg.registry), "central-dir": str(cfg.central)},
    )
    shop_paths = [ShopPaths(s, cfg.shops_dir / s) for s in cfg.shops]
    train, test = stages.run("pool held-out data for scoring (simulation only)", pooled, shop_paths)
    central = stages.run("centralised non-private baseline", centralised_model, train, epochs=cfg.central_epochs)
    fed_model, _ = load_verified(latest_version_dir(cfg.registry), load_public_key(cfg.central / "keys" / "signing.pub"))
    metrics = {
        "federated_dp": evaluate(fed_model, test),
        "centralised_non_private": evaluate(central, test),
        "popularity": summarise(test.bought, popularity_scores(test)),
    }
    query_shops = [str(s) for s in ("115", "221", "105") if s in cfg.shops][:2]
    queries = pick_queries(cfg.shops_dir, cfg.feature_store, shops=query_shops)
    with ApiProcess(root=cfg.root, registry=cfg.registry, public_key=cfg.central / "keys" / "signing.pub",
                    feature_store=cfg.feature_store, shops_dir=cfg.shops_dir) as api:
        quotes = stages.run("pricing API: live quotes over HTTP", run_queries, api, queries)
    summary = {
        "model_version": manifest["version"],
        "rounds": manifest["rounds_completed"],
        "shops": prepared,
        "privacy_per_shop": manifest["privacy"]["per_shop"],
        "held_out": metrics,
        "held_out_rows": len(test),
        "quotes": quotes,
        "stage_seconds": stages.seconds,
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
    out = cfg.root / "summary.json"
    out.write_text(json.dumps(summary, indent=1, default=str))
    _print_summary(summary)
    console.print(f"\nsummary written to [bold]{out}[/bold]")
    return summary


def _print_summary(s: dict[str, Any]) -> None:
    q = Table(title="Personalised quotes from the live pricing API")
    for col in ("customer (pseudonym)", "shop", "product", "list price", "price", "P(buy)", "guardrail", "customer"):
        q.add_column(col)
    for row in s["quotes"]:
        q.add_row(row["pseudonym_prefix"], row["shop_id"], row["product_id"], f"{row['list_price']:.2f}",
                  f"{row['price']:.2f}", f"{row['buy_probability']:.3f}", row["guardrail"], row["path"])
    console.print(q)
    p = Table(title="Privacy spent per shop (customer-level, cumulative over all rounds)")
    for col in ("shop", "epsilon", "budget", "delta", "sigma", "sample rate", "steps", "customers"):
        p.add_column(col)
    for shop, m in sorted(s["privacy_per_shop"].items()):
        p.add_row(shop, f"{m['epsilon']:.3f}", f"{m['epsilon_budget']:.1f}", f"{m['delta']:.1e}", f"{m['sigma']:.3f}",
                  f"{m['sample_rate']:.4f}", str(m["steps"]), str(m["num_examples"]))
    console.print(p)
    h = Table(title=f"Held-out last month ({s['held_out_rows']:,} offers, all shops)")
    for col in ("model", "AUC", "log-loss", "calibration error"):
        h.add_column(col)
    for name, m in s["held_out"].items():
        h.add_row(name.replace("_", " "), f"{m['auc']:.4f}", f"{m['log_loss']:.5f}", f"{m['calibration_error']:.5f}")
    console.print(h)
    t = Table(title=f"Wall time per stage (total {s['total_seconds']:.0f} s)")
    t.add_column("stage")
    t.add_column("seconds", justify="right")
    for name, secs in s["stage_seconds"].items():
        t.add_row(name, f"{secs:.1f}")
    console.print(t)
