"""The demo's storefront: real customers of real shops (and one unknown) asking the live API for prices."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from feature_store.store import connect, shop_products
from fedprice.errors import FedpriceError
from simulation.api_process import ApiProcess

UNKNOWN_CUSTOMER = "99999999"


@dataclass(frozen=True)
class Query:
    """One storefront request: a customer of a shop and the items on the page."""

    shop_id: str
    customer_id: str
    items: list[dict[str, Any]]


def pick_queries(shops_dir: Path, feature_store: Path, *, shops: list[str], per_shop: int = 3, items: int = 2) -> list[Query]:
    """Frequent real customers of each shop (ids as the storefront knows them) and the shop's top products."""
    conn = connect(feature_store, readonly=True)
    try:
        out: list[Query] = []
        for shop in shops:
            raw = pd.read_csv(shops_dir / shop / "raw" / "export.csv", dtype=str, encoding="utf-8-sig",
                              usecols=["CUSTOMER_ID"])
            customers = raw["CUSTOMER_ID"].value_counts().index[:per_shop].tolist()
            # the storefront's best sellers that the shop sells above cost (Ta Feng has loss leaders,
            # whose cost is above any price the 0.8-1.2x band allows: the API would rightly refuse them)
            sellable = [p for p in shop_products(conn, shop).values() if p.unit_cost <= 0.95 * p.ref_price]
            products = sorted(sellable, key=lambda p: -p.buy_rate)[:items]
            basket = [{"product_id": p.product_id, "list_price": round(p.ref_price, 2), "unit_cost": round(p.unit_cost, 2)}
                      for p in products]
            out.extend(Query(shop, c, basket) for c in customers)
        out.append(Query(shops[0], UNKNOWN_CUSTOMER, out[0].items))
        return out
    finally:
        conn.close()


def run_queries(api: ApiProcess, queries: list[Query]) -> list[dict[str, Any]]:
    """POST each query to /v1/quotes; check every price against the default guardrails; flatten rows."""
    rows: list[dict[str, Any]] = []
    with httpx.Client(base_url=api.base_url, headers=api.headers, timeout=10.0) as client:
        for q in queries:
            resp = client.post("/v1/quotes", json={"shop_id": q.shop_id, "customer_id": q.customer_id, "items": q.items})
            if resp.status_code != 200:
                raise FedpriceError(f"quote for shop {q.shop_id} failed: HTTP {resp.status_code} {resp.text[:300]}")
            body = resp.json()
            for item in body["quotes"]:
                price, lst, cost = item["price"], item["list_price"], item["unit_cost"]
                if not (price >= cost - 1e-9 and 0.8 * lst - 0.01 <= price <= 1.2 * lst + 0.01):
                    raise FedpriceError(f"price {price} for {item['product_id']} is outside its guardrails "
                                        f"(list {lst}, cost {cost})")
                rows.append({"shop_id": q.shop_id, "pseudonym_prefix": body["customer"]["pseudonym_prefix"],
                             "path": body["customer"]["path"], "model_version": body["model_version"], **item})
    return rows
