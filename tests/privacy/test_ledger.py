"""The epsilon ledger: survives restarts, never silently resets (tampered, deleted, rolled back, overwritten)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedprice.errors import BudgetExhaustedError
from privacy.crypto import DecryptionError
from privacy.keys import ShopKeyring
from privacy.ledger import LEDGER_CONTEXT, LedgerIntegrityError, LedgerStore, PrivacyLedger
from privacy.report import federation_summary

ROUND = (1.0, 0.05, 20)  # sigma, q, steps: epsilon 1.977 per 20 steps at delta 1e-4, 3.387 after 100


def _store(root: Path, shop: str = "S1") -> LedgerStore:
    return LedgerStore(root / shop / "ledger.enc", ShopKeyring.load(shop, root / shop / "keys"))


def _train(ledger: PrivacyLedger, run_id: str, rnd: int) -> None:
    """What client.train does after a round: adopt the accountant's grown history."""
    ledger.check(sigma=1.0, sample_rate=0.05, steps=20)
    ledger.record(run_id=run_id, server_round=rnd, history=[*ledger.history, ROUND], sigma=1.0, sample_rate=0.05,
                  steps=20, clipping_norm=1.0)


def test_a_restarted_shop_keeps_its_epsilon_across_rounds_and_runs(tmp_path: Path) -> None:
    eps = []
    for run_id, rounds in (("run-a", (1, 2, 3)), ("run-b", (1, 2))):
        for rnd in rounds:
            store = _store(tmp_path)  # a fresh process: new keyring and store objects, ledger read from disk
            ledger = store.load(budget=5.0, delta=1e-4)
            _train(ledger, run_id, rnd)
            store.save(ledger)
            eps.append(_store(tmp_path).load().epsilon())
    assert all(a < b for a, b in zip(eps, eps[1:], strict=False))
    assert eps[0] == pytest.approx(1.977, abs=5e-3) and eps[-1] == pytest.approx(3.387, abs=5e-3)
    final = _store(tmp_path).load()
    assert len(final.entries) == 5 and sorted({e.run_id for e in final.entries}) == ["run-a", "run-b"]


def test_a_round_past_the_budget_is_refused_and_the_refusal_is_kept(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ledger = store.load(budget=2.5, delta=1e-4)
    _train(ledger, "r", 1)
    _train(ledger, "r", 2)  # 2.42
    refused = "shop S1: budget exhausted: the next round would reach epsilon=2.779 > budget 2.500"
    with pytest.raises(BudgetExhaustedError, match=refused):
        _train(ledger, "r", 3)
    ledger.refuse(run_id="r", server_round=3, reason="budget exhausted")
    store.save(ledger)
    again = _store(tmp_path).load()
    assert again.epsilon() == pytest.approx(2.42, abs=5e-3) and again.refusals[0]["server_round"] == 3


def test_a_tampered_ledger_fails_loudly(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ledger = store.load(budget=3.0, delta=1e-4)
    _train(ledger, "r", 1)
    store.save(ledger)
    blob = bytearray(store.path.read_bytes())
    blob[len(blob) // 2] ^= 0x40
    store.path.write_bytes(bytes(blob))
    with pytest.raises(DecryptionError, match=f"cannot decrypt privacy ledger {store.path}"):
        _store(tmp_path).load(budget=3.0, delta=1e-4)


def test_a_deleted_ledger_is_not_silently_restarted_at_zero(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ledger = store.load(budget=3.0, delta=1e-4)
    _train(ledger, "r", 1)
    store.save(ledger)
    store.path.unlink()
    missing = r"is missing, but it was saved 1 time\(s\) before; restore it from backup \(refusing to restart epsilon"
    with pytest.raises(LedgerIntegrityError, match=missing):
        _store(tmp_path).load(budget=3.0, delta=1e-4)


def test_an_older_copy_put_back_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ledger = store.load(budget=5.0, delta=1e-4)
    _train(ledger, "r", 1)
    store.save(ledger)
    backup = store.path.read_bytes()
    _train(ledger, "r", 2)
    store.save(ledger)
    store.path.write_bytes(backup)
    with pytest.raises(LedgerIntegrityError, match=r"older copy \(save #1; the anchor records save #2\)"):
        _store(tmp_path).load()
    store.anchor_path.unlink()
    store.path.write_bytes(backup)
    with pytest.raises(LedgerIntegrityError, match="ledger anchor .* is missing"):
        _store(tmp_path).load()


def test_another_shops_ledger_cannot_be_swapped_in(tmp_path: Path) -> None:
    s1, s2 = _store(tmp_path, "S1"), _store(tmp_path, "S2")
    for store in (s1, s2):
        ledger = store.load(budget=3.0, delta=1e-4)
        _train(ledger, "r", 1)
        store.save(ledger)
    s1.path.write_bytes(s2.path.read_bytes())
    with pytest.raises(DecryptionError, match="cannot decrypt privacy ledger"):
        _store(tmp_path, "S1").load()


def test_a_concurrent_save_is_refused_instead_of_losing_a_round(tmp_path: Path) -> None:
    a, b = _store(tmp_path).load(budget=5.0, delta=1e-4), _store(tmp_path).load(budget=5.0, delta=1e-4)
    _train(a, "r", 1)
    _store(tmp_path).save(a)
    _train(b, "r", 1)
    with pytest.raises(LedgerIntegrityError, match="was saved by someone else since it was loaded"):
        _store(tmp_path).save(b)
    assert _store(tmp_path).load().epsilon() == pytest.approx(1.977, abs=5e-3)


def test_epsilon_never_goes_down_when_recording(tmp_path: Path) -> None:
    ledger = PrivacyLedger(shop_id="S1", budget=9.0, delta=1e-4)
    _train(ledger, "r", 1)
    _train(ledger, "r", 2)
    with pytest.raises(LedgerIntegrityError, match="does not extend the ledger"):
        ledger.record(run_id="r", server_round=3, history=[ROUND], sigma=1.0, sample_rate=0.05, steps=20, clipping_norm=1.0)


def test_a_ledger_written_before_anchors_existed_still_loads(tmp_path: Path) -> None:
    store = _store(tmp_path)
    doc = PrivacyLedger(shop_id="S1", budget=3.0, delta=1e-4, history=[ROUND]).state_dict()
    del doc["seq"]
    store.path.write_bytes(store.keyring.seal(json.dumps(doc).encode(), dict(LEDGER_CONTEXT)))
    ledger = store.load()
    assert ledger.epsilon() == pytest.approx(1.977, abs=5e-3)
    store.save(ledger)
    assert store.anchor_path.exists() and _store(tmp_path).load().seq == 1


def test_state_dict_round_trip() -> None:
    ledger = PrivacyLedger(shop_id="S1", budget=3.0, delta=1e-4)
    _train(ledger, "r", 1)
    other = PrivacyLedger(shop_id="x", budget=1.0, delta=1.0)
    other.load_state_dict(json.loads(json.dumps(ledger.state_dict())))
    assert other == ledger


def test_the_reviewer_report_says_what_a_privacy_reviewer_asks(tmp_path: Path) -> None:
    ledger = PrivacyLedger(shop_id="S1", budget=3.0, delta=1e-4)
    _train(ledger, "r", 1)
    rep = ledger.report()
    assert rep["epsilon"] == pytest.approx(1.977, abs=5e-3) and rep["delta"] == 1e-4
    assert rep["unit_of_privacy"].startswith("one customer of one shop")
    assert rep["adjacency"].startswith("add/remove one customer")
    assert "RDP" in rep["accountant"] and "every round and run" in rep["accountant"]
    assert rep["poisson_sampling"] is True and "assumption holds" in rep["sampling"]
    assert any("metrics" in x and "without DP" in x for x in rep["not_covered"])
    assert any("secure_mode=False" in x for x in rep["limitations"])
    assert "losses add up" in rep["multi_shop_customers"]
    assert rep["rounds_trained"] == 1 and rep["total_steps"] == 20 and rep["noise_multipliers"] == [1.0]
    ledger.entries[0].poisson_sampling = False
    assert ledger.report()["poisson_sampling"] is False and "did NOT use Poisson" in ledger.report()["sampling"]
    other = PrivacyLedger(shop_id="S2", budget=3.0, delta=1e-4, history=[(1.0, 0.05, 100)])
    both = federation_summary([ledger, other])
    assert both["customer_of_all_shops"]["epsilon"] == pytest.approx(1.977 + 3.387, abs=1e-2)
    assert both["customer_of_one_shop"]["epsilon_max"] == pytest.approx(3.387, abs=5e-3)
    assert both["customer_of_all_shops"]["delta"] == pytest.approx(2e-4)


def test_a_round_trained_without_dp_leaves_no_guarantee_and_says_so(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ledger = store.load(budget=3.0, delta=1e-4)
    _train(ledger, "r", 1)
    ledger.record_unprotected(run_id="baseline", server_round=1)
    store.save(ledger)
    again = _store(tmp_path).load()
    assert again.epsilon() == float("inf")
    with pytest.raises(BudgetExhaustedError, match="1 round\\(s\\) were trained without DP"):
        _train(again, "r", 2)
    rep = again.report()
    assert rep["dp_guarantee"] is False and rep["epsilon"] is None and rep["unprotected_rounds"][0]["run_id"] == "baseline"
    assert json.loads(json.dumps(rep, allow_nan=False))["epsilon"] is None  # strict JSON, no Infinity
    assert federation_summary([again])["customer_of_all_shops"]["epsilon"] is None
