"""The pricing test set of a prepared shop, with (customer, product) identity, rebuilt from its raw export.

The shop pipeline stores its held-out offers without identities (they never need them). The evaluator
is allowed to see both sides, so it rebuilds the held-out month with the same `client.features`
functions, checks the rebuilt rows equal the stored ones bit for bit, and keeps the identities in
memory only: raw customer ids are never logged or written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from client.features import FeatureConfig, day_prices, month_starts, offers_for_month, row_features, snapshot
from client.ingest import ingest_export
from client.storage import ShopPaths, load_test
from demand.examples import OfferRows
from fedprice.errors import InvalidDataError
from privacy.pseudonym import pseudonymise

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ScoringSet:
    """One shop's held-out month: customers x catalogue products to price, and the held-out offers."""

    shop_id: str
    customer_id: np.ndarray  # raw ids, one per pricing row (in memory only)
    product_id: np.ndarray  # one per pricing row
    x: np.ndarray  # model inputs of the pricing rows (history before the held-out month, weekday offer)
    ref_price: np.ndarray  # the shop's reference price the model's ratios are relative to
    unit_cost: np.ndarray  # the shop's median unit cost (ASSET / AMOUNT) before the held-out month
    held_out: OfferRows  # exactly the shop's stored held-out offers
    held_out_customer: np.ndarray  # raw id per held-out row
    held_out_product: np.ndarray  # product id per held-out row
    held_out_price: np.ndarray  # the price offered on the day, per held-out row

    def __len__(self) -> int:
        return len(self.customer_id)


def shop_transactions(paths: ShopPaths, scratch: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """The shop's valid purchases keyed by pseudonym (as prepared), plus pseudonym -> raw id."""
    keyring = paths.keyring(create=False)
    ingested = ingest_export(paths.raw_export, shop_id=paths.shop_id, quarantine_path=scratch / f"{paths.shop_id}-q.csv")
    mapping = pseudonymise(keyring.pseudonym_key, ingested.frame["customer_id"])
    tx = ingested.frame.assign(customer=ingested.frame["customer_id"].map(mapping)).drop(columns="customer_id")
    return tx, {p: raw for raw, p in mapping.items()}


def _catalogue(snap_products: pd.DataFrame, size: int) -> pd.Index:
    """The shop's catalogue as `build_dataset` picks it: most bought first, then cheaper first."""
    order = snap_products.sort_values(["buy_rate", "ref_price"], ascending=[False, True])
    return pd.Index(order.index[:size])


def build_scoring_set(
    paths: ShopPaths, *, priced_products: set[str] | None, scratch: Path, config: FeatureConfig | None = None
) -> ScoringSet:
    """Rebuild the shop's held-out month with identities; price `priced_products` (None: the whole catalogue)."""
    cfg = config or FeatureConfig()
    tx, raw_of = shop_transactions(paths, scratch)
    test_start = month_starts(tx)[-1]
    end = tx["date"].max() + pd.Timedelta(days=1)
    snap = snapshot(tx, test_start)
    catalogue = _catalogue(snap.products, cfg.catalogue_size)
    days = pd.date_range(tx["date"].min(), end, freq="D")
    prices = day_prices(tx, catalogue, days, snap.products["ref_price"])
    offers = offers_for_month(tx, snap, catalogue, prices, test_start, end)
    x_held = row_features(snap, offers, catalogue)
    stored = load_test(paths, paths.keyring(create=False))
    if x_held.shape != stored.x.shape or not np.array_equal(x_held, stored.x) or not np.allclose(
        offers["price_ratio"].to_numpy(np.float32), stored.price_ratio
    ):
        raise InvalidDataError(f"shop {paths.shop_id}: the rebuilt held-out month ({len(x_held)} rows) does not match "
                               f"the stored held-out offers in {paths.test} ({len(stored)} rows); re-prepare the shop")
    ref = snap.products["ref_price"].reindex(catalogue)
    held_price = offers["price_ratio"].to_numpy(np.float64) * ref.to_numpy()[offers["p_idx"].to_numpy()]

    priced = catalogue if priced_products is None else catalogue[catalogue.isin(list(priced_products))]
    customers = pd.Index(offers["customer"].unique())
    k = len(priced)
    grid = pd.DataFrame({
        "customer": np.repeat(customers.to_numpy(), k),
        "product_id": np.tile(priced.to_numpy(), len(customers)),
        "p_idx": np.tile(catalogue.get_indexer(priced), len(customers)),
        "weekend": False,
    })
    x = row_features(snap, grid, catalogue)
    to_raw = np.vectorize(raw_of.__getitem__, otypes=[object])
    log.info("shop %s: pricing set of %d customers x %d products; %d held-out offers verified",
             paths.shop_id, len(customers), k, len(offers))
    return ScoringSet(
        shop_id=paths.shop_id,
        customer_id=to_raw(grid["customer"].to_numpy()).astype(str),
        product_id=grid["product_id"].to_numpy(str),
        x=x,
        ref_price=ref.reindex(grid["product_id"]).to_numpy(np.float64),
        unit_cost=snap.products["unit_cost"].reindex(grid["product_id"]).to_numpy(np.float64),
        held_out=stored,
        held_out_customer=to_raw(offers["customer"].to_numpy()).astype(str),
        held_out_product=offers["product_id"].to_numpy(str),
        held_out_price=held_price,
    )
