"""The quote audit log: an append-only SQLite table, written in batches by one background thread.

Every quoted item becomes a row (pseudonym, shop, product, inputs, price, probability, guardrail, model
version, time): what the next training rounds can learn from. Raw customer ids never reach it. Triggers
refuse UPDATE and DELETE, so the application (or a mistaken script) cannot rewrite history.
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS quote_audit (
    id INTEGER PRIMARY KEY,
    quoted_at REAL NOT NULL,            -- unix seconds (UTC)
    quote_id TEXT NOT NULL,             -- one storefront request
    shop_id TEXT NOT NULL,
    pseudonym TEXT NOT NULL,            -- the shop's keyed pseudonym, never the raw id
    customer_path TEXT NOT NULL,        -- known | cold_start
    product_id TEXT NOT NULL,
    product_known INTEGER NOT NULL,
    category TEXT,
    list_price REAL NOT NULL,
    unit_cost REAL NOT NULL,
    competitor_price REAL,
    price REAL NOT NULL,
    buy_probability REAL NOT NULL,
    expected_margin REAL NOT NULL,
    guardrail TEXT NOT NULL,
    reused INTEGER NOT NULL,            -- 1 when the price repeats an earlier quote (consistency window)
    model_version TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS quote_audit_no_update BEFORE UPDATE ON quote_audit
BEGIN SELECT RAISE(ABORT, 'quote_audit is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS quote_audit_no_delete BEFORE DELETE ON quote_audit
BEGIN SELECT RAISE(ABORT, 'quote_audit is append-only: DELETE refused'); END;
"""
COLUMNS = ("quoted_at", "quote_id", "shop_id", "pseudonym", "customer_path", "product_id", "product_known", "category",
           "list_price", "unit_cost", "competitor_price", "price", "buy_probability", "expected_margin", "guardrail",
           "reused", "model_version")
_ROW = f"({', '.join('?' * len(COLUMNS))})"
_INSERT = f"INSERT INTO quote_audit ({', '.join(COLUMNS)}) VALUES {_ROW}"
# Rows per INSERT statement. Each statement step releases and re-takes the GIL, which the busy event loop
# holds: one step per row made the writer thread wait and switch for every row (and cost the loop too).
ROWS_PER_INSERT = 64
_INSERT_MANY = f"INSERT INTO quote_audit ({', '.join(COLUMNS)}) VALUES {', '.join([_ROW] * ROWS_PER_INSERT)}"


# sqlite3 binds exact ints, floats and strs directly but sends bool and None through its adapter lookup (two
# failed attribute lookups, about three times the cost): flags arrive as ints, and a missing value is bound as
# NaN, which SQLite stores as NULL (pinned by tests/pricing_api/test_consistency_audit.py).
NULL = math.nan
NULLABLE = frozenset({"category", "competitor_price"})
ITEM_COLUMNS = ("product_id", "product_known", "category", "list_price", "unit_cost", "competitor_price", "price",
                "buy_probability", "expected_margin", "guardrail", "reused")


@dataclass(frozen=True)
class AuditBatch:
    """One pricing pass: per customer request (quote_id, shop_id, pseudonym, path, number of items) and item columns.

    The request path only hands over lists it already has (flags as ints); the writer thread expands them into rows.
    """

    quoted_at: float
    model_version: str
    customers: list[tuple[str, str, str, str, int]]
    items: dict[str, Sequence[object]]

    def __len__(self) -> int:
        return len(self.items["price"])

    def rows(self) -> Iterator[tuple[object, ...]]:
        """The batch as insert tuples in COLUMNS order (built column-wise: the per-row work stays in C)."""
        n = len(self)
        per_request = [list(itertools.chain.from_iterable([c[f]] * c[4] for c in self.customers)) for f in range(4)]
        items = [[NULL if v is None else v for v in self.items[c]] if c in NULLABLE else self.items[c] for c in ITEM_COLUMNS]
        return zip([self.quoted_at] * n, *per_request, *items, [self.model_version] * n, strict=True)


def open_audit(path: Path) -> sqlite3.Connection:
    """Open (creating) the audit database with the append-only table and its triggers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    return conn


class AuditLog:
    """Queues audit batches and writes them from one thread every `flush_seconds` (and on close)."""

    def __init__(self, path: Path, *, flush_seconds: float = 0.05) -> None:
        self.path = path
        self.flush_seconds = flush_seconds
        self._conn = open_audit(path)
        self._db_lock = threading.Lock()
        self._queue: queue.SimpleQueue[AuditBatch | None] = queue.SimpleQueue()
        self.failures = 0
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    @property
    def healthy(self) -> bool:
        """Whether the writer thread runs."""
        return self._thread.is_alive()

    def record(self, batch: AuditBatch) -> None:
        """Queue one request's rows."""
        self._queue.put(batch)

    def _write(self, batches: list[AuditBatch]) -> None:
        rows = list(itertools.chain.from_iterable(b.rows() for b in batches))
        full = len(rows) - len(rows) % ROWS_PER_INSERT
        try:
            with self._db_lock, self._conn:  # in order: ids follow quoting time (see `recent`)
                self._conn.executemany(_INSERT_MANY, (tuple(itertools.chain.from_iterable(rows[i : i + ROWS_PER_INSERT]))
                                                      for i in range(0, full, ROWS_PER_INSERT)))
                self._conn.executemany(_INSERT, rows[full:])
            self.written += len(rows)
        except sqlite3.Error as exc:
            self.failures += 1
            log.error("audit log %s: could not write %d batches: %s", self.path, len(batches), exc)

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            batches: list[AuditBatch] = []
            if first is None:
                stop = True
            else:
                batches.append(first)
                time.sleep(self.flush_seconds)  # gather what arrives meanwhile into one transaction
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                else:
                    batches.append(item)
            if batches:
                self._write(batches)

    def close(self) -> None:
        """Write everything queued, then stop the thread and close the database."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=30)
        self._conn.close()

    def recent(self, since: float, limit: int, *, chunk: int = 20_000) -> list[tuple[object, ...]]:
        """First-time quotes since `since` (oldest first): what the consistency memory is warmed with.

        Rows are appended in time order, so this walks back from the newest id in chunks and stops at the
        first row older than `since` (no time index to maintain on every insert).
        """
        out: list[tuple[object, ...]] = []
        upper = None
        with self._db_lock:
            while len(out) < limit:
                rows = self._conn.execute(
                    "SELECT id, shop_id, pseudonym, product_id, model_version, price, guardrail, list_price, unit_cost,"
                    " competitor_price, quoted_at, reused FROM quote_audit WHERE id < ? ORDER BY id DESC LIMIT ?",
                    (upper if upper is not None else 2**63 - 1, chunk)).fetchall()
                if not rows:
                    break
                upper = rows[-1][0]
                fresh = [r for r in rows if float(r[10]) >= since]
                out.extend(r[1:11] for r in fresh if r[11] == 0)
                if len(fresh) < len(rows):
                    break
        return list(reversed(out[:limit]))
