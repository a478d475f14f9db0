"""The Flower run configuration: defaults (mirroring pyproject's [tool.flwr.app.config]) and overrides.

Precedence: Flower's run_config (pyproject defaults fused with `--run-config`, under `flwr run`) >
the FEDPRICE_RUN_CONFIG environment variable (JSON; how the in-process simulation passes its
settings, since `run_simulation` gives apps an empty run_config) > the defaults below.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

ENV_VAR = "FEDPRICE_RUN_CONFIG"

DEFAULTS: dict[str, Any] = {
    "num-server-rounds": 5,
    "local-epochs": 1,
    "batch-size": 64,
    "learning-rate": 0.01,
    "clipping-norm": 1.0,
    "epsilon-budget": 3.0,
    "shop-epsilon-budgets": "",
    "fraction-train": 1.0,
    "min-train-nodes": 2,
    "round-timeout": 600,
    "shops-dir": "var/shops",
    "shops": "",
    "registry-dir": "var/registry",
    "central-dir": "var/central",
    "seed": 7,
    "dp-enabled": True,  # false: plain local Adam epochs, no ledger charge (evaluation baseline only)
}


def resolve(run_config: Mapping[str, Any]) -> dict[str, Any]:
    """Merge defaults, the environment override and Flower's run_config."""
    merged = dict(DEFAULTS)
    env = os.environ.get(ENV_VAR)
    if env:
        merged.update(json.loads(env))
    merged.update(dict(run_config))
    return merged
