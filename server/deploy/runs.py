"""Training runs on the deployment engine: launch (`flwr run … --stream`), list, log, stop, and what each published."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedprice.appconfig import DEFAULTS
from fedprice.errors import ConfigError, FedpriceError
from server.deploy.connection import DEFAULT_CONNECTION
from server.deploy.flwrcli import clean, flwr_command, flwr_json
from server.deploy.layout import CentralLayout, flower_env

log = logging.getLogger(__name__)
_STARTED = re.compile(r"Successfully started run (\d+)")
PATH_KEYS = ("shops-dir", "registry-dir", "central-dir")


class RunFailed(FedpriceError):
    """The run ended in any state but completed; the registry keeps its previous model."""

    exit_code = 70


@dataclass(frozen=True)
class RunOutcome:
    """How a launched run ended (or that it is still going, when not streamed)."""

    run_id: str
    status: str
    details: str
    model_version: str | None


def run_config(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Check override keys against the app's run config and coerce values to the defaults' types; paths made absolute."""
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown run-config key(s) {', '.join(unknown)}; known: {', '.join(sorted(DEFAULTS))}")
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        kind = type(DEFAULTS[key])
        try:
            out[key] = kind(value) if kind is not bool else str(value).lower() in ("1", "true", "yes")
        except ValueError:
            raise ConfigError(f"run-config {key}={value!r}: expected {kind.__name__}") from None
        if key in PATH_KEYS:
            out[key] = str(Path(out[key]).expanduser().resolve())
    return out


def format_run_config(cfg: Mapping[str, Any]) -> str:
    """`k=v` pairs as `flwr run --run-config` parses them (strings quoted as TOML basic strings)."""
    parts = []
    for key, value in cfg.items():
        if isinstance(value, str):
            if '"' in value or "\\" in value:
                raise ConfigError(f"run-config {key}: quotes and backslashes are not supported in {value!r}")
            parts.append(f'{key}="{value}"')
        elif isinstance(value, bool):
            parts.append(f"{key}={'true' if value else 'false'}")
        else:
            parts.append(f"{key}={value}")
    return " ".join(parts)


def check_app_bundle(app_dir: Path) -> tuple[int, int]:
    """Build the FAB exactly as `flwr run` will and refuse one carrying data; returns (bytes, files)."""
    from flwr.cli.build import build_fab_from_disk

    if not (app_dir / "pyproject.toml").exists():
        raise ConfigError(f"{app_dir} is not the fedprice app (no pyproject.toml): run from the repository root or pass --app")
    try:
        fab = build_fab_from_disk(app_dir)
    except ValueError as exc:
        raise ConfigError(f"cannot bundle the app in {app_dir}: {exc}") from None
    names = zipfile.ZipFile(io.BytesIO(fab)).namelist()
    data = [n for n in names if n.startswith(("var/", ".venv/")) or "/raw/" in n or n.endswith(".enc")]
    if data:
        raise ConfigError(f"the app bundle would ship data files ({', '.join(data[:5])}); exclude them in .gitignore")
    return len(fab), len(names)


def published_versions(registry: Path) -> dict[str, str]:
    """Flower run id -> model version, for every model in the registry."""
    out: dict[str, str] = {}
    for manifest in sorted(registry.glob("*/manifest.json")):
        run_id = json.loads(manifest.read_text()).get("flower_run_id")
        if run_id:
            out[str(run_id)] = manifest.parent.name
    return out


def list_runs(layout: CentralLayout, *, connection: str = DEFAULT_CONNECTION, run_id: str | None = None) -> list[dict[str, Any]]:
    """The SuperLink's runs (all, or one), newest first, as Flower reports them."""
    args = ["ls", connection] + (["--run-id", str(run_id)] if run_id else [])
    runs: list[dict[str, Any]] = flwr_json(layout, args).get("runs", [])
    return sorted(runs, key=lambda r: str(r.get("pending-at", "")), reverse=True)


def stop_run(layout: CentralLayout, run_id: str, *, connection: str = DEFAULT_CONNECTION) -> None:
    """Ask the SuperLink to stop a run (its ServerApp is ended; nothing is published)."""
    flwr_json(layout, ["stop", str(run_id), connection])
    log.info("run %s: stop requested", run_id)


def show_log(layout: CentralLayout, run_id: str, *, connection: str = DEFAULT_CONNECTION, follow: bool = False) -> int:
    """Print a run's log (Flower's `flwr log`), following it until the run ends when `follow` is set."""
    cmd = flwr_command(["log", str(run_id), connection, "--stream" if follow else "--show"])
    return subprocess.run(cmd, env=flower_env(layout.flwr_home), check=False).returncode


def launch_run(layout: CentralLayout, app_dir: Path, overrides: Mapping[str, Any], *, registry: Path,
               connection: str = DEFAULT_CONNECTION, stream: bool = True,
               echo: Callable[[str], None] = lambda line: None) -> RunOutcome:
    """`flwr run <app> <connection> --run-config … [--stream]`; with streaming, wait for the end and check the outcome."""
    app_dir = app_dir.expanduser().resolve()
    cfg = run_config({**overrides, "registry-dir": str(registry), "central-dir": str(layout.root)})
    size, files = check_app_bundle(app_dir)
    log.info("app bundle: %d files, %.0f KB (code and config only)", files, size / 1024)
    cmd = flwr_command(["run", str(app_dir), connection, "--run-config", format_run_config(cfg)])
    if stream:
        cmd.append("--stream")
    run_id = None
    tail: list[str] = []
    with subprocess.Popen(cmd, env=flower_env(layout.flwr_home), cwd=app_dir, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                echo(line.rstrip("\n"))
                tail = (tail + [line])[-20:]
                if run_id is None and (m := _STARTED.search(line)):
                    run_id = m.group(1)
        except BaseException:
            proc.terminate()
            raise
    if run_id is None:
        raise RunFailed(f"the SuperLink did not start the run: {clean(''.join(tail))[-600:]}")
    runs = list_runs(layout, connection=connection, run_id=run_id)
    status = str(runs[0]["status"]) if runs else "unknown"
    details = str(runs[0].get("status-details", "")) if runs else ""
    outcome = RunOutcome(run_id, status, "" if details == "N/A" else details, published_versions(registry).get(run_id))
    if stream and not status.startswith("finished"):
        raise RunFailed(f"the log stream of run {run_id} ended while the run is {status}: "
                        f"follow it with `fedprice federation log {run_id} --follow`")
    if stream and status != "finished:completed":
        reason = outcome.details or f"see `fedprice federation log {run_id}`"
        kept = "" if "keeps its previous model" in reason else "; the registry keeps its previous model"
        raise RunFailed(f"run {run_id} ended {status}: {reason}{kept}")
    return outcome
