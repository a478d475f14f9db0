"""`fedprice shop …`: what a regional shop's IT runs."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from client.prepare import prepare_shop
from client.storage import ShopPaths

app = typer.Typer(help="Shop side: prepare exports, privacy reports, keys.", no_args_is_help=True)
console = Console()

ShopsDir = Annotated[Path, typer.Option(help="Directory holding one folder per shop.")]


@app.command()
def prepare(
    shop: Annotated[str, typer.Argument(help="Shop id (its folder name under --shops-dir).")],
    shops_dir: ShopsDir = Path("var/shops"),
    feature_store: Annotated[Path, typer.Option(help="SQLite feature store to publish to.")] = Path("var/feature_store.sqlite"),
) -> None:
    """Ingest the shop's raw export, quarantine bad rows, pseudonymise, build encrypted examples, publish features."""
    report = prepare_shop(ShopPaths(shop, shops_dir / shop), feature_store=feature_store)
    console.print_json(json.dumps(asdict(report)))


@app.command("privacy-report")
def privacy_report(shop: str, shops_dir: ShopsDir = Path("var/shops")) -> None:
    """Print the shop's epsilon ledger: spent, budget, delta, unit, accountant, every round."""
    paths = ShopPaths(shop, shops_dir / shop)
    ledger = paths.ledger_store().load()
    console.print_json(json.dumps(ledger.report()))
