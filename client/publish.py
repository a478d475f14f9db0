"""Feature publication: each customer's serving features, encrypted, keyed by pseudonym."""

from __future__ import annotations

import json
import sqlite3

from client.features import Snapshot
from demand.schema import CUSTOMER_STATS, SCHEMA_VERSION, schema_hash
from feature_store.store import ProductRow, publish_shop
from privacy.keys import ShopKeyring

MAX_PRODUCTS_PER_CUSTOMER = 200


def customer_context(pseudonym: str) -> dict[str, str | int]:
    """AAD context of a customer's feature blob: a blob moved to another row or shop fails to open."""
    return {"table": "customer_features", "schema": SCHEMA_VERSION, "pseudonym": pseudonym}


def customer_payloads(snap: Snapshot) -> dict[str, bytes]:
    """JSON payload per pseudonym: history statistics plus product and subclass purchase counts."""
    prod = snap.product_counts.sort_values(ascending=False)
    by_cust_prod: dict[str, dict[str, int]] = {}
    for (cust, pid), n in prod.items():
        d = by_cust_prod.setdefault(cust, {})
        if len(d) < MAX_PRODUCTS_PER_CUSTOMER:
            d[pid] = int(n)
    by_cust_sub: dict[str, dict[str, int]] = {}
    for (cust, sub), n in snap.subclass_counts.items():
        by_cust_sub.setdefault(cust, {})[sub] = int(n)
    out = {}
    for pseudonym, row in snap.customers.iterrows():
        stats = {c: float(row[c]) for c in CUSTOMER_STATS}
        doc = {"stats": stats, "age_group": str(row["age_group"]), "products": by_cust_prod.get(pseudonym, {}),
               "subclasses": by_cust_sub.get(pseudonym, {})}
        out[str(pseudonym)] = json.dumps(doc, separators=(",", ":")).encode()
    return out


def publish_features(conn: sqlite3.Connection, keyring: ShopKeyring, snap: Snapshot) -> tuple[int, int]:
    """Encrypt and publish every customer's features and the shop's product statistics."""
    payloads = customer_payloads(snap)
    customers = ((p, keyring.seal(body, customer_context(p))) for p, body in payloads.items())
    products = (
        ProductRow(str(pid), str(r["subclass"]), float(r["buy_rate"]), float(r["ref_price"]), float(r["price_cv"]),
                   float(r["unit_cost"]))
        for pid, r in snap.products.iterrows()
    )
    return publish_shop(conn, keyring.shop_id, customers, products, schema_hash())
