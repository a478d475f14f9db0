"""Price consistency within a window, the append-only audit log (never a raw id) and the Prometheus metrics."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest
from api_world import Api, World, basket

from pricing_api.audit import LEGACY_TABLE, AuditBatch, AuditLog, open_audit
from pricing_api.consistency import PriceMemory


def audit_rows(api: Api) -> list[sqlite3.Row]:
    time.sleep(0.1)  # audit_flush_seconds=0.01 in tests
    conn = sqlite3.connect(api.settings.audit_db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM quote_audit ORDER BY id").fetchall()
    finally:
        conn.close()


def test_same_customer_product_and_model_keep_their_price(api_for, world: World) -> None:  # type: ignore[no-untyped-def]
    api: Api = api_for(consistency_window_seconds=3600)
    cid = world.customers["S1"][1]
    items = basket(world, n=3)
    first = api.quote({"shop_id": "S1", "customer_id": cid, "items": items}).json()["quotes"]
    moved = [{**i, "list_price": round(i["list_price"] * 1.03, 2)} for i in items]  # a 3% list change moves the optimum
    again = api.quote({"shop_id": "S1", "customer_id": cid, "items": moved}).json()["quotes"]
    assert [q["price"] for q in again] == [q["price"] for q in first]
    other = api.quote({"shop_id": "S1", "customer_id": world.customers["S1"][2], "items": moved}).json()["quotes"]
    free = api_for(consistency_window_seconds=0, audit_db=api.settings.audit_db.with_name("other.sqlite"))
    fresh = free.quote({"shop_id": "S1", "customer_id": cid, "items": moved}).json()["quotes"]
    assert [q["price"] for q in fresh] != [q["price"] for q in first]  # without the window the new list prices count
    assert len(other) == 3


def test_prices_survive_a_restart_through_the_audit_log(api_for, world: World) -> None:  # type: ignore[no-untyped-def]
    api: Api = api_for(consistency_window_seconds=3600)
    cid = world.customers["S2"][0]
    items = basket(world, "S2", n=2)
    first = api.quote({"shop_id": "S2", "customer_id": cid, "items": items}).json()["quotes"]
    api.client.__exit__(None, None, None)  # flushes the audit log
    restarted: Api = api_for(consistency_window_seconds=3600)
    moved = [{**i, "list_price": round(i["list_price"] * 1.03, 2)} for i in items]
    again = restarted.quote({"shop_id": "S2", "customer_id": cid, "items": moved}).json()["quotes"]
    assert [q["price"] for q in again] == [q["price"] for q in first]


def test_price_memory_window_and_bound() -> None:
    mem = PriceMemory(window_seconds=10, max_entries=2)
    keys = [("S1", "v1:a", "p", "m1"), ("S1", "v1:b", "p", "m1"), ("S1", "v1:c", "p", "m1")]
    inputs = [(10.0, 5.0, None, None)] * 3
    mem.remember(keys[:1], [9.99], ["none"], inputs[:1], fresh=[True], now=100.0)
    found = mem.lookup(keys[:1], inputs[:1], now=105.0)
    assert found is not None and found.price.tolist() == [9.99] and found.same_inputs.tolist() == [True]
    assert mem.lookup(keys[:1], inputs[:1], now=110.5) is None  # the window is over
    mem.remember(keys, [1.0, 2.0, 3.0], ["none"] * 3, inputs, fresh=[True] * 3, now=200.0)
    assert len(mem) == 2 and np.isnan(mem.lookup(keys, inputs, now=201.0).price[0])  # type: ignore[union-attr]
    assert PriceMemory(window_seconds=0, max_entries=5).lookup(keys, inputs) is None


def test_every_quote_is_audited_with_the_pseudonym_only(api: Api, world: World) -> None:
    cid = world.customers["S1"][3]
    resp = api.quote({"shop_id": "S1", "customer_id": cid, "items": basket(world, n=2)}).json()
    api.quote({"shop_id": "S1", "customer_id": "walk-in-7", "items": basket(world, n=1)})
    rows = audit_rows(api)
    assert len(rows) == 3
    first = dict(rows[0])
    assert first["pseudonym"].startswith(resp["customer"]["pseudonym_prefix"]) and len(first["pseudonym"]) == 67
    assert first["shop_id"] == "S1" and first["customer_path"] == "known" and first["model_version"] == resp["model_version"]
    assert first["price"] == resp["quotes"][0]["price"] and first["buy_probability"] == resp["quotes"][0]["buy_probability"]
    assert first["guardrail"] == resp["quotes"][0]["guardrail"] and first["product_id"] == resp["quotes"][0]["product_id"]
    assert abs(first["quoted_at"] - time.time()) < 60
    assert first["category"] is None and first["competitor_price"] is None  # bound as NaN, stored as NULL
    assert (first["product_known"], first["reused"]) == (1, 0)
    assert rows[0]["quote_id"] == rows[1]["quote_id"] != rows[2]["quote_id"] and rows[2]["customer_path"] == "cold_start"
    api.client.__exit__(None, None, None)
    raw = b"".join(p.read_bytes() for p in api.settings.audit_db.parent.glob("audit.sqlite*"))
    assert cid.encode() not in raw and b"walk-in-7" not in raw


def test_audit_table_refuses_update_and_delete(api: Api, world: World) -> None:
    api.quote({"shop_id": "S1", "customer_id": "c", "items": basket(world, n=1)})
    assert len(audit_rows(api)) == 1
    conn = open_audit(api.settings.audit_db)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only: UPDATE refused"):
            conn.execute("UPDATE quote_audit SET price = 0")
        with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE refused"):
            conn.execute("DELETE FROM quote_audit")
        for table in ("quote_requests", "quote_items"):  # the tables behind the view
            with pytest.raises(sqlite3.IntegrityError, match=f"{table} is append-only: UPDATE refused"):
                conn.execute(f"UPDATE {table} SET id = id + 1")
            with pytest.raises(sqlite3.IntegrityError, match=f"{table} is append-only: DELETE refused"):
                conn.execute(f"DELETE FROM {table}")
    finally:
        conn.close()
    assert len(audit_rows(api)) == 1


LEGACY_SCHEMA = """
CREATE TABLE quote_audit (id INTEGER PRIMARY KEY, quoted_at REAL NOT NULL, quote_id TEXT NOT NULL, shop_id TEXT NOT NULL,
    pseudonym TEXT NOT NULL, customer_path TEXT NOT NULL, product_id TEXT NOT NULL, product_known INTEGER NOT NULL,
    category TEXT, list_price REAL NOT NULL, unit_cost REAL NOT NULL, competitor_price REAL, price REAL NOT NULL,
    buy_probability REAL NOT NULL, expected_margin REAL NOT NULL, guardrail TEXT NOT NULL, reused INTEGER NOT NULL,
    model_version TEXT NOT NULL);
CREATE TRIGGER quote_audit_no_update BEFORE UPDATE ON quote_audit
BEGIN SELECT RAISE(ABORT, 'quote_audit is append-only: UPDATE refused'); END;
"""


def test_a_single_table_audit_database_keeps_its_rows_in_the_view(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as old:
        old.executescript(LEGACY_SCHEMA)
        old.execute("INSERT INTO quote_audit VALUES (7, ?, 'q-1', 'S1', 'v1:a', 'known', 'P1', 1, NULL, 10, 5, NULL, 9.5, 0.5,"
                    " 2.25, 'none', 0, 'm1')", (time.time() - 5,))
    log = AuditLog(db, flush_seconds=0.01)
    log.record(AuditBatch(time.time(), "m1", [("q-2", "S2", "v1:b", "cold_start", 2)], {
        "product_id": ["P2", "P3"], "product_known": [1, 0], "category": [None, "toys"], "list_price": [4.0, 6.0],
        "unit_cost": [2.0, 3.0], "competitor_price": [None, 5.5], "price": [3.99, 5.49], "buy_probability": [0.2, 0.3],
        "expected_margin": [0.4, 0.75], "guardrail": ["none", "competitor_cap"], "reused": [0, 1]}))
    log.close()
    again = AuditLog(db, flush_seconds=0.01)
    try:
        warm = again.recent(time.time() - 60, 10)
    finally:
        again.close()
    assert [(r[0], r[2], r[4]) for r in warm] == [("S1", "P1", 9.5), ("S2", "P2", 3.99)]  # first-time quotes, oldest first
    conn = open_audit(db)
    try:
        rows = conn.execute("SELECT id, shop_id, pseudonym, product_id, category, competitor_price, guardrail, model_version"
                            " FROM quote_audit ORDER BY id").fetchall()
        assert rows == [(7, "S1", "v1:a", "P1", None, None, "none", "m1"), (8, "S2", "v1:b", "P2", None, None, "none", "m1"),
                        (9, "S2", "v1:b", "P3", "toys", 5.5, "competitor_cap", "m1")]
        with pytest.raises(sqlite3.IntegrityError, match="append-only: UPDATE refused"):
            conn.execute(f"UPDATE {LEGACY_TABLE} SET price = 0")
        with pytest.raises(sqlite3.IntegrityError, match="append-only: UPDATE refused"):
            conn.execute("UPDATE quote_audit SET price = 0")
    finally:
        conn.close()


def test_raw_ids_never_reach_the_logs(api: Api, world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    cid = world.customers["S1"][4]
    api.quote({"shop_id": "S1", "customer_id": cid, "items": basket(world, n=1)})
    api.quote({"shop_id": "S1", "customer_id": cid, "items": [{"product_id": "p", "list_price": 1, "unit_cost": 5}]})
    assert cid not in caplog.text


def test_metrics_count_requests_guardrails_cold_starts_and_model(api: Api, world: World) -> None:
    api.quote({"shop_id": "S1", "customer_id": world.customers["S1"][0], "items": basket(world, n=2)})
    api.quote({"shop_id": "S1", "customer_id": "stranger", "items": basket(world, n=1)})
    api.quote({"shop_id": "S1", "customer_id": "stranger", "items": []})
    text = api.client.get("/metrics").text
    assert 'fedprice_api_requests_total{method="POST",route="/v1/quotes",status="200"} 2.0' in text
    assert 'fedprice_api_requests_total{method="POST",route="/v1/quotes",status="422"} 1.0' in text
    assert 'fedprice_api_request_seconds_count{route="/v1/quotes"} 3.0' in text
    assert "fedprice_api_cold_start_share 0.5" in text
    assert 'fedprice_api_quoted_customers_total{path="cold_start"} 1.0' in text
    counted = sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("fedprice_api_quotes_total{"))
    assert counted == 3.0
    version = (world.registry / "LATEST").read_text().strip()
    assert f'fedprice_api_model_info{{version="{version}"}} 1.0' in text
    api.client.get("/no/such/path")
    assert 'route="unmatched"' in api.client.get("/metrics").text


def _two_items(quote_id: str) -> AuditBatch:
    return AuditBatch(time.time(), "m1", [(quote_id, "S2", "v1:b", "known", 2)], {
        "product_id": ["P2", "P3"], "product_known": [1, 1], "category": [None, None], "list_price": [4.0, 6.0],
        "unit_cost": [2.0, 3.0], "competitor_price": [None, None], "price": [3.99, 5.49], "buy_probability": [0.2, 0.3],
        "expected_margin": [0.4, 0.75], "guardrail": ["none", "none"], "reused": [0, 0]})


def _wait_for(condition, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_a_failed_audit_write_is_kept_retried_and_turns_readiness_red(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pricing_api.audit as audit

    real, broken = audit._INSERT_ITEMS, {"on": True}

    def flaky(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
        if broken["on"]:
            raise sqlite3.OperationalError("disk I/O error")
        real(conn, rows)

    monkeypatch.setattr(audit, "_INSERT_ITEMS", flaky)
    monkeypatch.setattr(audit, "RETRY_SECONDS", 0.05)
    log = AuditLog(tmp_path / "audit.sqlite", flush_seconds=0.01)
    try:
        log.record(_two_items("q-1"))
        _wait_for(lambda: log.failures >= 1)
        assert not log.healthy
        assert log.problem is not None and "2 quoted items not yet written" in log.problem and "disk I/O error" in log.problem
        broken["on"] = False  # the disk recovers: the kept rows go in without new traffic
        _wait_for(lambda: log.healthy)
        assert log.problem is None
        log.record(_two_items("q-2"))
    finally:
        log.close()
    conn = open_audit(tmp_path / "audit.sqlite")
    try:
        rows = conn.execute("SELECT quote_id, product_id FROM quote_audit ORDER BY id").fetchall()
    finally:
        conn.close()
    assert rows == [("q-1", "P2"), ("q-1", "P3"), ("q-2", "P2"), ("q-2", "P3")]
