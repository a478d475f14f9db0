"""`fedprice shop privacy-report` and `rotate-keys` as a shop's IT and a privacy reviewer use them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from client.storage import ShopPaths
from fedprice.cli import app
from fedprice.errors import ConfigError
from privacy.ledger import PrivacyLedger

WIDE = {"COLUMNS": "240"}


def _json(stdout: str) -> dict:  # type: ignore[type-arg]
    """The JSON document a command printed (log lines may precede it: fedprice's logs go to stdout)."""
    lines = stdout.splitlines()
    return json.loads("\n".join(lines[lines.index("{"):]))


def _shop(shops_dir: Path, shop: str, rounds: int) -> PrivacyLedger:
    """A shop that ran `rounds` rounds of 20 steps at sigma 1, q 0.05, and had one round refused."""
    paths = ShopPaths(shop, shops_dir / shop)
    store = paths.ledger_store(paths.keyring(create=True))
    ledger = store.load(budget=3.0, delta=1e-4)
    for rnd in range(1, rounds + 1):
        ledger.record(run_id="run-1", server_round=rnd, history=[*ledger.history, (1.0, 0.05, 20)], sigma=1.0,
                      sample_rate=0.05, steps=20, clipping_norm=1.0)
    ledger.refuse(run_id="run-1", server_round=rounds + 1, reason=f"shop {shop}: budget exhausted")
    store.save(ledger)
    return ledger


def test_the_report_table_shows_what_a_reviewer_asks_for(tmp_path: Path) -> None:
    _shop(tmp_path, "S1", 1)
    res = CliRunner().invoke(app, ["shop", "privacy-report", "S1", "--shops-dir", str(tmp_path)], env=WIDE)
    assert res.exit_code == 0, res.output
    out = res.output
    for text in ("shop S1: privacy spent", "epsilon (lifetime)", "1.977", "of budget 3.000", "delta", "1.00e-04",
                 "one customer of one shop", "add/remove one customer", "RDP (Opacus RDPAccountant)",
                 "Poisson sampling (Opacus DPDataLoader) in every recorded round", "not covered by DP",
                 "released without DP", "secure_mode=False", "the losses add up", "refused: budget"):
        assert text in out, text


def test_the_json_report_and_what_a_customer_of_several_shops_spends(tmp_path: Path) -> None:
    a, b = _shop(tmp_path, "S1", 1), _shop(tmp_path, "S2", 5)
    res = CliRunner().invoke(app, ["shop", "privacy-report", "S1", "--shops-dir", str(tmp_path), "--json"], env=WIDE)
    assert res.exit_code == 0, res.output
    one = _json(res.stdout)
    assert one["epsilon"] == pytest.approx(1.977, abs=5e-3) and one["poisson_sampling"] is True
    assert one["unit_of_privacy"].startswith("one customer") and len(one["refusals"]) == 1
    res = CliRunner().invoke(app, ["shop", "privacy-report", "--all", "--shops-dir", str(tmp_path), "--json"], env=WIDE)
    both = _json(res.stdout)
    assert [r["shop_id"] for r in both["shops"]] == ["S1", "S2"]
    assert both["across_shops"]["customer_of_all_shops"]["epsilon"] == pytest.approx(a.epsilon() + b.epsilon(), abs=1e-3)
    res = CliRunner().invoke(app, ["shop", "privacy-report", "S1", "S2", "--shops-dir", str(tmp_path)], env=WIDE)
    assert "across 2 shops" in res.output and f"{a.epsilon() + b.epsilon():.4f}" in res.output


def test_a_shop_without_a_ledger_gets_a_clear_message(tmp_path: Path) -> None:
    ShopPaths("S9", tmp_path / "S9").keyring(create=True)
    res = CliRunner().invoke(app, ["shop", "privacy-report", "S9", "--shops-dir", str(tmp_path)])
    assert isinstance(res.exception, ConfigError) and res.exception.exit_code == 78
    assert "shop S9 has no privacy ledger" in str(res.exception) and "it has not trained" in str(res.exception)


def test_rotate_keys_command(tmp_path: Path) -> None:
    ledger = _shop(tmp_path, "S1", 2)
    res = CliRunner().invoke(app, ["shop", "rotate-keys", "S1", "--shops-dir", str(tmp_path),
                                   "--feature-store", str(tmp_path / "none.sqlite")], env=WIDE)
    assert res.exit_code == 0, res.output
    assert _json(res.stdout)["new_version"] == 2
    paths = ShopPaths("S1", tmp_path / "S1")
    assert sorted(paths.keyring(create=False).data_keys) == [2]
    assert paths.ledger_store().load().epsilon() == pytest.approx(ledger.epsilon())
