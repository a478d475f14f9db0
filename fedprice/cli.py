"""The one console entry point, `fedprice`, with a command group per role."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from client.cli import app as shop_app
from fedprice import logs
from fedprice.errors import FedpriceError
from pricing_api.cli import app as api_app
from server.cli import app as federation_app
from simulation.cli import app as sim_app

app = typer.Typer(help="fedprice: federated, privacy-preserving, personalised pricing.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)  # locals may hold keys: never print them
app.add_typer(shop_app, name="shop")
app.add_typer(federation_app, name="federation")
app.add_typer(api_app, name="api")
app.add_typer(sim_app, name="sim")


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    """Configure logging once for every command."""
    logs.configure(verbose)


@app.command()
def demo(
    fast: Annotated[bool, typer.Option(help="A small slice (3 shops, few customers, 2 rounds) for a quick look.")] = False,
) -> None:
    """Run the main job end to end on the real default data (Ta Feng) and print the summary."""
    from simulation.demo import run_demo

    run_demo(fast=fast)


def run() -> None:
    """Entry point: usage errors as click prints them; product and file errors as one line with an exit code."""
    err = Console(stderr=True, width=200)
    try:
        app()
    except FedpriceError as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True, markup=True, highlight=False)
        raise SystemExit(exc.exit_code) from None
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
        err.print(f"[red]error:[/red] {text}", soft_wrap=True, highlight=False)
        raise SystemExit(66) from None
