"""The feature store: an SQLite file shops publish to and the pricing API reads.

Customer rows are keyed by pseudonym and hold only ciphertext (AES-256-GCM under the shop's data
key, bound to shop, table, schema and pseudonym); product rows hold non-personal shop statistics.
A shop's publication replaces its rows in one transaction: readers see the old set or the new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    shop_id TEXT NOT NULL, pseudonym TEXT NOT NULL, blob BLOB NOT NULL,
    PRIMARY KEY (shop_id, pseudonym)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS products (
    shop_id TEXT NOT NULL, product_id TEXT NOT NULL, subclass TEXT NOT NULL, buy_rate REAL NOT NULL,
    ref_price REAL NOT NULL, price_cv REAL NOT NULL, unit_cost REAL NOT NULL,
    PRIMARY KEY (shop_id, product_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS publications (
    shop_id TEXT PRIMARY KEY, published_at TEXT NOT NULL, n_customers INTEGER NOT NULL,
    n_products INTEGER NOT NULL, schema_hash TEXT NOT NULL);
"""


@dataclass(frozen=True)
class ProductRow:
    """Non-personal statistics of one product in one shop."""

    product_id: str
    subclass: str
    buy_rate: float
    ref_price: float
    price_cv: float
    unit_cost: float


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the store (creating its tables unless read-only); WAL so readers never block writers."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
    return conn


def publish_shop(conn: sqlite3.Connection, shop_id: str, customers: Iterable[tuple[str, bytes]],
                 products: Iterable[ProductRow], schema_hash: str) -> tuple[int, int]:
    """Replace a shop's customer and product rows atomically; returns (customers, products) written."""
    cust = list(customers)
    prods = list(products)
    with conn:
        conn.execute("DELETE FROM customers WHERE shop_id = ?", (shop_id,))
        conn.execute("DELETE FROM products WHERE shop_id = ?", (shop_id,))
        conn.executemany("INSERT INTO customers VALUES (?, ?, ?)", [(shop_id, p, b) for p, b in cust])
        conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [(shop_id, r.product_id, r.subclass, r.buy_rate, r.ref_price, r.price_cv, r.unit_cost) for r in prods])
        conn.execute("INSERT OR REPLACE INTO publications VALUES (?, ?, ?, ?, ?)",
                     (shop_id, datetime.now(UTC).isoformat(timespec="seconds"), len(cust), len(prods), schema_hash))
    return len(cust), len(prods)


def customer_blob(conn: sqlite3.Connection, shop_id: str, pseudonym: str) -> bytes | None:
    """The encrypted feature blob of one customer, or None if the shop never saw them."""
    row = conn.execute("SELECT blob FROM customers WHERE shop_id = ? AND pseudonym = ?", (shop_id, pseudonym)).fetchone()
    return None if row is None else bytes(row[0])


def customer_blobs(conn: sqlite3.Connection, shop_id: str, pseudonyms: list[str]) -> dict[str, bytes]:
    """Encrypted blobs for many customers of one shop (missing ones are absent)."""
    out: dict[str, bytes] = {}
    for start in range(0, len(pseudonyms), 500):
        chunk = pseudonyms[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(f"SELECT pseudonym, blob FROM customers WHERE shop_id = ? AND pseudonym IN ({marks})",
                            (shop_id, *chunk))
        out.update((p, bytes(b)) for p, b in rows)
    return out


def shop_products(conn: sqlite3.Connection, shop_id: str) -> dict[str, ProductRow]:
    """All product statistics a shop published."""
    rows = conn.execute("SELECT product_id, subclass, buy_rate, ref_price, price_cv, unit_cost FROM products WHERE shop_id = ?",
                        (shop_id,))
    return {r[0]: ProductRow(*r) for r in rows}


def published_shops(conn: sqlite3.Connection) -> dict[str, dict[str, object]]:
    """Shops that have published, with when and how much."""
    rows = conn.execute("SELECT shop_id, published_at, n_customers, n_products, schema_hash FROM publications")
    return {r[0]: {"published_at": r[1], "n_customers": r[2], "n_products": r[3], "schema_hash": r[4]} for r in rows}
