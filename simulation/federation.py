"""Run the real Flower app (ServerApp + ClientApp) in Flower's simulation engine, one SuperNode per shop."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from fedprice.appconfig import ENV_VAR, resolve
from fedprice.errors import FedpriceError

log = logging.getLogger(__name__)


def flower_env() -> None:
    """Telemetry and update checks off, for this process and every process it starts."""
    os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
    os.environ["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")


class _BelowWarning(logging.Filter):
    """Keep Flower's warnings and errors, minus the notice that the Python entry point is deprecated."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING and "`run_simulation` function is deprecated" not in record.getMessage()


def simulate(*, shops: list[str], overrides: dict[str, Any], parallel: int = 2, verbose: bool = False) -> dict[str, Any]:
    """Run the federation over `shops` in the simulation engine and return the published manifest."""
    flower_env()
    cfg = resolve({**overrides, "shops": ",".join(shops)})
    for key in ("shops-dir", "registry-dir", "central-dir"):
        cfg[key] = str(Path(cfg[key]).resolve())
    registry = Path(cfg["registry-dir"])
    before = (registry / "LATEST").read_text() if (registry / "LATEST").exists() else None
    callers = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = json.dumps(cfg)  # the Ray actors inherit it (run_simulation passes no run_config)
    try:
        _run(shops, parallel=parallel, verbose=verbose)
    finally:  # the next run in this process must not inherit this run's settings
        if callers is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = callers
    after = (registry / "LATEST").read_text() if (registry / "LATEST").exists() else None
    if after is None or after == before:
        raise FedpriceError("the federated run did not publish a model (see the Flower log above); "
                            "the registry keeps its previous model")
    manifest: dict[str, Any] = json.loads((registry / after.strip() / "manifest.json").read_text())
    return manifest


def _run(shops: list[str], *, parallel: int, verbose: bool) -> None:
    """Flower's simulation engine over the ServerApp and one ClientApp per shop (settings from the environment)."""
    from flwr.simulation import run_simulation

    from client.client_app import app as client_app
    from server.server_app import app as server_app

    flwr_logger = logging.getLogger("flwr")
    quiet = _BelowWarning() if not verbose else None
    propagate = flwr_logger.propagate
    if quiet:
        flwr_logger.addFilter(quiet)  # Flower resets its own levels; our round lines carry the story
        flwr_logger.propagate = False  # Flower prints through its own handler: once is enough
    try:
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=len(shops),
            backend_config={
                "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                "init_args": {"num_cpus": parallel, "include_dashboard": False, "log_to_driver": True},
            },
        )
    finally:
        if quiet:
            flwr_logger.removeFilter(quiet)
            flwr_logger.propagate = propagate
