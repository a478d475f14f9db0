"""Where a shop keeps its things, and the encrypted prepared examples (every file stays in the shop)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demand.examples import CustomerExamples, OfferRows
from demand.schema import SCHEMA_VERSION
from privacy.keys import ShopKeyring, atomic_write
from privacy.ledger import LedgerStore


@dataclass(frozen=True)
class ShopPaths:
    """The layout of one shop's directory."""

    shop_id: str
    root: Path

    @property
    def raw_export(self) -> Path:
        return self.root / "raw" / "export.csv"

    @property
    def key_dir(self) -> Path:
        return self.root / "keys"

    @property
    def quarantine(self) -> Path:
        # bad rows are raw input (raw ids included): they stay beside the export, in the raw area
        return self.root / "raw" / "rejected.csv"

    @property
    def train(self) -> Path:
        return self.root / "prepared" / "train.enc"

    @property
    def test(self) -> Path:
        return self.root / "prepared" / "test.enc"

    @property
    def summary(self) -> Path:
        return self.root / "prepared" / "summary.json"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.enc"

    def keyring(self, *, create: bool = True) -> ShopKeyring:
        """The shop's keys (created owner-only on first use)."""
        return ShopKeyring.load(self.shop_id, self.key_dir, create=create)

    def ledger_store(self, keyring: ShopKeyring | None = None) -> LedgerStore:
        """The shop's epsilon ledger store."""
        return LedgerStore(self.ledger, keyring or self.keyring(create=False))


def _context(table: str) -> dict[str, str | int]:
    return {"table": table, "schema": SCHEMA_VERSION}


def save_examples(paths: ShopPaths, keyring: ShopKeyring, train: CustomerExamples, test: OfferRows,
                  summary: dict[str, Any]) -> None:
    """Encrypt and write the prepared examples; the summary holds counts only (no customer data)."""
    atomic_write(paths.train, keyring.seal(train.to_bytes(), _context("train_examples")))
    atomic_write(paths.test, keyring.seal(test.to_bytes(), _context("test_offers")))
    atomic_write(paths.summary, json.dumps(summary, indent=1, default=str).encode())


def load_train(paths: ShopPaths, keyring: ShopKeyring) -> CustomerExamples:
    """Decrypt the shop's training examples."""
    blob = keyring.unseal(paths.train.read_bytes(), _context("train_examples"), what=f"training examples {paths.train}")
    return CustomerExamples.from_bytes(blob)


def load_test(paths: ShopPaths, keyring: ShopKeyring) -> OfferRows:
    """Decrypt the shop's held-out offers."""
    blob = keyring.unseal(paths.test.read_bytes(), _context("test_offers"), what=f"held-out offers {paths.test}")
    return OfferRows.from_bytes(blob)


def load_summary(paths: ShopPaths) -> dict[str, Any]:
    """The shop's preparation summary (counts, catalogue size, test start)."""
    return json.loads(paths.summary.read_text())
