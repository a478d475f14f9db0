"""The repo is a Flower app: `flwr run .` on the local simulation connection trains and publishes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from client.prepare import prepare_shop
from client.storage import ShopPaths
from simulation.synthetic import MarketConfig, generate_market

ROOT = Path(__file__).resolve().parents[2]


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.timeout(400)
def test_flwr_run_dot_trains_and_publishes(tmp_path: Path) -> None:
    market = tmp_path / "market"
    generate_market(MarketConfig.small(), market)
    for shop in ("S1", "S2"):
        prepare_shop(ShopPaths(shop, market / shop), feature_store=tmp_path / "fs.sqlite")
    (market / "truth").rename(tmp_path / "truth")  # only shop folders under shops-dir
    (market / "S3").rename(tmp_path / "S3-unused")
    home = tmp_path / "flwr-home"
    env = {**os.environ, "FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    run_config = (f"shops-dir='{market}' registry-dir='{tmp_path / 'registry'}' central-dir='{tmp_path / 'central'}' "
                  "num-server-rounds=1 min-train-nodes=2")
    try:
        proc = subprocess.run(
            ["flwr", "run", ".", "--stream", "--run-config", run_config,
             "--federation-config", "num-supernodes=2 client-resources-num-cpus=1"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=360,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        latest = (tmp_path / "registry" / "LATEST").read_text().strip()
        manifest = json.loads((tmp_path / "registry" / latest / "manifest.json").read_text())
        assert set(manifest["privacy"]["per_shop"]) == {"S1", "S2"}
        assert manifest["rounds_completed"] == 1
    finally:
        for pid in _processes_mentioning(str(home)):  # the managed SuperLink outlives `flwr run`
            os.kill(pid, signal.SIGTERM)
