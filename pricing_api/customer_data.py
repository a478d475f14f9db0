"""Serving features from the feature store: shop keyrings, product tables and decrypted customers, cached.

The serving host holds each shop's pseudonym key and data keys (see README, "Pricing API"): it turns
the storefront's raw customer id into the shop's pseudonym and decrypts that customer's feature blob.
Raw ids are never stored or logged here; only pseudonyms key the caches.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from client.publish import customer_context
from demand.schema import (
    CUSTOMER_STATS,
    SCHEMA_VERSION,
    cold_start_customer,
    customer_features,
    product_features,
    schema_hash,
)
from feature_store.store import connect, customer_blobs, published_shops, shop_products
from fedprice.errors import ConfigError, FedpriceError
from privacy.keys import ShopKeyring
from privacy.pseudonym import pseudonym

log = logging.getLogger(__name__)


class ShopUnavailableError(ConfigError):
    """A shop published features but this server cannot serve it (keys missing, store unreadable)."""

    http_status = 503


@dataclass(frozen=True, eq=False)
class CustomerRecord:
    """What pricing needs about one customer: the customer feature block and purchase counts."""

    known: bool
    vector: np.ndarray
    n_visits: float
    history_days: float = 0.0  # the window the counts cover (see demand.schema.per_period)
    products: dict[str, int] = field(default_factory=dict)
    subclasses: dict[str, int] = field(default_factory=dict)


COLD_START = CustomerRecord(False, cold_start_customer(1)[0], 0.0)


@dataclass(frozen=True, eq=False)
class ShopCatalogue:
    """One shop's keys and product table, as of one publication."""

    shop_id: str
    published_at: str
    keyring: ShopKeyring
    index: dict[str, int]
    block: np.ndarray  # product feature block, one row per product in `index`
    subclass: list[str]


def decode_customer(payload: bytes) -> CustomerRecord:
    """Turn a decrypted blob (see client.publish) into a CustomerRecord."""
    doc = json.loads(payload)
    stats = {k: np.array([float(doc["stats"][k])]) for k in CUSTOMER_STATS}
    vector = customer_features(stats, np.array([doc.get("age_group", "")], dtype=object))[0]
    n_visits = float(doc["stats"]["n_visits"])
    return CustomerRecord(n_visits > 0, vector, n_visits, float(doc["stats"]["history_days"]),
                          {str(k): int(v) for k, v in doc.get("products", {}).items()},
                          {str(k): int(v) for k, v in doc.get("subclasses", {}).items()})


class FeatureSource:
    """Reads the feature store read-only; caches per process; notices shops' new publications."""

    def __init__(self, store: Path, shops_dir: Path, *, cache_size: int = 100_000, refresh_seconds: float = 5.0,
                 on_bad_blob: Callable[[], None] | None = None) -> None:
        self.store = store
        self.shops_dir = shops_dir
        self.cache_size = cache_size
        self.refresh_seconds = refresh_seconds
        self.on_bad_blob = on_bad_blob
        self._conn: sqlite3.Connection | None = None
        self._db_lock = threading.Lock()
        self._lock = threading.Lock()
        self._published: dict[str, str] = {}
        self._schemas: dict[str, str] = {}  # shop -> feature-schema hash of its publication
        self._catalogues: dict[str, ShopCatalogue] = {}
        self._customers: OrderedDict[tuple[str, str, str], CustomerRecord] = OrderedDict()
        self._checked = -1e18

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            if not self.store.exists():
                raise ShopUnavailableError(f"feature store {self.store} does not exist "
                                           "(shops publish it with `fedprice shop prepare`)")
            self._conn = connect(self.store, readonly=True)
        return self._conn

    def refresh(self, *, force: bool = False) -> dict[str, str]:
        """Re-read which shops published when; a shop that republished gets fresh products and customers."""
        now = time.monotonic()
        if not force and now - self._checked < self.refresh_seconds:
            return self._published
        with self._db_lock:
            try:
                published = published_shops(self._db())
                shops = {s: str(info["published_at"]) for s, info in published.items()}
            except sqlite3.Error as exc:
                raise ShopUnavailableError(f"feature store {self.store} is not readable: {exc}") from None
        with self._lock:
            self._checked = now
            for shop in [s for s, c in self._catalogues.items() if shops.get(s) != c.published_at]:
                del self._catalogues[shop]  # customer entries are keyed by published_at: the old ones age out
                log.info("shop %s: new feature publication, caches renewed", shop)
            self._published = shops
            self._schemas = {s: str(info["schema_hash"]) for s, info in published.items()}
        return shops

    def has_shop(self, shop_id: str) -> bool:
        """Whether the shop has published features."""
        return shop_id in self.refresh()

    def catalogue(self, shop_id: str) -> ShopCatalogue:
        """The shop's keys and products (loaded on first use after each publication)."""
        found = self._catalogues.get(shop_id)
        if found is not None:
            return found
        published_at = self.refresh().get(shop_id)
        if published_at is None:
            raise ShopUnavailableError(f"shop {shop_id} has not published features")
        if self._schemas.get(shop_id) != schema_hash():
            raise ShopUnavailableError(f"shop {shop_id} published features of another feature schema than this server's "
                                       f"(v{SCHEMA_VERSION}): the shop re-runs `fedprice shop prepare`")
        try:
            keyring = ShopKeyring.load(shop_id, self.shops_dir / shop_id / "keys", create=False)
        except FedpriceError as exc:
            raise ShopUnavailableError(f"shop {shop_id}: its keys are not usable on this server ({exc})") from None
        with self._db_lock:
            rows = shop_products(self._db(), shop_id)
        ids = list(rows)
        stats = {name: np.array([getattr(rows[p], name) for p in ids], dtype=np.float64)
                 for name in ("buy_rate", "ref_price", "price_cv")}
        block = product_features(stats) if ids else np.zeros((0, 4), np.float32)
        cat = ShopCatalogue(shop_id, published_at, keyring, {p: i for i, p in enumerate(ids)}, block,
                            [rows[p].subclass for p in ids])
        with self._lock:
            self._catalogues[shop_id] = cat
        log.info("shop %s: %d products loaded", shop_id, len(ids))
        return cat

    def customers(self, shop: ShopCatalogue, customer_ids: list[str]) -> list[tuple[str, CustomerRecord]]:
        """(pseudonym, record) per raw id, in order; unknown customers get the cold-start record."""
        key = shop.keyring.pseudonym_key
        pseuds = [pseudonym(key, cid) for cid in customer_ids]
        out: dict[str, CustomerRecord] = {}
        missing: list[str] = []
        with self._lock:
            for p in pseuds:
                rec = self._customers.get((shop.shop_id, shop.published_at, p))
                if rec is None:
                    missing.append(p)
                else:
                    self._customers.move_to_end((shop.shop_id, shop.published_at, p))
                    out[p] = rec
        if missing:
            unique = list(dict.fromkeys(missing))
            with self._db_lock:
                blobs = customer_blobs(self._db(), shop.shop_id, unique)
            fresh = {p: self._open(shop, p, blobs.get(p)) for p in unique}
            out.update(fresh)
            with self._lock:
                for p, rec in fresh.items():
                    self._customers[(shop.shop_id, shop.published_at, p)] = rec
                while len(self._customers) > self.cache_size:
                    self._customers.popitem(last=False)
        return [(p, out[p]) for p in pseuds]

    def _open(self, shop: ShopCatalogue, pseud: str, blob: bytes | None) -> CustomerRecord:
        if blob is None:
            return COLD_START
        try:
            return decode_customer(shop.keyring.unseal(blob, customer_context(pseud), what="customer features"))
        except (FedpriceError, ValueError, KeyError, TypeError) as exc:
            log.error("shop %s: customer %s… has unreadable features, serving cold start: %s", shop.shop_id, pseud[:12], exc)
            if self.on_bad_blob is not None:
                self.on_bad_blob()
            return COLD_START

    def close(self) -> None:
        """Close the store connection."""
        with self._db_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
