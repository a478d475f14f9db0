"""Prometheus metrics of one API process: requests, latency, quotes by guardrail, cold-start share, model."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ApiMetrics:
    """Every metric on a registry of its own (one per app, so tests can build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("fedprice_api_requests", "HTTP requests by route, method and status.",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("fedprice_api_request_seconds", "Server-side request time by route.", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.quotes = Counter("fedprice_api_quotes", "Quoted items by the guardrail that bound the price.", ["guardrail"],
                              registry=r)
        self.customers = Counter("fedprice_api_quoted_customers", "Quoted customers by path (known or cold_start).",
                                 ["path"], registry=r)
        self.cold_start_share = Gauge("fedprice_api_cold_start_share",
                                      "Share of quoted customers served by the cold-start path since start.", registry=r)
        self.reused = Counter("fedprice_api_consistent_prices", "Items whose price repeats an earlier quote (window).",
                              registry=r)
        self.model_info = Gauge("fedprice_api_model_info", "The served model version (value 1).", ["version"], registry=r)
        self.reloads = Counter("fedprice_api_model_reloads", "Model reload attempts by result.", ["result"], registry=r)
        self.bad_blobs = Counter("fedprice_api_feature_decrypt_failures",
                                 "Customer feature blobs that failed to decrypt (served cold start).", registry=r)
        self._known = 0
        self._cold = 0
        self._version: str | None = None
        self._children: dict[tuple[Counter, str], Any] = {}  # (metric, label) -> child, resolved on first use

    def watch(self, name: str, doc: str, fn: Callable[[], float]) -> None:
        """A gauge read at scrape time."""
        Gauge(name, doc, registry=self.registry).set_function(fn)

    def served_model(self, version: str | None) -> None:
        """Point the model_info gauge at the served version."""
        if version == self._version:
            return
        if self._version is not None:
            self.model_info.remove(self._version)
        if version is not None:
            self.model_info.labels(version).set(1)
        self._version = version

    def _child(self, metric: Counter, label: str) -> Any:
        """The metric's child for one label value (label lookups take a lock and cost a few µs: done once)."""
        child = self._children.get((metric, label))
        if child is None:
            child = self._children[(metric, label)] = metric.labels(label)
        return child

    def quoted(self, guardrails: list[str], known: list[bool], reused: int) -> None:
        """Count one pricing call's items and customers."""
        for label, count in collections.Counter(guardrails).items():
            self._child(self.quotes, label).inc(count)
        n_known = sum(known)
        n_cold = len(known) - n_known
        if n_known:
            self._child(self.customers, "known").inc(n_known)
        if n_cold:
            self._child(self.customers, "cold_start").inc(n_cold)
        if reused:
            self.reused.inc(reused)
        self._known += n_known
        self._cold += n_cold
        self.cold_start_share.set(self._cold / max(self._known + self._cold, 1))

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
