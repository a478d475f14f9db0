"""End to end on a small slice of the real data: shops -> Flower simulation -> signed model -> live API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from client.prepare import prepare_shop
from client.storage import ShopPaths
from simulation.api_process import ApiProcess
from simulation.demo_queries import UNKNOWN_CUSTOMER, pick_queries, run_queries
from simulation.federation import simulate
from simulation.tafeng import prepare_exports

SHOPS = ("105", "106", "221")
CACHE = Path(__file__).resolve().parents[2] / "var" / "cache"


@pytest.mark.timeout(420)
def test_small_real_slice_trains_publishes_and_quotes_over_http(tmp_path: Path) -> None:
    shops_dir, store = tmp_path / "shops", tmp_path / "feature_store.sqlite"
    prepare_exports(CACHE, shops_dir, shops=SHOPS, max_customers=150)
    for shop in SHOPS:
        report = prepare_shop(ShopPaths(shop, shops_dir / shop), feature_store=store)
        assert report.published_customers == 150

    manifest = simulate(shops=list(SHOPS), overrides={
        "num-server-rounds": 2, "epsilon-budget": 3.0, "shops-dir": str(shops_dir),
        "registry-dir": str(tmp_path / "registry"), "central-dir": str(tmp_path / "central")})
    per_shop = manifest["privacy"]["per_shop"]
    assert set(per_shop) == set(SHOPS) and manifest["rounds_completed"] == 2
    assert all(0 < m["epsilon"] <= 3.0 + 1e-6 and m["rounds_trained"] == 2 for m in per_shop.values())

    queries = pick_queries(shops_dir, store, shops=["221", "105"], per_shop=3)
    with ApiProcess(root=tmp_path, registry=tmp_path / "registry", public_key=tmp_path / "central" / "keys" / "signing.pub",
                    feature_store=store, shops_dir=shops_dir) as api:
        rows = run_queries(api, queries)  # raises if any price leaves its guardrails
        unauthenticated = httpx.post(f"{api.base_url}/v1/quotes", json={"shop_id": "221", "customer_id": "1", "items": []})
    assert unauthenticated.status_code == 401
    assert {r["model_version"] for r in rows} == {manifest["version"]}
    known = [r for r in rows if r["path"] == "known"]
    cold = [r for r in rows if r["path"] == "cold_start"]
    assert len({r["pseudonym_prefix"] for r in known}) == 6 and {r["shop_id"] for r in known} == {"221", "105"}
    assert len(cold) == len(queries[-1].items) and queries[-1].customer_id == UNKNOWN_CUSTOMER
    raw_ids = {q.customer_id for q in queries}
    assert not any(r["pseudonym_prefix"].split(":")[-1] in raw_ids for r in rows)
    audit = (tmp_path / "audit.sqlite").read_bytes()
    assert not any(cid.encode() in audit for cid in raw_ids - {UNKNOWN_CUSTOMER})
