"""The shop's preparation job: ingest, quarantine, pseudonymise, build examples, encrypt, publish."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from client.features import FeatureConfig, build_dataset
from client.ingest import ingest_export
from client.publish import publish_features
from client.storage import ShopPaths, save_examples
from feature_store.store import connect
from fedprice.errors import InvalidDataError
from privacy.pseudonym import pseudonymise

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareReport:
    """What a shop's preparation did, in counts (no customer data)."""

    shop_id: str
    rows: int
    quarantined: int
    quarantine_reasons: dict[str, int]
    quarantine_file: str | None
    customers: int
    train_customers: int
    test_offers: int
    test_buy_rate: float
    catalogue_size: int
    published_customers: int
    published_products: int


def prepare_shop(paths: ShopPaths, *, feature_store: Path, config: FeatureConfig | None = None) -> PrepareReport:
    """Run the whole shop-side preparation for one shop; raw ids are dropped right after pseudonymising."""
    if not paths.raw_export.is_file():
        raise InvalidDataError(f"shop {paths.shop_id}: no raw export at {paths.raw_export}")
    keyring = paths.keyring(create=True)
    ingested = ingest_export(paths.raw_export, shop_id=paths.shop_id, quarantine_path=paths.quarantine)
    mapping = pseudonymise(keyring.pseudonym_key, ingested.frame["customer_id"])
    tx = ingested.frame.assign(customer=ingested.frame["customer_id"].map(mapping)).drop(columns="customer_id")
    del mapping
    dataset = build_dataset(tx, config)
    summary = {
        "shop_id": paths.shop_id, "train_customers": len(dataset.train), "test_offers": len(dataset.test),
        "test_start": str(dataset.test_start.date()), "catalogue_size": len(dataset.catalogue),
    }
    save_examples(paths, keyring, dataset.train, dataset.test, summary)
    conn = connect(feature_store)
    try:
        n_cust, n_prod = publish_features(conn, keyring, dataset.serving)
    finally:
        conn.close()
    return PrepareReport(
        shop_id=paths.shop_id, rows=ingested.n_rows, quarantined=ingested.n_quarantined,
        quarantine_reasons=dict(ingested.reasons),
        quarantine_file=str(ingested.quarantine_path) if ingested.quarantine_path else None,
        customers=int(tx["customer"].nunique()), train_customers=len(dataset.train), test_offers=len(dataset.test),
        test_buy_rate=float(dataset.test.bought.mean()) if len(dataset.test) else 0.0,
        catalogue_size=len(dataset.catalogue), published_customers=n_cust, published_products=n_prod,
    )
