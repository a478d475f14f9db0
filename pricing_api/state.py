"""Everything one API process holds: settings, keys, model, features, guardrails, memory, audit, metrics."""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass

import torch

from fedprice.errors import FedpriceError, ModelNotReadyError
from pricing_api.audit import AuditLog
from pricing_api.auth import KeyChecker
from pricing_api.batcher import QuoteBatcher
from pricing_api.consistency import PriceMemory
from pricing_api.customer_data import FeatureSource
from pricing_api.guardrail_book import GuardrailBook
from pricing_api.metrics import ApiMetrics
from pricing_api.model_holder import ModelHolder, ReloadResult, ServingModel
from pricing_api.quoting import QuoteService
from pricing_api.settings import ApiSettings

log = logging.getLogger(__name__)
GC_THRESHOLDS = (50_000, 20, 100)


@dataclass
class ApiState:
    """The process's components; `start` loads the model and opens the audit log, `stop` flushes it."""

    settings: ApiSettings
    metrics: ApiMetrics
    keys: KeyChecker
    book: GuardrailBook
    holder: ModelHolder
    features: FeatureSource
    memory: PriceMemory
    audit: AuditLog | None = None
    service: QuoteService | None = None
    batcher: QuoteBatcher | None = None

    @classmethod
    def build(cls, settings: ApiSettings) -> ApiState:
        """Read keys and guardrails (a bad file fails here, before serving); nothing heavy yet."""
        metrics = ApiMetrics()
        features = FeatureSource(settings.feature_store, settings.shops_dir, cache_size=settings.customer_cache_size,
                                 refresh_seconds=settings.feature_refresh_seconds, on_bad_blob=metrics.bad_blobs.inc)
        return cls(settings, metrics, KeyChecker(settings.api_keys_file, refresh_seconds=settings.keys_refresh_seconds),
                   GuardrailBook.load(settings.guardrails_file), ModelHolder(settings.registry_dir, settings.public_key),
                   features, PriceMemory(window_seconds=settings.consistency_window_seconds,
                                         max_entries=settings.consistency_max_entries))

    def start(self) -> None:
        """Load the newest verified model, open the audit log and warm the consistency memory from it."""
        torch.set_num_threads(self.settings.torch_threads)
        # Full garbage collections walk every cached object (customers, remembered prices): ~100 ms pauses on
        # a busy server. Rarer young collections, and the start-up objects moved out of the collector's sight.
        gc.set_threshold(*GC_THRESHOLDS)
        self.record_reload(self.holder.load_at_startup())
        self.audit = AuditLog(self.settings.audit_db, flush_seconds=self.settings.audit_flush_seconds)
        if self.memory.enabled:
            warmed = self.memory.warm(self.audit.recent(time.time() - self.memory.window, self.memory.max_entries))
            log.info("consistency memory: %d prices still inside the %.0f s window", warmed, self.memory.window)
        self.service = QuoteService(features=self.features, book=self.book, memory=self.memory, audit=self.audit,
                                    metrics=self.metrics, timezone=self.settings.timezone)
        self.batcher = QuoteBatcher(self.service, self.model)
        audit = self.audit
        self.metrics.watch("fedprice_api_audit_rows_written", "Audit rows written since start.", lambda: audit.written)
        self.metrics.watch("fedprice_api_audit_write_failures", "Failed audit transactions since start.",
                           lambda: audit.failures)
        self.metrics.watch("fedprice_api_consistency_entries", "Prices held for consistency.", lambda: len(self.memory))
        gc.collect()
        gc.freeze()

    def stop(self) -> None:
        """Flush the audit log and close files."""
        if self.audit is not None:
            self.audit.close()
        self.features.close()

    def record_reload(self, result: ReloadResult) -> ReloadResult:
        """Count a reload attempt and point the model gauge at the served version."""
        self.metrics.reloads.labels(result.status).inc()
        self.metrics.served_model(result.version)
        return result

    def model(self) -> ServingModel:
        """The served model, or 503 with the reason none is served."""
        current = self.holder.current
        if current is None:
            raise ModelNotReadyError(f"no verified model is loaded: {self.holder.last_error or 'not started'}")
        return current

    def readiness_problems(self) -> list[str]:
        """Why the process should not get traffic (empty when ready)."""
        problems = []
        if self.holder.current is None:
            problems.append(f"model: {self.holder.last_error or 'not loaded'}")
        try:
            if not self.features.refresh():
                problems.append(f"feature store {self.settings.feature_store}: no shop has published features")
        except FedpriceError as exc:
            problems.append(str(exc))
        if self.audit is None:
            problems.append("audit log writer is not running")
        elif (problem := self.audit.problem) is not None:
            problems.append(problem)
        return problems
