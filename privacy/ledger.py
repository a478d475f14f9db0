"""A shop's lifetime epsilon ledger: persisted encrypted, composed across rounds, runs and restarts.

The ledger file (`ledger.enc`) is sealed with the shop's data key, so an edited byte fails to open.
Every save bumps a counter that is also sealed in `keys/ledger.anchor`: a deleted ledger, or an older
copy put back, is refused loudly instead of silently restarting the shop's epsilon from zero.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedprice.errors import BadSignatureError, BudgetExhaustedError
from privacy.accounting import Step, epsilon, noise_for_budget
from privacy.keys import ShopKeyring, atomic_write
from privacy.report import shop_report

log = logging.getLogger(__name__)
LEDGER_CONTEXT: dict[str, str | int] = {"table": "epsilon_ledger", "schema": 1}
ANCHOR_CONTEXT: dict[str, str | int] = {"table": "epsilon_ledger_anchor", "schema": 1}
ANCHOR_FILE = "ledger.anchor"
BUDGET_SLACK = 1e-6
DEFAULT_BUDGET = 3.0


class LedgerIntegrityError(BadSignatureError):
    """The ledger is missing, rolled back, or was changed by someone else since it was loaded."""


@dataclass
class LedgerEntry:
    """One training round that spent budget."""

    run_id: str
    server_round: int
    sigma: float
    sample_rate: float
    steps: int
    epsilon_after: float
    clipping_norm: float
    poisson_sampling: bool
    at: str


@dataclass
class PrivacyLedger:
    """Every DP-SGD step a shop ever ran, the (epsilon, delta) they add up to, and the budget."""

    shop_id: str
    budget: float
    delta: float
    accountant: str = "rdp"
    unit: str = "customer"
    adjacency: str = "add/remove one customer (all of their offer rows)"
    history: list[Step] = field(default_factory=list)
    entries: list[LedgerEntry] = field(default_factory=list)
    plans: dict[str, float] = field(default_factory=dict)
    refusals: list[dict[str, Any]] = field(default_factory=list)
    seq: int = 0  # saves so far; the anchor holds the same number (rollback/deletion detection)
    unprotected: list[dict[str, Any]] = field(default_factory=list)  # rounds released WITHOUT DP

    def epsilon(self) -> float:
        """Cumulative epsilon spent so far at the ledger's delta (infinite once a round was trained without DP)."""
        return math.inf if self.unprotected else epsilon(self.history, delta=self.delta)

    def epsilon_if(self, *, sigma: float, sample_rate: float, steps: int) -> float:
        """Cumulative epsilon after `steps` more steps at (sigma, q)."""
        if self.unprotected:
            return math.inf
        return epsilon([*self.history, (sigma, sample_rate, steps)], delta=self.delta)

    def plan(self, *, run_id: str, sample_rate: float, steps_per_round: int, rounds_left: int,
             target: float | None = None) -> float:
        """Sigma for a run: chosen once so the whole run fits `target` (default: the shop's budget), then kept.

        The federation plans for its target; the shop's own budget is enforced separately by `check`,
        so a shop whose budget is below the plan trains until the budget, then refuses.
        """
        if run_id not in self.plans:
            self.plans[run_id] = noise_for_budget(
                history=self.history,
                sample_rate=sample_rate,
                steps=steps_per_round * max(rounds_left, 1),
                delta=self.delta,
                budget=self.budget if target is None else target,
            )
        return self.plans[run_id]

    def check(self, *, sigma: float, sample_rate: float, steps: int) -> float:
        """Raise BudgetExhaustedError if the next round would exceed the budget; else its epsilon."""
        if self.unprotected:
            raise BudgetExhaustedError(
                f"shop {self.shop_id}: budget exhausted: {len(self.unprotected)} round(s) were trained without DP, "
                "so these customers have no epsilon guarantee left")
        after = self.epsilon_if(sigma=sigma, sample_rate=sample_rate, steps=steps)
        if after > self.budget + BUDGET_SLACK:
            raise BudgetExhaustedError(
                f"shop {self.shop_id}: budget exhausted: the next round would reach epsilon={after:.3f} "
                f"> budget {self.budget:.3f} (spent {self.epsilon():.3f}, delta={self.delta:.2e})"
            )
        return after

    def record(
        self, *, run_id: str, server_round: int, history: list[Step], sigma: float, sample_rate: float,
        steps: int, clipping_norm: float, poisson_sampling: bool = True,
    ) -> LedgerEntry:
        """Adopt the accountant history after a round and log the round as an entry.

        The new history must extend the old one: epsilon and the step count never go down.
        """
        new = [(float(s), float(q), int(n)) for s, q, n in history]
        old_steps, new_steps = sum(n for *_, n in self.history), sum(n for *_, n in new)
        if new_steps < old_steps or epsilon(new, delta=self.delta) < epsilon(self.history, delta=self.delta) - 1e-9:
            raise LedgerIntegrityError(f"shop {self.shop_id}: the accountant history after round {server_round} "
                                       f"does not extend the ledger ({new_steps} < {old_steps} steps?)")
        self.history = new
        entry = LedgerEntry(
            run_id=run_id, server_round=server_round, sigma=sigma, sample_rate=sample_rate, steps=steps,
            epsilon_after=self.epsilon(), clipping_norm=clipping_norm, poisson_sampling=poisson_sampling,
            at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self.entries.append(entry)
        return entry

    def record_unprotected(self, *, run_id: str, server_round: int, reason: str = "trained without DP") -> None:
        """Record a round whose update was released without DP: from now on epsilon is infinite (honestly)."""
        self.unprotected.append({"run_id": run_id, "server_round": server_round, "reason": reason,
                                 "at": datetime.now(UTC).isoformat(timespec="seconds")})

    def refuse(self, *, run_id: str, server_round: int, reason: str) -> None:
        """Remember that a round was refused for lack of budget."""
        self.refusals.append({"run_id": run_id, "server_round": server_round, "reason": reason,
                              "at": datetime.now(UTC).isoformat(timespec="seconds")})

    def state_dict(self) -> dict[str, Any]:
        """A JSON-able snapshot of the ledger."""
        doc = asdict(self)
        doc["history"] = [list(h) for h in self.history]
        return doc

    @classmethod
    def from_state_dict(cls, doc: dict[str, Any]) -> PrivacyLedger:
        """Rebuild a ledger from `state_dict()` output."""
        doc = dict(doc)
        doc["history"] = [(float(s), float(q), int(n)) for s, q, n in doc.get("history", [])]
        doc["entries"] = [LedgerEntry(**e) for e in doc.get("entries", [])]
        return cls(**doc)

    def load_state_dict(self, doc: dict[str, Any]) -> None:
        """Replace this ledger's state with `state_dict()` output (Opacus accountant style)."""
        other = PrivacyLedger.from_state_dict(doc)
        self.__dict__.update(other.__dict__)

    def report(self) -> dict[str, Any]:
        """What a privacy reviewer asks for, for this shop (see privacy.report)."""
        return shop_report(self)


class LedgerStore:
    """Loads and saves one shop's ledger, encrypted with the shop's data key and anchored against rollback."""

    def __init__(self, path: Path, keyring: ShopKeyring) -> None:
        self.path = path
        self.keyring = keyring
        self.anchor_path = keyring.key_dir / ANCHOR_FILE

    def exists(self) -> bool:
        """Whether the shop has a ledger yet."""
        return self.path.exists()

    def load(self, *, budget: float | None = None, delta: float | None = None) -> PrivacyLedger:
        """Load the ledger, or start an empty one if none exists (needs delta; budget defaults to 3).

        `budget` is the shop's own setting: only the shop changes it, never the federation's plan.
        Raises DecryptionError for a tampered file and LedgerIntegrityError for a deleted or rolled-back one.
        """
        anchor = self._read_anchor()
        if not self.path.exists():
            if anchor > 0:
                raise LedgerIntegrityError(
                    f"shop {self.keyring.shop_id}: privacy ledger {self.path} is missing, but it was saved {anchor} "
                    f"time(s) before; restore it from backup (refusing to restart epsilon from zero)")
            if delta is None:
                raise FileNotFoundError(f"no privacy ledger at {self.path}")
            return PrivacyLedger(shop_id=self.keyring.shop_id, budget=DEFAULT_BUDGET if budget is None else budget,
                                 delta=delta)
        ledger = self._read_ledger()
        if ledger.seq < anchor:
            raise LedgerIntegrityError(
                f"shop {self.keyring.shop_id}: privacy ledger {self.path} is an older copy (save #{ledger.seq}; the "
                f"anchor records save #{anchor}): a rolled-back ledger under-reports epsilon; restore the latest one")
        if ledger.seq > 0 and not self.anchor_path.exists():
            raise LedgerIntegrityError(f"shop {self.keyring.shop_id}: ledger anchor {self.anchor_path} is missing; "
                                       "restore it from the shop's key backup")
        if budget is not None and not math.isclose(budget, ledger.budget):
            log.info("shop %s: epsilon budget changed %.3f -> %.3f", ledger.shop_id, ledger.budget, budget)
            ledger.budget = budget
        return ledger

    def save(self, ledger: PrivacyLedger) -> None:
        """Persist atomically, then advance the anchor; refuse if the file changed since `ledger` was loaded."""
        with self._locked():
            on_disk = self._read_ledger().seq if self.path.exists() else self._read_anchor()
            if on_disk != ledger.seq:
                raise LedgerIntegrityError(
                    f"shop {self.keyring.shop_id}: privacy ledger {self.path} was saved by someone else since it was "
                    f"loaded (save #{on_disk} on disk, #{ledger.seq} in memory); not overwriting it: reload and retry")
            doc = ledger.state_dict()
            doc["seq"] = ledger.seq + 1
            atomic_write(self.path, self.keyring.seal(json.dumps(doc).encode(), dict(LEDGER_CONTEXT)))
            atomic_write(self.anchor_path, self.keyring.seal(json.dumps({"seq": doc["seq"]}).encode(), dict(ANCHOR_CONTEXT)))
            ledger.seq = doc["seq"]

    def reseal(self) -> None:
        """Re-encrypt the ledger and its anchor under the keyring's active data key (key rotation)."""
        if self.path.exists() or self.anchor_path.exists():
            self.save(self.load())  # load() refuses a missing or rolled-back ledger first

    def _read_ledger(self) -> PrivacyLedger:
        plain = self.keyring.unseal(self.path.read_bytes(), dict(LEDGER_CONTEXT), what=f"privacy ledger {self.path}")
        return PrivacyLedger.from_state_dict(json.loads(plain))

    def _read_anchor(self) -> int:
        if not self.anchor_path.exists():
            return 0
        plain = self.keyring.unseal(self.anchor_path.read_bytes(), dict(ANCHOR_CONTEXT), what=f"ledger anchor {self.anchor_path}")
        return int(json.loads(plain)["seq"])

    @contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self.path.with_name(f".{self.path.name}.lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(lock, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
