"""POST /v1/quotes and /v1/quotes/batch: what a storefront sees for known, new and odd customers and items."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
from api_world import Api, World, basket

from pricing_api.model_holder import ModelHolder
from privacy.keys import ShopKeyring
from privacy.pseudonym import pseudonym


def test_known_customer_gets_personal_prices_inside_default_guardrails(api: Api, world: World) -> None:
    cid = world.customers["S1"][0]
    items = basket(world, n=4)
    resp = api.quote({"shop_id": "S1", "customer_id": cid, "items": items})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    ring = ShopKeyring.load("S1", world.shops_dir / "S1" / "keys", create=False)
    assert body["customer"] == {"pseudonym_prefix": pseudonym(ring.pseudonym_key, cid)[:12], "known": True, "path": "known"}
    assert body["personalised"] is True and body["shop_id"] == "S1"
    assert body["model_version"] == (world.registry / "LATEST").read_text().strip()
    assert [q["product_id"] for q in body["quotes"]] == [i["product_id"] for i in items]
    for q, item in zip(body["quotes"], items, strict=True):
        assert q["product_known"] is True
        assert q["list_price"] == item["list_price"] and q["unit_cost"] == item["unit_cost"]
        assert item["unit_cost"] <= q["price"]
        assert 0.8 * item["list_price"] - 1e-9 <= q["price"] <= 1.2 * item["list_price"] + 1e-9
        assert round(q["price"], 2) == q["price"]
        assert 0.0 < q["buy_probability"] < 1.0
        assert q["expected_margin"] == pytest.approx((q["price"] - q["unit_cost"]) * q["buy_probability"], abs=1e-3)
        assert q["guardrail"] in {"none", "cost_floor", "band_low", "band_high"}
    assert cid not in resp.text


def test_unknown_customer_and_unseen_product_take_the_cold_start_path(api: Api, world: World) -> None:
    items = [*basket(world, n=1), {"product_id": "never-sold-1", "list_price": 20.0, "unit_cost": 12.0}]
    resp = api.quote({"shop_id": "S1", "customer_id": "no-such-customer-42", "items": items})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["customer"]["known"] is False and body["customer"]["path"] == "cold_start"
    assert body["personalised"] is False  # market-level prices: nothing about this customer went into them
    assert [q["product_known"] for q in body["quotes"]] == [True, False]
    unseen = body["quotes"][1]
    assert 16.0 <= unseen["price"] <= 24.0 and unseen["price"] >= 12.0


def test_known_and_unknown_customers_are_priced_differently(api: Api, world: World) -> None:
    items = basket(world, n=3)
    known = api.quote({"shop_id": "S1", "customer_id": world.customers["S1"][0], "items": items}).json()
    cold = api.quote({"shop_id": "S1", "customer_id": "brand-new", "items": items}).json()
    assert [q["buy_probability"] for q in known["quotes"]] != [q["buy_probability"] for q in cold["quotes"]]


def test_batch_prices_many_customers_like_single_quotes(api_for, world: World) -> None:  # type: ignore[no-untyped-def]
    requests = [{"shop_id": shop, "customer_id": cid, "items": basket(world, shop, n=3)}
                for shop in ("S1", "S2") for cid in [*world.customers[shop][:4], "nobody-" + shop]]
    batch_api = api_for(consistency_window_seconds=0)
    batch = batch_api.client.post("/v1/quotes/batch", json={"requests": requests}, headers=batch_api.headers())
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert len(results) == len(requests)
    for req, res in zip(requests, results, strict=True):
        single = batch_api.quote(req).json()
        assert res["customer"] == single["customer"]
        assert [q["price"] for q in res["quotes"]] == [q["price"] for q in single["quotes"]]
        assert [q["buy_probability"] for q in res["quotes"]] == pytest.approx([q["buy_probability"] for q in single["quotes"]],
                                                                              abs=1e-6)


def test_concurrent_single_quotes_are_answered_separately(api: Api, world: World) -> None:
    from concurrent.futures import ThreadPoolExecutor

    bodies = [{"shop_id": "S1", "customer_id": cid, "items": basket(world, n=2)} for cid in world.customers["S1"][:8]]
    bodies.append({"shop_id": "S1", "customer_id": "x", "items": [{"product_id": "p", "list_price": 10, "unit_cost": 50}]})
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(api.quote, bodies))
    assert [r.status_code for r in responses] == [200] * 8 + [422]
    prefixes = {r.json()["customer"]["pseudonym_prefix"] for r in responses[:8]}
    assert len(prefixes) == 8


@pytest.mark.parametrize(
    ("item", "field", "text"),
    [
        ({"list_price": 0}, "items[0].list_price", "greater than or equal to 0.01"),
        ({"list_price": -5}, "items[0].list_price", "greater than or equal to 0.01"),
        ({"unit_cost": -1}, "items[0].unit_cost", "greater than or equal to 0"),
        ({"list_price": 1e12}, "items[0].list_price", "less than or equal to 1000000000"),
        ({"competitor_price": 0}, "items[0].competitor_price", "greater than or equal to 0.01"),
        ({"surprise": 1}, "items[0].surprise", "Extra inputs are not permitted"),
        ({"unit_cost": 50.0}, "items[0].unit_cost", "above the band's top 1.2 x list_price = 12.00"),
        ({"product_id": ""}, "items[0].product_id", "at least 1 character"),
        ({"list_price": "12.5"}, "items[0].list_price", "valid number"),  # no silent coercion of strings or booleans
        ({"unit_cost": True}, "items[0].unit_cost", "valid number"),
    ],
)
def test_bad_items_get_422_naming_the_field(api: Api, item: dict[str, object], field: str, text: str) -> None:
    body = {"shop_id": "S1", "customer_id": "c", "items": [{"product_id": "p", "list_price": 10.0, "unit_cost": 5.0, **item}]}
    resp = api.quote(body)
    assert resp.status_code == 422, resp.text
    problems = resp.json()["problems"]
    assert any(p["field"] == field and text in p["message"] for p in problems), problems
    assert resp.json()["detail"].startswith(field)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinite_prices_are_refused(api: Api, token: str) -> None:
    raw = '{"shop_id": "S1", "customer_id": "c", "items": [{"product_id": "p", "list_price": TOKEN, "unit_cost": 1}]}'
    raw = raw.replace("TOKEN", token)
    resp = api.client.post("/v1/quotes", content=raw, headers={**api.headers(), "content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["problems"][0]["field"] == "items[0].list_price"


def test_request_level_problems(api: Api, world: World) -> None:
    empty = api.quote({"shop_id": "S1", "customer_id": "c", "items": []})
    assert empty.status_code == 422 and empty.json()["problems"][0]["field"] == "items"
    unknown_shop = api.quote({"shop_id": "S9", "customer_id": "c", "items": basket(world)})
    assert unknown_shop.status_code == 404
    assert unknown_shop.json()["detail"] == "shop_id: unknown shop 'S9' (no published features)"
    extra = api.quote({"shop_id": "S1", "customer_id": "c", "items": basket(world), "coupon": "x"})
    assert extra.status_code == 422 and extra.json()["problems"][0]["field"] == "coupon"
    bad_json = api.client.post("/v1/quotes", content=b"{not json", headers=api.headers())
    assert bad_json.status_code == 422 and bad_json.json()["problems"][0]["field"] == "body"
    missing = api.client.post("/v1/quotes", content=b"", headers=api.headers())
    assert missing.status_code == 422 and missing.json()["problems"][0]["field"] == "body"


def test_infeasible_competitor_cap_names_the_item(api_for, world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rails = tmp_path / "rails.toml"
    rails.write_text("[default]\ncompetitor_cap = 1.0\n")
    capped = api_for(guardrails_file=rails)
    items = [{"product_id": "a", "list_price": 10.0, "unit_cost": 5.0},
             {"product_id": "b", "list_price": 10.0, "unit_cost": 7.0, "competitor_price": 6.0}]
    resp = capped.quote({"shop_id": "S1", "customer_id": "c", "items": items})
    assert resp.status_code == 422
    assert resp.json()["problems"] == [{"field": "items[1].competitor_price", "message":
                                        "competitor_price 6 caps the price at 6.00, below the lowest allowed price 8.00 "
                                        "(cost floor and band)"}]


def test_oversize_body_gets_413(api_for) -> None:  # type: ignore[no-untyped-def]
    small = api_for(max_body_bytes=2048)
    items = [{"product_id": f"p{i}", "list_price": 10.0, "unit_cost": 5.0} for i in range(100)]
    resp = small.quote({"shop_id": "S1", "customer_id": "c", "items": items})
    assert resp.status_code == 413
    assert resp.json()["detail"].startswith("request body of ") and "exceeds the limit of 2048 bytes" in resp.json()["detail"]


def test_too_many_items_per_quote_and_batch(api_for, world: World) -> None:  # type: ignore[no-untyped-def]
    limited = api_for(max_items_per_quote=2, max_batch_items=3)
    resp = limited.quote({"shop_id": "S1", "customer_id": "c", "items": basket(world, n=3)})
    assert resp.status_code == 422 and resp.json()["detail"] == "items: 3 items, at most 2 per quote (use /v1/quotes/batch)"
    req = {"shop_id": "S1", "customer_id": "c", "items": basket(world, n=2)}
    batch = limited.client.post("/v1/quotes/batch", json={"requests": [req, req]}, headers=limited.headers())
    assert batch.status_code == 422 and batch.json()["detail"] == "requests: 4 items in total, at most 3 per batch"


def test_batch_errors_name_request_and_item(api: Api, world: World) -> None:
    good = {"shop_id": "S1", "customer_id": "c", "items": basket(world, n=1)}
    infeasible = {"product_id": "x", "list_price": 1, "unit_cost": 9}
    bad = {"shop_id": "S1", "customer_id": "d", "items": [*basket(world, n=1), infeasible]}
    resp = api.client.post("/v1/quotes/batch", json={"requests": [good, bad]}, headers=api.headers())
    assert resp.status_code == 422
    assert resp.json()["problems"][0]["field"] == "requests[1].items[1].unit_cost"
    nested = api.client.post("/v1/quotes/batch", json={"requests": [good, {**good, "items": [{"product_id": "x"}]}]},
                             headers=api.headers())
    assert nested.status_code == 422
    fields = {p["field"] for p in nested.json()["problems"]}
    assert fields == {"requests[1].items[0].list_price", "requests[1].items[0].unit_cost"}


def test_model_endpoint_serves_the_signed_manifest(api: Api, world: World) -> None:
    resp = api.client.get("/v1/model", headers=api.headers("quote"))
    assert resp.status_code == 200
    version = (world.registry / "LATEST").read_text().strip()
    manifest = json.loads((world.registry / version / "manifest.json").read_text())
    assert resp.json()["model_version"] == version and resp.json()["manifest"] == manifest


def test_health_and_readiness(api: Api, api_for, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert api.client.get("/healthz").json() == {"status": "ok", "model_version": None, "problems": []}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert api.client.get("/v1/healthz").json() == api.client.get("/healthz").json()
    assert api.client.get("/v1/readyz").json() == ready.json()
    assert "fedprice_api_requests_total" in api.client.get("/v1/metrics").text
    paths = api.client.get("/openapi.json").json()["paths"]
    assert {"/v1/healthz", "/v1/readyz", "/v1/metrics", "/healthz", "/readyz", "/metrics"} <= set(paths)
    empty = api_for(registry_dir=tmp_path / "empty-registry", api_keys_file=tmp_path / "other-keys.json")
    not_ready = empty.client.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.json()["problems"][0].startswith("model: no published model in ")
    assert empty.client.get("/v1/readyz").status_code == 503
    quote = empty.quote({"shop_id": "S1", "customer_id": "c", "items": [{"product_id": "p", "list_price": 1, "unit_cost": 0}]})
    assert quote.status_code == 503 and quote.json()["detail"].startswith("no verified model is loaded: no published model")


def test_model_holder_refuses_path_tricks_in_latest(world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    reg = tmp_path / "reg"
    reg.mkdir()
    (reg / "LATEST").write_text("../../etc")
    result = ModelHolder(reg, world.public_key).reload()
    assert result.status == "refused" and "not a version directory" in result.detail


def test_a_shop_that_published_an_older_feature_schema_gets_a_clear_503(api_for, world: World, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "feature_store.sqlite"
    shutil.copy(world.feature_store, store)
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE publications SET schema_hash = 'an-older-schema' WHERE shop_id = 'S2'")
    stale = api_for(feature_store=store)
    resp = stale.quote({"shop_id": "S2", "customer_id": world.customers["S2"][0], "items": basket(world, "S2")})
    assert resp.status_code == 503
    assert resp.json()["detail"] == ("shop S2 published features of another feature schema than this server's (v2): "
                                     "the shop re-runs `fedprice shop prepare`")
    assert stale.quote({"shop_id": "S1", "customer_id": "c", "items": basket(world)}).status_code == 200
