"""The quote audit log: append-only SQLite tables, written in batches by one background thread.

Every quoted item becomes a row of the view quote_audit (pseudonym, shop, product, inputs, price, probability,
guardrail, model version, time): what the next training rounds can learn from. It joins quote_requests (one
row per customer request) and quote_items (one per item). Raw customer ids never reach them. Triggers refuse
UPDATE and DELETE on the tables and the view, so the application (or a mistaken script) cannot rewrite history.
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

REQUEST_COLUMNS = ("quoted_at", "quote_id", "shop_id", "pseudonym", "customer_path", "model_version")
ITEM_COLUMNS = ("product_id", "product_known", "category", "list_price", "unit_cost", "competitor_price", "price",
                "buy_probability", "expected_margin", "guardrail", "reused")
# Each customer request is one quote_requests row and each quoted item a quote_items row referencing it, so the
# per-request fields are bound once per request, not once per item. The view quote_audit joins them back into one
# row per quoted item with the columns of the original single table (id = the item's id, in quoting order).
AUDIT_COLUMNS = ("id", *REQUEST_COLUMNS[:5], *ITEM_COLUMNS, "model_version")
_APPEND_ONLY = """
CREATE TRIGGER IF NOT EXISTS {name}_no_update {when} UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS {name}_no_delete {when} DELETE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END;
"""
SCHEMA = """
CREATE TABLE IF NOT EXISTS quote_requests (
    id INTEGER PRIMARY KEY,
    quoted_at REAL NOT NULL,            -- unix seconds (UTC)
    quote_id TEXT NOT NULL,             -- one storefront request
    shop_id TEXT NOT NULL,
    pseudonym TEXT NOT NULL,            -- the shop's keyed pseudonym, never the raw id
    customer_path TEXT NOT NULL,        -- known | cold_start
    model_version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quote_items (
    id INTEGER PRIMARY KEY,
    request_id INTEGER NOT NULL REFERENCES quote_requests (id),
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
    reused INTEGER NOT NULL             -- 1 when the price repeats an earlier quote (consistency window)
);
""" + "".join(_APPEND_ONLY.format(name=t, table=t, when="BEFORE") for t in ("quote_requests", "quote_items"))
_JOINED = (f"SELECT i.id, {', '.join('r.' + c for c in REQUEST_COLUMNS[:5])}, {', '.join('i.' + c for c in ITEM_COLUMNS)}, "
           "r.model_version FROM quote_items AS i JOIN quote_requests AS r ON r.id = i.request_id")
LEGACY_TABLE = "quote_audit_v1"  # the single table of earlier versions, renamed on first open; its triggers stay
# Rows per INSERT statement. Each statement step releases and re-takes the GIL, which the busy event loop
# holds: one step per row made the writer thread wait and switch for every row (and cost the loop too).
ROWS_PER_INSERT = 64
RETRY_SECONDS = 1.0  # how often a failed audit write is retried when no new quotes arrive
# sqlite3 binds exact ints, floats and strs directly but sends bool and None through its adapter lookup (two
# failed attribute lookups, about three times the cost): flags arrive as ints, and a missing value is bound as
# NaN, which SQLite stores as NULL (pinned by tests/pricing_api/test_consistency_audit.py).
NULL = math.nan
NULLABLE = frozenset({"category", "competitor_price"})


class _Insert:
    """Multi-row INSERT statements for one table (ROWS_PER_INSERT rows each, the remainder one by one)."""

    def __init__(self, table: str, n_columns: int) -> None:
        row = f"({', '.join('?' * n_columns)})"
        self.one = f"INSERT INTO {table} VALUES {row}"
        self.many = f"INSERT INTO {table} VALUES {', '.join([row] * ROWS_PER_INSERT)}"

    def __call__(self, conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
        full = len(rows) - len(rows) % ROWS_PER_INSERT
        conn.executemany(self.many, (tuple(itertools.chain.from_iterable(rows[i : i + ROWS_PER_INSERT]))
                                     for i in range(0, full, ROWS_PER_INSERT)))
        conn.executemany(self.one, rows[full:])


_INSERT_REQUESTS = _Insert("quote_requests", 1 + len(REQUEST_COLUMNS))
_INSERT_ITEMS = _Insert("quote_items (request_id, " + ", ".join(ITEM_COLUMNS) + ")", 1 + len(ITEM_COLUMNS))


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

    def rows(self, first_id: int) -> tuple[list[tuple[object, ...]], Iterator[tuple[object, ...]]]:
        """quote_requests rows (ids from `first_id`) and quote_items rows (request id, ITEM_COLUMNS), built column-wise."""
        ids = range(first_id, first_id + len(self.customers))
        requests = [(i, self.quoted_at, *c[:4], self.model_version) for i, c in zip(ids, self.customers, strict=True)]
        owner = list(itertools.chain.from_iterable([i] * c[4] for i, c in zip(ids, self.customers, strict=True)))
        items = [[NULL if v is None else v for v in self.items[c]] if c in NULLABLE else self.items[c] for c in ITEM_COLUMNS]
        return requests, zip(owner, *items, strict=True)


def open_audit(path: Path) -> sqlite3.Connection:
    """Open (creating) the audit database: append-only tables, their triggers and the quote_audit view.

    A database of the earlier single-table layout keeps its rows, as LEGACY_TABLE (still append-only); the view
    then shows them first, their ids unchanged and the new items' ids after the last of them.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a power loss may lose the last commits, never corrupts
    with conn:
        if _kind(conn, "quote_audit") == "table":
            conn.execute(f"ALTER TABLE quote_audit RENAME TO {LEGACY_TABLE}")
    conn.executescript(SCHEMA)
    if _kind(conn, "quote_audit") is None:
        view = _JOINED
        if _kind(conn, LEGACY_TABLE) == "table":
            offset = int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {LEGACY_TABLE}").fetchone()[0])
            view = (f"SELECT {', '.join(AUDIT_COLUMNS)} FROM {LEGACY_TABLE} UNION ALL "
                    + _JOINED.replace("SELECT i.id,", f"SELECT i.id + {offset} AS id,", 1))
        conn.executescript(f"CREATE VIEW IF NOT EXISTS quote_audit AS {view};"
                           + _APPEND_ONLY.format(name="quote_audit_view", table="quote_audit", when="INSTEAD OF"))
    return conn


def _kind(conn: sqlite3.Connection, name: str) -> str | None:
    found = conn.execute("SELECT type FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    return None if found is None else str(found[0])


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
        # Batches a failed write left behind: retried first at every flush (every RETRY_SECONDS without traffic).
        # While any wait, `healthy` is False, so readiness turns red and the balancer stops sending quotes whose
        # audit rows could not be kept; nothing is dropped while the process lives.
        self._pending: list[AuditBatch] = []
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    @property
    def problem(self) -> str | None:
        """Why the audit log is not healthy, for readiness (None when it is)."""
        if not self._thread.is_alive():
            return "audit log writer is not running"
        if self._pending:
            return (f"audit log {self.path}: {self._pending_items} quoted items not yet written, retrying "
                    f"(last error: {self.last_error})")
        return None

    @property
    def healthy(self) -> bool:
        """Whether the writer thread runs and nothing waits behind a failed write."""
        return self.problem is None

    @property
    def _pending_items(self) -> int:
        return sum(len(b) for b in self._pending)

    def record(self, batch: AuditBatch) -> None:
        """Queue one request's rows."""
        self._queue.put(batch)

    def _write(self, batches: list[AuditBatch]) -> None:
        batches = self._pending + batches
        try:
            with self._db_lock, self._conn:  # in order: ids follow quoting time (see `recent`)
                self._conn.execute("BEGIN IMMEDIATE")  # the write lock first: request ids are taken from the table
                next_id = int(self._conn.execute("SELECT coalesce(max(id), 0) + 1 FROM quote_requests").fetchone()[0])
                requests: list[tuple[object, ...]] = []
                items: list[tuple[object, ...]] = []
                for b in batches:
                    reqs, its = b.rows(next_id)
                    requests += reqs
                    items.extend(its)
                    next_id += len(reqs)
                _INSERT_REQUESTS(self._conn, requests)
                _INSERT_ITEMS(self._conn, items)
            self.written += len(items)
            if self._pending:
                log.warning("audit log %s: written again after a failure (%d batches were waiting)", self.path,
                            len(self._pending))
            self._pending = []
            self.last_error = None
        except sqlite3.Error as exc:  # the transaction rolled back: keep every batch for the next attempt
            self.failures += 1
            self._pending = batches
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("audit log %s: could not write %d batches (kept, retrying): %s", self.path, len(batches), exc)

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=RETRY_SECONDS if self._pending else None)
            except queue.Empty:  # nothing new: retry what waits
                self._write([])
                continue
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
            if batches or self._pending:
                self._write(batches)

    def close(self) -> None:
        """Write everything queued, then stop the thread and close the database."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=30)
        if self._pending:
            log.error("audit log %s: %d quoted items could not be written before shutdown (last error: %s)", self.path,
                      self._pending_items, self.last_error)
        self._conn.close()

    def recent(self, since: float, limit: int, *, chunk: int = 20_000) -> list[tuple[object, ...]]:
        """First-time quotes since `since` (oldest first): what the consistency memory is warmed with.

        Rows are appended in time order, so this walks back from the newest item in chunks and stops at the
        first row older than `since` (no time index to maintain on every insert); then the legacy table, if any.
        """
        cols = "shop_id, pseudonym, product_id, model_version, price, guardrail, list_price, unit_cost, competitor_price"
        sources = [f"SELECT i.id, {', '.join(('i.' if c in ITEM_COLUMNS else 'r.') + c for c in cols.split(', '))}, "
                   "r.quoted_at, i.reused FROM quote_items AS i JOIN quote_requests AS r ON r.id = i.request_id WHERE i.id < ?"]
        out: list[tuple[object, ...]] = []
        with self._db_lock:
            if _kind(self._conn, LEGACY_TABLE) == "table":
                sources.append(f"SELECT id, {cols}, quoted_at, reused FROM {LEGACY_TABLE} WHERE id < ?")
            for source in sources:
                if self._walk_back(source, since, limit, chunk, out):
                    break
        return list(reversed(out[:limit]))

    def _walk_back(self, source: str, since: float, limit: int, chunk: int, out: list[tuple[object, ...]]) -> bool:
        """Append `source`'s first-time rows since `since`, newest first; True once an older row or `limit` is reached."""
        upper = 2**63 - 1
        while len(out) < limit:
            rows = self._conn.execute(f"{source} ORDER BY 1 DESC LIMIT ?", (upper, chunk)).fetchall()
            if not rows:
                return False
            upper = rows[-1][0]
            fresh = [r for r in rows if float(r[10]) >= since]
            out.extend(r[1:11] for r in fresh if r[11] == 0)
            if len(fresh) < len(rows):
                return True
        return True
