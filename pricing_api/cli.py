"""`fedprice api …`: what the storefront's operators run."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Pricing API: serve quotes over HTTP, manage API keys.", no_args_is_help=True)
err = Console(stderr=True)

KeysFile = Annotated[Path | None, typer.Option("--keys-file", help="API keys file (default: the API settings' api_keys_file).")]


def _keys_file(path: Path | None) -> Path:
    if path is not None:
        return path
    from pricing_api.settings import ApiSettings

    return ApiSettings().api_keys_file


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: Annotated[int, typer.Option(help="Processes; each keeps its own caches, metrics and consistency memory.")] = 1,
    access_log: Annotated[bool, typer.Option(help="uvicorn's per-request access log.")] = False,
) -> None:
    """Serve the pricing API with uvicorn on the newest verified model."""
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = [sys.executable, "-m", "uvicorn", "pricing_api.app:create_app", "--factory", "--host", host, "--port", str(port),
            "--workers", str(workers), "--log-level", "info", "--access-log" if access_log else "--no-access-log"]
    # A fresh process (this one has loaded the whole CLI, Flower and torch included): replaced, so signals reach uvicorn.
    os.execve(sys.executable, args, env)


@app.command("create-key")
def create_key_command(
    name: Annotated[str, typer.Option(help="Who uses the key, e.g. storefront-eu.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: quote, admin.")] = "quote",
    keys_file: KeysFile = None,
) -> None:
    """Create an API key: printed once on stdout, stored only as its sha256."""
    from pricing_api.apikeys import create_key, parse_scopes

    path = _keys_file(keys_file)
    key = create_key(path, name=name, scopes=parse_scopes(scopes))
    err.print(f"created key {name!r} ({scopes}) in {path}; it is shown once, store it now:")
    typer.echo(key)


@app.command("revoke-key")
def revoke_key_command(name: Annotated[str, typer.Option(help="The key's name.")], keys_file: KeysFile = None) -> None:
    """Remove a key (a running server notices within its keys_refresh_seconds)."""
    from pricing_api.apikeys import revoke_key

    path = _keys_file(keys_file)
    revoke_key(path, name=name)
    err.print(f"revoked key {name!r} in {path}")


@app.command("list-keys")
def list_keys_command(keys_file: KeysFile = None) -> None:
    """List key names, ids, scopes and creation times (never the keys)."""
    from pricing_api.apikeys import load_key_file

    for k in load_key_file(_keys_file(keys_file)):
        typer.echo(f"{k.name}\t{k.key_id}\t{','.join(sorted(k.scopes))}\t{k.created_at}")
