"""`fedprice federation …`: what the central team runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from server.registry import latest_version_dir, load_verified
from server.signing import load_public_key

app = typer.Typer(help="Central team: registry, signing, training runs.", no_args_is_help=True)
console = Console()


@app.command()
def models(
    registry: Annotated[Path, typer.Option()] = Path("var/registry"),
    public_key: Annotated[Path, typer.Option()] = Path("var/central/keys/signing.pub"),
) -> None:
    """Verify and show the newest published model's manifest."""
    _, manifest = load_verified(latest_version_dir(registry), load_public_key(public_key))
    console.print_json(json.dumps(manifest))


from server.deploy.commands import register_deploy_commands  # noqa: E402  (commands defined beside the deployment code)

register_deploy_commands(app)
