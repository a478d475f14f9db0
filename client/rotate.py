"""Data-key rotation for one shop: re-encrypt everything under a new data key, then retire the old ones.

Order (crash-safe): 1. add a new data key and persist it next to the old ones (datakeys.json holds
both); 2. re-encrypt each artifact under it, each write atomic (prepared examples, the epsilon ledger
and its anchor, the shop's feature-store rows in one transaction); 3. verify that every artifact opens
under the new key; 4. only then rewrite datakeys.json without the old keys. A failure before step 4
leaves every artifact readable (old or new key, both still held); running the rotation again finishes it.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from client.publish import customer_context
from client.storage import ShopPaths, load_summary, load_test, load_train, save_examples
from feature_store.store import connect, publish_shop, published_shops, shop_products
from fedprice.errors import FedpriceError
from privacy.crypto import key_version_of
from privacy.keys import ShopKeyring

log = logging.getLogger(__name__)


class RotationError(FedpriceError):
    """A rotation could not finish; the old data keys are kept, so nothing became unreadable."""

    exit_code = 70


@dataclass(frozen=True)
class RotationReport:
    """What a rotation did (no key material)."""

    shop_id: str
    retired_versions: list[int]
    new_version: int
    examples_resealed: bool
    ledger_resealed: bool
    feature_rows_resealed: int


def _customer_rows(conn: sqlite3.Connection, shop_id: str) -> list[tuple[str, bytes]]:
    """Every (pseudonym, sealed blob) the shop published."""
    return [(p, bytes(b)) for p, b in conn.execute("SELECT pseudonym, blob FROM customers WHERE shop_id = ?", (shop_id,))]


def reseal_feature_rows(feature_store: Path, keyring: ShopKeyring) -> int:
    """Re-encrypt the shop's customer rows under the active key in one transaction; returns rows written."""
    shop = keyring.shop_id
    if not feature_store.exists():
        return 0
    conn = connect(feature_store)
    try:
        meta = published_shops(conn).get(shop)
        if meta is None:
            return 0
        rows = [(p, keyring.seal(keyring.unseal(b, customer_context(p), what=f"feature row of shop {shop}"), customer_context(p)))
                for p, b in _customer_rows(conn, shop)]
        products = list(shop_products(conn, shop).values())
        publish_shop(conn, shop, rows, products, str(meta["schema_hash"]))
    finally:
        conn.close()
    return len(rows)


def _artifact_versions(paths: ShopPaths, feature_store: Path, keyring: ShopKeyring) -> set[int]:
    """Every data-key version still in use by one of the shop's sealed artifacts."""
    store = paths.ledger_store(keyring)
    files = [p for p in (paths.train, paths.test, store.path, store.anchor_path) if p.exists()]
    versions = {key_version_of(p.read_bytes(), what=str(p)) for p in files}
    if feature_store.exists():
        conn = connect(feature_store, readonly=True)
        try:
            versions |= {key_version_of(b, what="feature row") for _, b in _customer_rows(conn, keyring.shop_id)}
        finally:
            conn.close()
    return versions


def rotate_shop_keys(paths: ShopPaths, *, feature_store: Path) -> RotationReport:
    """Re-encrypt the shop's examples, ledger and feature rows under a new data key; retire the old keys."""
    keyring = paths.keyring(create=False)
    old = sorted(keyring.data_keys)
    new = keyring.add_data_key()
    log.info("shop %s: rotating data keys %s -> v%d", paths.shop_id, old, new)
    examples = paths.train.exists() and paths.test.exists()
    if examples:
        save_examples(paths, keyring, load_train(paths, keyring), load_test(paths, keyring), load_summary(paths))
    store = paths.ledger_store(keyring)
    ledger = store.exists()
    store.reseal()
    rows = reseal_feature_rows(feature_store, keyring)
    in_use = _artifact_versions(paths, feature_store, keyring)
    if in_use - {new}:
        raise RotationError(f"shop {paths.shop_id}: artifacts still sealed under data key(s) {sorted(in_use - {new})}; "
                           "old keys kept, run the rotation again")
    keyring.retire_data_keys(keep=new)
    log.info("shop %s: data key v%d active; retired %s (examples, ledger, %d feature rows re-encrypted)",
             paths.shop_id, new, old, rows)
    return RotationReport(shop_id=paths.shop_id, retired_versions=old, new_version=new, examples_resealed=examples,
                          ledger_resealed=ledger, feature_rows_resealed=rows)
