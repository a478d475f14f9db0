"""A shop's lifetime epsilon ledger: persisted encrypted, composed across rounds, runs and restarts."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedprice.errors import BudgetExhaustedError
from privacy.accounting import Step, epsilon, noise_for_budget
from privacy.keys import ShopKeyring, atomic_write

log = logging.getLogger(__name__)
LEDGER_CONTEXT = {"table": "epsilon_ledger", "schema": 1}
BUDGET_SLACK = 1e-6
DEFAULT_BUDGET = 3.0


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

    def epsilon(self) -> float:
        """Cumulative epsilon spent so far at the ledger's delta."""
        return epsilon(self.history, delta=self.delta)

    def epsilon_if(self, *, sigma: float, sample_rate: float, steps: int) -> float:
        """Cumulative epsilon after `steps` more steps at (sigma, q)."""
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
        """Adopt the accountant history after a round and log the round as an entry."""
        self.history = [(float(s), float(q), int(n)) for s, q, n in history]
        entry = LedgerEntry(
            run_id=run_id, server_round=server_round, sigma=sigma, sample_rate=sample_rate, steps=steps,
            epsilon_after=self.epsilon(), clipping_norm=clipping_norm, poisson_sampling=poisson_sampling,
            at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self.entries.append(entry)
        return entry

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

    def report(self) -> dict[str, Any]:
        """What a privacy reviewer asks for, for this shop."""
        eps = self.epsilon()
        return {
            "shop_id": self.shop_id,
            "epsilon": round(eps, 4),
            "delta": self.delta,
            "budget": self.budget,
            "budget_left": round(max(self.budget - eps, 0.0), 4),
            "unit_of_privacy": self.unit,
            "adjacency": self.adjacency,
            "accountant": f"{self.accountant} (Opacus RDPAccountant)",
            "poisson_sampling": all(e.poisson_sampling for e in self.entries) if self.entries else None,
            "rounds_trained": len(self.entries),
            "runs": sorted({e.run_id for e in self.entries}),
            "total_steps": sum(int(n) for _, _, n in self.history),
            "rounds": [asdict(e) for e in self.entries],
            "refusals": self.refusals,
            "not_covered": "metrics sent to the server (num-examples, loss, AUC) are not protected by DP",
            "multi_shop_customers": "a customer of several shops is protected separately by each; "
                                    "their losses add up (epsilon = sum over those shops)",
        }


class LedgerStore:
    """Loads and saves one shop's ledger, encrypted and authenticated with the shop's data key."""

    def __init__(self, path: Path, keyring: ShopKeyring) -> None:
        self.path = path
        self.keyring = keyring

    def exists(self) -> bool:
        """Whether the shop has a ledger yet."""
        return self.path.exists()

    def load(self, *, budget: float | None = None, delta: float | None = None) -> PrivacyLedger:
        """Load the ledger, or start an empty one if none exists (needs delta; budget defaults to 3).

        `budget` is the shop's own setting: only the shop changes it, never the federation's plan.
        """
        if not self.path.exists():
            if delta is None:
                raise FileNotFoundError(f"no privacy ledger at {self.path}")
            return PrivacyLedger(shop_id=self.keyring.shop_id, budget=DEFAULT_BUDGET if budget is None else budget,
                                 delta=delta)
        plain = self.keyring.unseal(self.path.read_bytes(), dict(LEDGER_CONTEXT), what=f"privacy ledger {self.path}")
        ledger = PrivacyLedger.from_state_dict(json.loads(plain))
        if budget is not None and not math.isclose(budget, ledger.budget):
            log.info("shop %s: epsilon budget changed %.3f -> %.3f", ledger.shop_id, ledger.budget, budget)
            ledger.budget = budget
        return ledger

    def save(self, ledger: PrivacyLedger) -> None:
        """Persist atomically (a crash leaves the previous ledger intact)."""
        blob = self.keyring.seal(json.dumps(ledger.state_dict()).encode(), dict(LEDGER_CONTEXT))
        atomic_write(self.path, blob)
