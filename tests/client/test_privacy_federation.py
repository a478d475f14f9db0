"""A real (simulated) Flower federation of three shops with known raw ids: one shop's own budget is below the
federation's plan, so it trains until its budget and then refuses while the others train on; the manifest
carries each shop's ledger; nothing that leaves a shop (replies and their metrics, model files, registry,
feature store, logs, the pricing API's audit) holds a raw id or its unkeyed SHA-256."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flwr.common.serde import message_to_proto
from privacy_shops import SHOPS, copy_exports, files_under, prepare_copies, scan

from client.storage import ShopPaths
from fedprice.appconfig import ENV_VAR
from server.strategy import ShopFedAvg
from simulation.federation import simulate

SMALL_BUDGET = 2.0  # shop S3's own budget; the federation plans epsilon 3 over the run
ROUNDS = 3


@dataclass
class Run:
    """Everything one federated run produced, and where."""

    root: Path
    shops: dict[str, ShopPaths]
    ids: dict[str, list[str]]
    manifest: dict[str, Any]
    replies: dict[str, bytes]
    errors: list[tuple[int, str]]
    logs: str
    stdio: bytes
    ray_logs: dict[str, bytes]


@contextmanager
def captured_stdio(path: Path) -> Iterator[None]:
    """Send this process's stdout/stderr (file descriptors and sys streams, so Ray's forwarded worker output too) to `path`."""
    saved = [os.dup(1), os.dup(2)]
    with path.open("w", buffering=1) as fh, redirect_stdout(fh), redirect_stderr(fh):
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


@contextmanager
def captured_logs(buf: io.StringIO) -> Iterator[None]:
    """Every log record of this process at DEBUG, including Flower's (which does not propagate)."""
    handler = logging.StreamHandler(buf)
    handler.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(), logging.getLogger("flwr")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


def _ray_logs() -> dict[str, bytes]:
    """Every file of the Ray sessions this process started (named ..._<driver pid>): worker stdout/stderr, raylet, driver."""
    sessions = [d for d in (Path(tempfile.gettempdir()) / "ray").glob(f"session_2*_{os.getpid()}") if d.is_dir()]
    return files_under(*sessions)


@pytest.fixture(scope="module")
def run(market_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Prepare three shops (fresh random raw ids), run 3 federated rounds with S3 on a budget below the plan."""
    root = tmp_path_factory.mktemp("federation")
    ids = copy_exports(market_dir, root / "shops", distinctive_ids=True)
    replies: dict[str, bytes] = {}
    errors: list[tuple[int, str]] = []
    train, evaluate = ShopFedAvg.aggregate_train, ShopFedAvg.aggregate_evaluate

    def keep(kind: str, server_round: int, msgs: list[Any]) -> None:
        for i, msg in enumerate(msgs):
            replies[f"{kind} reply {server_round}.{i}"] = message_to_proto(msg).SerializeToString()
            if msg.has_error():
                errors.append((msg.error.code, msg.error.reason))

    def spy_train(self: ShopFedAvg, server_round: int, msgs: Any) -> Any:
        msgs = list(msgs)
        keep("train", server_round, msgs)
        return train(self, server_round, msgs)

    def spy_evaluate(self: ShopFedAvg, server_round: int, msgs: Any) -> Any:
        msgs = list(msgs)
        keep("evaluate", server_round, msgs)
        return evaluate(self, server_round, msgs)

    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, captured_logs(buf), captured_stdio(root / "stdio.txt"):
        mp.setenv(ENV_VAR, "")  # simulate() sets it for the Ray workers; restored afterwards
        mp.setattr(ShopFedAvg, "aggregate_train", spy_train)
        mp.setattr(ShopFedAvg, "aggregate_evaluate", spy_evaluate)
        shops = prepare_copies(root / "shops", root / "feature_store.sqlite")
        manifest = simulate(shops=list(SHOPS), verbose=True, overrides={
            "num-server-rounds": ROUNDS, "shops-dir": str(root / "shops"), "registry-dir": str(root / "registry"),
            "central-dir": str(root / "central"), "shop-epsilon-budgets": f"S3={SMALL_BUDGET}",
        })
    return Run(root, shops, ids, manifest, replies, errors, buf.getvalue(), (root / "stdio.txt").read_bytes(),
               _ray_logs())


def test_a_shop_trains_until_its_own_budget_then_refuses_and_the_others_train_on(run: Run) -> None:
    s3 = run.shops["S3"].ledger_store().load()
    trained = len(s3.entries)
    assert s3.budget == SMALL_BUDGET and 0 < s3.epsilon() <= SMALL_BUDGET + 1e-6
    assert 1 <= trained < ROUNDS and [r["server_round"] for r in s3.refusals] == list(range(trained + 1, ROUNDS + 1))
    assert all("budget exhausted: the next round would reach" in r["reason"] for r in s3.refusals)
    refusals = [reason for code, reason in run.errors if code == 4001]  # what the shop told the server
    assert len(refusals) == ROUNDS - trained and all(r.startswith("shop S3: budget exhausted") for r in refusals)
    per_shop = run.manifest["privacy"]["per_shop"]
    assert per_shop["S1"]["rounds_trained"] == ROUNDS and per_shop["S2"]["rounds_trained"] == ROUNDS
    assert per_shop["S3"]["rounds_trained"] == trained
    assert run.manifest["rounds_completed"] == ROUNDS
    assert sum(len(v) for v in run.manifest["refusals"].values()) == ROUNDS - trained


def test_the_manifest_carries_each_training_shops_ledger(run: Run) -> None:
    privacy = run.manifest["privacy"]
    assert privacy["unit"].startswith("customer") and privacy["adjacency"].startswith("add/remove one customer")
    assert privacy["accountant"] == "RDP" and "Poisson" in privacy["mechanism"] and "lifetime" in privacy["epsilon_scope"]
    assert "not protected by DP" in privacy["not_covered"] and "sum of those shops' epsilon" in privacy["multi_shop_customers"]
    assert any("secure_mode=False" in x for x in privacy["limitations"])
    for shop in SHOPS:
        ledger = run.shops[shop].ledger_store().load()
        entry = run.manifest["privacy"]["per_shop"][shop]
        assert entry["epsilon"] == pytest.approx(ledger.epsilon(), abs=1e-4)
        assert entry["delta"] == ledger.delta
        assert entry["sigma"] == pytest.approx(ledger.entries[-1].sigma, abs=1e-4)
        assert entry["steps"] == sum(e.steps for e in ledger.entries)
        assert 0 < ledger.epsilon() <= ledger.budget + 1e-6
        assert [e.epsilon_after for e in ledger.entries] == sorted(e.epsilon_after for e in ledger.entries)


def _outbound(run: Run) -> dict[str, bytes]:
    """Every byte that leaves a shop, plus the shops' own stored artifacts (all but raw exports and quarantine)."""
    shops_dir = run.root / "shops"
    skip = [shops_dir / s / sub for s in SHOPS for sub in ("raw", "quarantine")]
    return {
        **run.replies,
        **files_under(run.root / "registry", run.root / "central"),
        **{p: b for p, b in files_under(run.root).items() if "feature_store.sqlite" in p},
        **files_under(shops_dir, skip=skip),
        "in-process logs": run.logs.encode(),
        "stdout/stderr (incl. Ray worker output)": run.stdio,
        **run.ray_logs,
    }


def test_no_raw_id_or_its_unkeyed_sha256_leaves_a_shop(run: Run) -> None:
    everything = _outbound(run)
    # The capture is real: train replies with weights and metrics, server and client-side log lines.
    train_replies = [b for k, b in everything.items() if k.startswith("train reply") and b"sample-rate" in b]
    assert len(train_replies) == 3 * ROUNDS - len(run.errors)
    assert "round 1: 3 shops trained" in run.logs and "shop S3: budget exhausted" in run.logs  # server side
    assert any(b"WARNING:shop S3: budget exhausted" in b for b in run.ray_logs.values())  # the shop's own process
    assert any(p.endswith("model.safetensors") for p in everything) and any("feature_store" in p for p in everything)
    all_ids = [cid for ids in run.ids.values() for cid in ids]
    assert len(all_ids) > 600
    assert scan(everything, all_ids) == []


def test_the_scanner_finds_planted_ids(run: Run, tmp_path: Path) -> None:
    cid = run.ids["S2"][7]
    store = tmp_path / "fs.sqlite"
    src, conn = sqlite3.connect(run.root / "feature_store.sqlite"), sqlite3.connect(store)
    src.backup(conn)  # a consistent copy, WAL content included
    with conn:
        conn.execute("UPDATE products SET subclass = ? WHERE product_id = (SELECT min(product_id) FROM products)", (f"x{cid}y",))
    src.close()
    conn.close()
    planted = {"store": store.read_bytes(), "log": f"... {hashlib.sha256(cid.encode()).hexdigest().upper()} ...".encode(),
               "reply": next(iter(run.replies.values())) + json.dumps({"customer": cid}).encode()}
    found = {(f.where, f.form) for f in scan(planted, run.ids["S2"])}
    assert found == {("store", "raw id"), ("log", "unkeyed sha256 hex"), ("reply", "raw id")}


def test_the_pricing_apis_audit_records_and_log_hold_no_raw_id(run: Run, tmp_path: Path) -> None:
    pytest.importorskip("pricing_api.app")
    import httpx

    from feature_store.store import connect, shop_products
    from privacy.pseudonym import pseudonym
    from simulation.api_process import ApiProcess

    unknown = "cx-" + "0" * 12  # a storefront customer no shop has seen: cold start, still never stored raw
    conn = connect(run.root / "feature_store.sqlite", readonly=True)
    try:
        items = {s: [{"product_id": p.product_id, "list_price": round(p.ref_price, 2), "unit_cost": round(p.unit_cost, 2)}
                     for p in list(shop_products(conn, s).values())[:2]] for s in SHOPS}
    finally:
        conn.close()
    quoted = {s: run.ids[s][:3] for s in SHOPS}
    api_root = tmp_path / "api"
    api_root.mkdir()
    with ApiProcess(root=api_root, registry=run.root / "registry", public_key=run.root / "central" / "keys" / "signing.pub",
                    feature_store=run.root / "feature_store.sqlite", shops_dir=run.root / "shops") as api, \
            httpx.Client(base_url=api.base_url, headers=api.headers, timeout=20.0) as client:
        for shop, ids in quoted.items():
            for cid in [*ids, unknown]:
                resp = client.post("/v1/quotes", json={"shop_id": shop, "customer_id": cid, "items": items[shop]})
                assert resp.status_code == 200, resp.text
    audit = api_root / "audit.sqlite"
    with sqlite3.connect(audit) as db:
        logged = {r[0] for r in db.execute("SELECT DISTINCT pseudonym FROM quote_audit")}
    for shop, ids in quoted.items():  # the audit really recorded these customers, by pseudonym
        key = run.shops[shop].keyring(create=False).pseudonym_key
        assert {pseudonym(key, cid) for cid in ids} <= logged
    artifacts = files_under(api_root)
    assert any(p.endswith("audit.sqlite") for p in artifacts)
    assert scan(artifacts, [unknown, *(cid for ids in run.ids.values() for cid in ids)]) == []
