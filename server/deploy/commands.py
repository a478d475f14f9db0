"""`fedprice federation init-ca | superlink | register-shop | run | runs | log | stop`: the deployment commands."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fedprice.errors import ConfigError
from server.deploy.connection import DEFAULT_CONNECTION
from server.deploy.layout import CentralLayout
from server.deploy.superlink import DEFAULT_PORT

console = Console(width=None if sys.stdout.isatty() else 160)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

CentralDir = Annotated[Path, typer.Option(help="The central team's directory: certs/, superlink/state.db, flwr/config.toml.")]
Connection = Annotated[str, typer.Option(help="SuperLink connection name in <central-dir>/flwr/config.toml.")]
Registry = Annotated[Path, typer.Option(help="Model registry the ServerApp publishes to (and the pricing API reads).")]


def init_ca(
    central_dir: CentralDir = Path("var/central"),
    host: Annotated[list[str] | None, typer.Option(help="Extra DNS name or IP shops dial (repeatable).")] = None,
    days: Annotated[int, typer.Option(help="Validity of the SuperLink certificate.")] = 397,
) -> None:
    """Create the federation CA (once) and issue the SuperLink's TLS certificate for localhost, 127.0.0.1 and --host."""
    from server.deploy.certs import init_ca as make

    layout = CentralLayout(central_dir)
    ca, server = make(layout, host or [], days=days)
    console.print(f"CA certificate (give it to every shop): [bold]{ca.path}[/bold]  sha256 {ca.sha256[:16]}…")
    console.print(f"CA private key (keep it here, owner-only): {layout.ca_key}")
    console.print(f"SuperLink certificate: {server.path} for {', '.join(server.hosts)}, valid until {server.not_after}")


def superlink(
    central_dir: CentralDir = Path("var/central"),
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0 for remote shops).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="The one HTTPS port for the Fleet, Control and Runtime APIs.")] = DEFAULT_PORT,
    connection: Connection = DEFAULT_CONNECTION,
    log_file: Annotated[Path | None, typer.Option(help="Also write the SuperLink's log here (rotated daily).")] = None,
) -> None:
    """Run the SuperLink in the foreground: TLS, SuperNode authentication, persistent state, no runtime installs."""
    from server.deploy.superlink import SuperLinkSettings, exec_superlink

    settings = SuperLinkSettings(CentralLayout(central_dir), host=host, port=port, connection=connection, log_file=log_file)
    console.print(f"SuperLink on https://{host}:{port}  state {settings.layout.database}  "
                  f"flwr connection '{connection}' -> {settings.address}")
    exec_superlink(settings)


def register_shop(
    shop: Annotated[str, typer.Argument(help="Shop id (as the shop's SuperNode names itself).")],
    public_key: Annotated[Path, typer.Argument(help="The shop's supernode.pub (OpenSSH EC public key).")],
    central_dir: CentralDir = Path("var/central"),
    connection: Connection = DEFAULT_CONNECTION,
) -> None:
    """Allow the shop's SuperNode to connect: register its public key with the SuperLink."""
    from server.deploy.shops import register_shop as register

    reg = register(CentralLayout(central_dir), shop, public_key, connection=connection)
    state = "was already registered" if reg.already_registered else "registered"
    console.print(f"shop {reg.shop_id} {state}: SuperNode {reg.node_id}, key {reg.fingerprint}")


def _echo(line: str) -> None:
    typer.echo(line if sys.stdout.isatty() else _ANSI.sub("", line))


def _overrides(pairs: list[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--config '{pair}' must be key=value")
        out[key.strip()] = value.strip().strip('"')
    return out


def run(
    app_dir: Annotated[Path, typer.Option("--app", help="The fedprice app (repository root) to bundle.")] = Path("."),
    central_dir: CentralDir = Path("var/central"),
    registry: Registry = Path("var/registry"),
    rounds: Annotated[int | None, typer.Option(help="num-server-rounds")] = None,
    epsilon: Annotated[float | None, typer.Option(help="epsilon-budget: the run's epsilon plan per shop")] = None,
    min_shops: Annotated[int | None, typer.Option(help="min-train-nodes: fewer shops in a round ends the run")] = None,
    round_timeout: Annotated[int | None, typer.Option(help="round-timeout in seconds")] = None,
    config: Annotated[list[str] | None, typer.Option(help="Any other run-config key=value (repeatable).")] = None,
    connection: Connection = DEFAULT_CONNECTION,
    stream: Annotated[bool, typer.Option(help="Stream the run's log until it ends.")] = True,
) -> None:
    """Launch a training run (`flwr run <app> <connection> --run-config … --stream`) and report its outcome."""
    from server.deploy.runs import launch_run

    named = {"num-server-rounds": rounds, "epsilon-budget": epsilon, "min-train-nodes": min_shops, "round-timeout": round_timeout}
    overrides = {**_overrides(config), **{k: v for k, v in named.items() if v is not None}}
    try:
        out = launch_run(CentralLayout(central_dir), app_dir, overrides, registry=registry, connection=connection,
                         stream=stream, echo=_echo)
    except KeyboardInterrupt:
        console.print("stopped following; the run goes on: `fedprice federation runs` / `log <id>` / `stop <id>`")
        raise typer.Exit(130) from None
    if out.model_version:
        console.print(f"run {out.run_id} {out.status}: published model [bold]{out.model_version}[/bold] to {registry}")
    else:
        console.print(f"run {out.run_id}: {out.status}")


def runs(
    central_dir: CentralDir = Path("var/central"),
    registry: Registry = Path("var/registry"),
    run_id: Annotated[str | None, typer.Option(help="Only this run.")] = None,
    connection: Connection = DEFAULT_CONNECTION,
    as_json: Annotated[bool, typer.Option("--json", help="Flower's JSON.")] = False,
) -> None:
    """List the SuperLink's runs, newest first, with the model each published."""
    from server.deploy.runs import list_runs, published_versions

    found = list_runs(CentralLayout(central_dir), connection=connection, run_id=run_id)
    models = published_versions(registry)
    if as_json:
        console.print_json(json.dumps([{**r, "model-version": models.get(str(r["run-id"]))} for r in found]))
        return
    table = Table(title=f"runs on '{connection}'")
    for col in ("run id", "status", "started (UTC)", "elapsed", "model published", "details"):
        table.add_column(col)
    for r in found:
        details = "" if r.get("status-details") == "N/A" else str(r.get("status-details", ""))
        table.add_row(str(r["run-id"]), str(r["status"]), str(r.get("running-at", "")), f"{float(r.get('elapsed', 0)):.0f} s",
                      models.get(str(r["run-id"]), "-"), details[:120])
    console.print(table)


def log(
    run_id: Annotated[str, typer.Argument(help="The run id (`fedprice federation runs`).")],
    central_dir: CentralDir = Path("var/central"),
    connection: Connection = DEFAULT_CONNECTION,
    follow: Annotated[bool, typer.Option(help="Keep streaming until the run ends.")] = False,
) -> None:
    """Show a run's log (the ServerApp's output: rounds, shops, epsilon, publication)."""
    from server.deploy.runs import show_log

    raise typer.Exit(show_log(CentralLayout(central_dir), run_id, connection=connection, follow=follow))


def stop(
    run_id: Annotated[str, typer.Argument(help="The run id (`fedprice federation runs`).")],
    central_dir: CentralDir = Path("var/central"),
    connection: Connection = DEFAULT_CONNECTION,
) -> None:
    """Stop a run; nothing is published and the registry keeps its previous model."""
    from server.deploy.runs import stop_run

    stop_run(CentralLayout(central_dir), run_id, connection=connection)
    console.print(f"run {run_id}: stop requested")


def shops(central_dir: CentralDir = Path("var/central"), connection: Connection = DEFAULT_CONNECTION) -> None:
    """Registered shops with their SuperNode id, key fingerprint and live status (online, offline, registered)."""
    from server.deploy.shops import node_status, registered_shops

    layout = CentralLayout(central_dir)
    status = node_status(layout, connection=connection)
    table = Table(title=f"shops registered on '{connection}'")
    for col in ("shop", "SuperNode", "status", "key fingerprint", "registered (UTC)"):
        table.add_column(col)
    for shop, reg in sorted(registered_shops(layout).items()):
        table.add_row(shop, reg.node_id, status.get(reg.node_id, "unknown"), reg.fingerprint, reg.registered_at)
    console.print(table)


def register_deploy_commands(app: typer.Typer) -> None:
    """Add the deployment commands to the `fedprice federation` group."""
    app.command("init-ca")(init_ca)
    app.command()(superlink)
    app.command("register-shop")(register_shop)
    app.command()(run)
    app.command()(runs)
    app.command()(log)
    app.command()(stop)
    app.command()(shops)
