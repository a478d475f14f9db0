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
def privacy_report(
    shops: Annotated[list[str] | None,
                     typer.Argument(help="Shop id(s); several also show what a customer of all of them spends.")] = None,
    shops_dir: ShopsDir = Path("var/shops"),
    every_shop: Annotated[bool, typer.Option("--all", help="Every shop under --shops-dir that has a ledger.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output instead of tables.")] = False,
) -> None:
    """Print a reviewer's privacy report: lifetime epsilon and delta, unit, adjacency, accountant, sampling, rounds."""
    from client.privacy_view import load_ledgers, render
    from privacy.report import federation_summary

    ledgers = load_ledgers(shops_dir, list(shops or []), every_shop=every_shop)
    reports = [lg.report() for lg in ledgers]
    summary = federation_summary(ledgers) if len(ledgers) > 1 else None
    if as_json:
        console.print_json(json.dumps(reports[0] if summary is None else {"shops": reports, "across_shops": summary}))
    else:
        render(console, reports, summary)


@app.command("rotate-keys")
def rotate_keys(
    shop: Annotated[str, typer.Argument(help="Shop id (its folder name under --shops-dir).")],
    shops_dir: ShopsDir = Path("var/shops"),
    feature_store: Annotated[Path, typer.Option(help="Feature store with the shop's rows.")] = Path("var/feature_store.sqlite"),
) -> None:
    """Re-encrypt the shop's examples, ledger and feature-store rows under a new data key, then retire the old keys."""
    from client.rotate import rotate_shop_keys

    report = rotate_shop_keys(ShopPaths(shop, shops_dir / shop), feature_store=feature_store)
    console.print_json(json.dumps(asdict(report)))


@app.command("node-key")
def node_key(shop: Annotated[str, typer.Argument(help="Shop id (its folder name under --shops-dir).")],
             shops_dir: ShopsDir = Path("var/shops")) -> None:
    """Create the shop's SuperNode key pair (EC P-384, OpenSSH); send only the .pub file to the central team."""
    from client.node import create_node_key

    key = create_node_key(ShopPaths(shop, shops_dir / shop))
    console.print(f"{'created' if key.created else 'kept existing'} private key {key.private_key} (owner-only, stays here)")
    console.print(f"public key for the central team: [bold]{key.public_key}[/bold]  {key.fingerprint}")


@app.command()
def supernode(
    shop: Annotated[str, typer.Argument(help="Shop id (its folder name under --shops-dir).")],
    superlink: Annotated[str, typer.Option(help="The central team's SuperLink, host:port.")],
    ca_cert: Annotated[Path, typer.Option(help="The federation's CA certificate (ca.crt from the central team).")],
    shops_dir: ShopsDir = Path("var/shops"),
    port: Annotated[int, typer.Option(help="Local runtime port (distinct per SuperNode on one host).")] = 9094,
    epsilon_budget: Annotated[float | None, typer.Option(help="The shop's own lifetime epsilon budget.")] = None,
) -> None:
    """Run the shop's SuperNode in the foreground: TLS to the SuperLink, node key, shop id and data directory."""
    from client.node import SuperNodeSettings, exec_supernode

    exec_supernode(ShopPaths(shop, shops_dir / shop),
                   SuperNodeSettings(superlink=superlink, ca_cert=ca_cert, port=port, epsilon_budget=epsilon_budget))
