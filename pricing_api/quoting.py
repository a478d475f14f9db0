"""Quoting: validated requests -> features -> model -> prices -> consistency -> audit -> response bodies."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np

from demand.guardrails import Guardrails
from demand.schema import assemble, pair_features, product_features
from fedprice.errors import InvalidDataError, NotFoundError
from pricing_api.audit import AuditBatch, AuditLog
from pricing_api.consistency import Inputs, Key, PriceMemory
from pricing_api.customer_data import CustomerRecord, FeatureSource
from pricing_api.guardrail_book import GuardrailBook
from pricing_api.metrics import ApiMetrics
from pricing_api.model_holder import ServingModel
from pricing_api.pricing import InfeasibleItemsError, price_items
from pricing_api.schemas import QuoteRequest

MAX_LISTED_PROBLEMS = 20
# Quote ids: a random per-process prefix and a counter (unique without asking the OS for randomness per request).
_QUOTE_PREFIX = secrets.token_hex(4)
_QUOTE_SERIAL = itertools.count(1)


class RequestProblemsError(InvalidDataError):
    """A request failed validation; `problems` holds (field, message) pairs, the message lists the first ones."""

    def __init__(self, problems: list[tuple[str, str]], *, status: int = 422) -> None:
        shown = "; ".join(f"{f}: {m}" for f, m in problems[:MAX_LISTED_PROBLEMS])
        more = f" (and {len(problems) - MAX_LISTED_PROBLEMS} more)" if len(problems) > MAX_LISTED_PROBLEMS else ""
        super().__init__(shown + more)
        self.problems = problems
        self.http_status = status


class _Customer(NamedTuple):  # a tuple: cheaper to make than a frozen dataclass, one per request
    shop_id: str
    pseudonym: str
    record: CustomerRecord


class QuoteService:
    """Prices any number of quote requests in one vectorised pass."""

    def __init__(self, *, features: FeatureSource, book: GuardrailBook, memory: PriceMemory, audit: AuditLog,
                 metrics: ApiMetrics, timezone: str = "UTC") -> None:
        self.features = features
        self.book = book
        self.memory = memory
        self.audit = audit
        self.metrics = metrics
        self.zone = ZoneInfo(timezone)

    def _check_shops(self, requests: list[QuoteRequest], loc: list[str]) -> None:
        unknown = [(f"{loc[i]}shop_id", f"unknown shop {r.shop_id!r} (no published features)")
                   for i, r in enumerate(requests) if not self.features.has_shop(r.shop_id)]
        if unknown:
            raise RequestProblemsError(unknown, status=NotFoundError.http_status)

    def _customers(self, requests: list[QuoteRequest]) -> list[_Customer]:
        by_shop: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            by_shop.setdefault(r.shop_id, []).append(i)
        out: list[_Customer | None] = [None] * len(requests)
        for shop, idx in by_shop.items():
            cat = self.features.catalogue(shop)
            found = self.features.customers(cat, [requests[i].customer_id for i in idx])
            for i, (pseud, rec) in zip(idx, found, strict=True):
                out[i] = _Customer(shop, pseud, rec)
        return [c for c in out if c is not None]

    def quote(self, model: ServingModel, requests: list[QuoteRequest], *, batch: bool) -> list[dict[str, Any]]:
        """Response bodies (QuoteResponse shape) for `requests`, in order; raises RequestProblemsError on bad input."""
        loc = [f"requests[{i}]." if batch else "" for i in range(len(requests))]
        self._check_shops(requests, loc)
        customers = self._customers(requests)
        items = [it for r in requests for it in r.items]
        counts = np.array([len(r.items) for r in requests])
        owner = np.repeat(np.arange(len(requests)), counts)
        n = len(items)
        pids = [it.product_id for it in items]
        lp_list, uc_list = [it.list_price for it in items], [it.unit_cost for it in items]
        comp_list = [it.competitor_price for it in items]
        lp, uc = np.array(lp_list, dtype=np.float64), np.array(uc_list, dtype=np.float64)
        comp = np.array([np.nan if v is None else v for v in comp_list], dtype=np.float64)

        x, known_product = self._features(requests, customers, counts, pids, lp)
        rails, group = self._rails(requests, items, counts)
        version = model.version
        own = owner.tolist()
        keys: list[Key] = [(customers[o].shop_id, customers[o].pseudonym, pid, version) for o, pid in zip(own, pids, strict=True)]
        rail_list = [rails[gi] for gi in group.tolist()] if len(rails) > 1 else [rails[0]] * n
        inputs: list[Inputs] = list(zip(lp_list, uc_list, comp_list, rail_list, strict=True))
        previous = self.memory.lookup(keys, inputs)

        mu, scale = model.predict(x)
        try:
            priced = price_items(mu=mu, scale=scale, list_price=lp, unit_cost=uc, competitor_price=comp, rails=rails,
                                 group=group, previous_price=None if previous is None else previous.price,
                                 previous_guardrail=None if previous is None else previous.guardrail,
                                 same_inputs=None if previous is None else previous.same_inputs)
        except InfeasibleItemsError as exc:
            first = np.concatenate([[0], np.cumsum(counts)[:-1]])
            raise RequestProblemsError([(f"{loc[owner[p.index]]}items[{p.index - first[owner[p.index]]}].{p.field}", p.message)
                                        for p in exc.problems]) from None

        now = time.time()
        prices, labels = priced.price.tolist(), priced.guardrail.tolist()
        self.memory.remember(keys, prices, labels, inputs, fresh=(~priced.reused).tolist(), now=now)
        known = [c.record.known for c in customers]
        self.metrics.quoted(labels, known, int(priced.reused.sum()))
        probs, margins = np.round(priced.probability, 6).tolist(), np.round(priced.margin, 4).tolist()
        self._audit(customers, counts.tolist(), version, now, {
            "product_id": pids, "product_known": known_product.astype(np.int8).tolist(),
            "category": [it.category for it in items], "list_price": lp_list, "unit_cost": uc_list,
            "competitor_price": comp_list, "price": prices, "buy_probability": probs, "expected_margin": margins,
            "guardrail": labels, "reused": priced.reused.astype(np.int8).tolist()})
        return self._bodies(requests, customers, counts, items, known_product, prices, probs, margins, labels, version)

    def _features(self, requests: list[QuoteRequest], customers: list[_Customer], counts: np.ndarray, pids: list[str],
                  lp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs per item and whether the shop knows each product.

        The customer block is repeated per item; the product block comes from the shop's table (an unseen
        product gets the defaults, with its list price as reference); pair counts from the customer's history.
        """
        n = len(pids)
        cust_block = np.repeat(np.array([c.record.vector for c in customers]), counts, axis=0)
        cats = {shop: self.features.catalogue(shop) for shop in dict.fromkeys(r.shop_id for r in requests)}
        rows: list[int] = []
        pc_list: list[int] = []
        sc_list: list[int] = []
        at: dict[str, tuple[list[int], list[int]]] = {shop: ([], []) for shop in cats}  # per shop: item positions, rows
        start = 0
        for r, c, k in zip(requests, customers, counts.tolist(), strict=True):  # plain lists: no numpy per request
            cat = cats[r.shop_id]
            mine = pids[start : start + k]
            found = [cat.index.get(p, -1) for p in mine]
            rows += found
            if len(cats) > 1:
                at[r.shop_id][0].extend(range(start, start + k))
                at[r.shop_id][1].extend(found)
            if c.record.known:
                prods, subs = c.record.products, c.record.subclasses
                pc_list += [prods.get(p, 0) for p in mine]
                sc_list += [subs.get(cat.subclass[j], 0) if j >= 0 else 0 for j in found]
            else:
                pc_list += [0] * k
                sc_list += [0] * k
            start += k
        idx = np.array(rows, dtype=np.intp)
        known_product = idx >= 0
        prod_block = np.zeros((n, 4), np.float32)
        for shop, cat in cats.items():  # one fancy index per shop; unseen products (row -1) get defaults below
            if len(cat.block):
                pos, got = at[shop] if len(cats) > 1 else (slice(None), idx)
                prod_block[pos] = cat.block[got]
        pc = np.array(pc_list, dtype=np.float64)
        sc = np.array(sc_list, dtype=np.float64)
        if not known_product.all():
            miss = ~known_product
            zero = np.zeros(int(miss.sum()))
            prod_block[miss] = product_features({"buy_rate": zero, "ref_price": lp[miss], "price_cv": zero},
                                                known=np.zeros(len(zero)))
        n_visits = np.repeat(np.array([c.record.n_visits for c in customers]), counts)
        days = np.repeat(np.array([c.record.history_days for c in customers]), counts)
        weekend = np.full(n, datetime.now(self.zone).weekday() >= 5, dtype=np.float32)
        return assemble(cust_block, prod_block, pair_features(pc, sc, n_visits, days), weekend), known_product


    def _rails(self, requests: list[QuoteRequest], items: list[Any], counts: np.ndarray) -> tuple[list[Guardrails], np.ndarray]:
        """Distinct guardrails of the items and each item's index into them (by shop and category)."""
        rails: list[Guardrails] = []
        codes: dict[tuple[str, str | None], int] = {}

        def code(shop: str, category: str | None) -> int:
            found = codes.get((shop, category))
            if found is None:
                g = self.book.resolve(shop, category)
                found = rails.index(g) if g in rails else len(rails)
                if found == len(rails):
                    rails.append(g)
                codes[(shop, category)] = found
            return found

        if not self.book.has_categories or all(it.category is None for it in items):
            return rails, np.repeat(np.array([code(r.shop_id, None) for r in requests], dtype=np.intp), counts)
        shops = np.repeat(np.array([r.shop_id for r in requests], dtype=object), counts).tolist()
        return rails, np.array([code(s, it.category) for s, it in zip(shops, items, strict=True)], dtype=np.intp)

    def _audit(self, customers: list[_Customer], counts: list[int], version: str, now: float,
               items: dict[str, Sequence[object]]) -> None:
        """Queue one audit batch: each customer request with its item count, and the item columns."""
        self.audit.record(AuditBatch(now, version, [
            (f"{_QUOTE_PREFIX}-{next(_QUOTE_SERIAL):x}", c.shop_id, c.pseudonym, "known" if c.record.known else "cold_start", k)
            for c, k in zip(customers, counts, strict=True)], items))

    @staticmethod
    def _bodies(requests: list[QuoteRequest], customers: list[_Customer], counts: np.ndarray, items: list[Any],
                known_product: np.ndarray, prices: list[float], probs: list[float], margins: list[float], labels: list[str],
                version: str) -> list[dict[str, Any]]:
        kp = known_product.tolist()
        quotes = [{"product_id": it.product_id, "list_price": it.list_price, "unit_cost": it.unit_cost, "price": p,
                   "buy_probability": b, "expected_margin": m, "guardrail": g, "product_known": k}
                  for it, p, b, m, g, k in zip(items, prices, probs, margins, labels, kp, strict=True)]
        out = []
        start = 0
        for r, c, k in zip(requests, customers, counts.tolist(), strict=True):
            path = "known" if c.record.known else "cold_start"
            out.append({"model_version": version, "shop_id": r.shop_id,
                        "customer": {"pseudonym_prefix": c.pseudonym[:12], "known": c.record.known, "path": path},
                        "quotes": quotes[start : start + k], "personalised": c.record.known})
            start += k
        return out
