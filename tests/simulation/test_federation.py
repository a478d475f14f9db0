"""The in-process simulation runner: each run gets exactly its own settings."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from fedprice.appconfig import DEFAULTS, ENV_VAR
from fedprice.errors import FedpriceError
from simulation import federation


def test_a_run_does_not_inherit_the_previous_runs_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(federation, "_run", lambda shops, **_: seen.append(json.loads(os.environ[ENV_VAR])))
    monkeypatch.delenv(ENV_VAR, raising=False)
    base = {"registry-dir": str(tmp_path / "registry"), "shops-dir": str(tmp_path), "central-dir": str(tmp_path / "c")}
    for overrides in ({"local-epochs": 3, "learning-rate": 0.001, "dp-enabled": False}, {"learning-rate": 0.003}):
        with pytest.raises(FedpriceError, match="did not publish a model"):  # the stand-in engine publishes nothing
            federation.simulate(shops=["S1", "S2"], overrides={**base, **overrides})
    assert seen[0]["local-epochs"] == 3 and seen[0]["dp-enabled"] is False
    assert seen[1]["local-epochs"] == DEFAULTS["local-epochs"] and seen[1]["dp-enabled"] is True
    assert seen[1]["learning-rate"] == 0.003
    assert ENV_VAR not in os.environ


def test_a_callers_run_config_stays_the_base_of_every_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(federation, "_run", lambda shops, **_: seen.append(json.loads(os.environ[ENV_VAR])))
    monkeypatch.setenv(ENV_VAR, json.dumps({"batch-size": 128}))
    base = {"registry-dir": str(tmp_path / "registry"), "shops-dir": str(tmp_path), "central-dir": str(tmp_path / "c")}
    for overrides in ({"local-epochs": 2}, {}):
        with pytest.raises(FedpriceError):
            federation.simulate(shops=["S1"], overrides={**base, **overrides})
    assert [s["batch-size"] for s in seen] == [128, 128]
    assert [s["local-epochs"] for s in seen] == [2, DEFAULTS["local-epochs"]]
    assert json.loads(os.environ[ENV_VAR]) == {"batch-size": 128}
