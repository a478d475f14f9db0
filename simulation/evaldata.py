"""All shops' pricing rows and held-out offers in one place, with the demand every approach is scored against.

Two sources of truth: the synthetic market's true demand curves (`synthetic_data`), and, for the
semi-synthetic Ta Feng evaluation, a model standing in for the truth (`model_truth_data`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from demand.examples import OfferRows
from demand.guardrails import infeasible, price_bounds
from demand.model import DemandModel, predict
from simulation.scorecard import GUARDRAILS, PricingRows
from simulation.scoring import ScoringSet
from simulation.synthetic import MarketTruth

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class EvalData:
    """Pricing rows (customer x product) and held-out offers of every shop, concatenated in shop order."""

    shops: tuple[str, ...]
    shop: np.ndarray  # per pricing row
    customer: np.ndarray  # raw id per pricing row (in memory only)
    x: np.ndarray
    ref_price: np.ndarray
    rows: PricingRows  # list price, unit cost, true (mu, s) in list-price units, product id
    segment: np.ndarray  # a label per pricing row for the price-by-segment plot
    held_out: OfferRows
    held_out_shop: np.ndarray
    held_out_true_p: np.ndarray  # the truth's purchase probability of each held-out offer
    dropped_infeasible: int = 0  # pricing rows left out because no price satisfies the guardrails

    def model_curves(self, model: DemandModel, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A model's (mu, s) for the pricing rows (all, or those in `mask`), in list-price units.

        The model's prices are relative to the shop's reference price r_ref, so sigmoid((mu - p/r_ref)/s)
        equals sigmoid((mu*f - p/r_list)/(s*f)) with f = r_ref / r_list.
        """
        sel = slice(None) if mask is None else mask
        mu, scale = predict(model, self.x[sel])
        factor = self.ref_price[sel] / self.rows.list_price[sel]
        return mu * factor, scale * factor


def _concat(sets: list[ScoringSet], name: str) -> np.ndarray:
    return np.concatenate([getattr(s, name) for s in sets])


def _held_out(sets: list[ScoringSet]) -> tuple[OfferRows, np.ndarray]:
    rows = OfferRows.concat([s.held_out for s in sets])
    return rows, np.concatenate([np.full(len(s.held_out), s.shop_id) for s in sets])


def _feasible(list_price: np.ndarray, unit_cost: np.ndarray) -> np.ndarray:
    lower, upper = price_bounds(GUARDRAILS, list_price=list_price, unit_cost=unit_cost)
    ok: np.ndarray = ~infeasible(lower, upper)
    return ok


def synthetic_data(sets: list[ScoringSet], truth: MarketTruth) -> EvalData:
    """Pricing rows scored against the synthetic market's true demand (list price and cost from its catalogue)."""
    cat = truth.catalogue.set_index("product_id")
    pid = _concat(sets, "product_id")
    mus, scales, held_p = [], [], []
    staple = truth.staple_product_id
    for s in sets:
        mu, scale = truth.true_demand(shop_id=s.shop_id, customer_ids=s.customer_id.tolist(),
                                      product_ids=s.product_id.tolist())
        mus.append(mu)
        scales.append(scale)
        p = np.ones(len(s.held_out_product))  # the staple is bought on every visit by construction
        priced = s.held_out_product != staple
        hm, hs = truth.true_demand(shop_id=s.shop_id, customer_ids=s.held_out_customer[priced].tolist(),
                                   product_ids=s.held_out_product[priced].tolist())
        lp = cat["list_price"].reindex(s.held_out_product[priced]).to_numpy(np.float64)
        p[priced] = expit((hm - s.held_out_price[priced] / lp) / hs)
        held_p.append(p)
    customer = _concat(sets, "customer_id")
    segment = truth.customers.set_index("customer_id")["segment"].reindex(customer).to_numpy()
    rows = PricingRows(list_price=cat["list_price"].reindex(pid).to_numpy(np.float64),
                       unit_cost=cat["unit_cost"].reindex(pid).to_numpy(np.float64),
                       true_mu=np.concatenate(mus), true_s=np.concatenate(scales), product_id=pid)
    held, held_shop = _held_out(sets)
    return EvalData(shops=tuple(s.shop_id for s in sets), shop=np.concatenate([np.full(len(s), s.shop_id) for s in sets]),
                    customer=customer, x=_concat(sets, "x"), ref_price=_concat(sets, "ref_price"), rows=rows,
                    segment=np.asarray([f"segment {k}" for k in segment]), held_out=held, held_out_shop=held_shop,
                    held_out_true_p=np.concatenate(held_p))


def model_truth_data(sets: list[ScoringSet], truth_model: DemandModel) -> EvalData:
    """Pricing rows scored against a model standing in for the truth; list price = the shop's reference price."""
    ref, cost = _concat(sets, "ref_price"), _concat(sets, "unit_cost")
    keep = _feasible(ref, cost) & np.isfinite(cost)
    dropped = int((~keep).sum())
    if dropped:
        log.info("%d of %d pricing rows left out: unit cost above the guardrail band (no feasible price)", dropped, len(keep))
    x = _concat(sets, "x")[keep]
    mu, scale = predict(truth_model, x)
    pid = _concat(sets, "product_id")[keep]
    rows = PricingRows(list_price=ref[keep], unit_cost=cost[keep], true_mu=mu, true_s=scale, product_id=pid)
    held, held_shop = _held_out(sets)
    hm, hs = predict(truth_model, held.x)
    shop = np.concatenate([np.full(len(s), s.shop_id) for s in sets])[keep]
    return EvalData(shops=tuple(s.shop_id for s in sets), shop=shop, customer=_concat(sets, "customer_id")[keep], x=x,
                    ref_price=ref[keep], rows=rows, segment=np.char.add("shop ", shop.astype(str)), held_out=held,
                    held_out_shop=held_shop, held_out_true_p=expit((hm - held.price_ratio) / hs), dropped_infeasible=dropped)
