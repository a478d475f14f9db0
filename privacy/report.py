"""What a privacy reviewer asks for: per-shop (epsilon, delta) with unit, adjacency, accountant, sampling,
what is not covered, known limitations, and what a customer of several shops spends."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from privacy.ledger import PrivacyLedger

UNIT = "one customer of one shop (one training example = all of that customer's offer rows in the shop)"
ACCOUNTANT = "RDP (Opacus RDPAccountant), composed over every DP-SGD step of every round and run in the ledger"
NOT_COVERED = (
    "metrics each shop sends to the server (num-examples, train loss, epsilon, held-out log-loss/AUC/calibration) "
    "are released without DP",
    "tuning runs and experiments are covered only if they trained through this shop's ledger",
    "the feature store holds each customer's exact serving features (encrypted at rest, keyed by pseudonym): "
    "DP covers the model, not those features",
)
LIMITATIONS = (
    "Opacus secure_mode=False: DP noise is drawn from torch's PRNG, not a CSPRNG (torchcsprng does not support "
    "torch 2.13), so floating-point attacks on the Gaussian sampler are not mitigated",
    "the ledger and its rollback anchor live on the shop's own storage: whoever controls that storage and the shop's "
    "keys can roll both back together; back them up and restrict access",
)


def sampling_statement(ledger: PrivacyLedger) -> tuple[bool | None, str]:
    """Whether every recorded round really used Poisson sampling, and a sentence saying so."""
    if not ledger.entries:
        return None, "no training rounds recorded yet"
    if all(e.poisson_sampling for e in ledger.entries):
        return True, "Poisson sampling (Opacus DPDataLoader) in every recorded round: the accountant's assumption holds"
    bad = sum(1 for e in ledger.entries if not e.poisson_sampling)
    return False, f"{bad} round(s) did NOT use Poisson sampling: the reported epsilon does not strictly hold for them"


def multi_shop_statement(epsilon: float, delta: float) -> str:
    """How this shop's spending combines with other shops' for one person who shops at several."""
    if not math.isfinite(epsilon):
        return "this shop released updates without DP: its customers have no epsilon guarantee, whatever other shops spend"
    return (f"a person who is a customer of several shops is protected by each shop separately and the losses add up: "
            f"this shop contributes epsilon={epsilon:.3f}, delta={delta:.1e}; with k shops, epsilon <= the sum of "
            f"their epsilons (pseudonym keys are per shop, so no cross-shop per-person cap is possible)")


def _finite(x: float, digits: int = 4) -> float | None:
    """A JSON-safe number: None stands for infinity (no DP guarantee)."""
    return round(x, digits) if math.isfinite(x) else None


def shop_report(ledger: PrivacyLedger) -> dict[str, Any]:
    """The reviewer's report for one shop's ledger (epsilon None: rounds were trained without DP)."""
    eps = ledger.epsilon()
    poisson, sampling = sampling_statement(ledger)
    sigmas = sorted({round(e.sigma, 4) for e in ledger.entries})
    return {
        "shop_id": ledger.shop_id,
        "epsilon": _finite(eps),
        "dp_guarantee": math.isfinite(eps),
        "unprotected_rounds": ledger.unprotected,
        "delta": ledger.delta,
        "budget": ledger.budget,
        "budget_left": round(max(ledger.budget - eps, 0.0), 4) if math.isfinite(eps) else 0.0,
        "unit_of_privacy": UNIT if ledger.unit == "customer" else ledger.unit,
        "adjacency": ledger.adjacency,
        "accountant": ACCOUNTANT if ledger.accountant == "rdp" else ledger.accountant,
        "poisson_sampling": poisson,
        "sampling": sampling,
        "noise_multipliers": sigmas,
        "sample_rates": sorted({round(e.sample_rate, 6) for e in ledger.entries}),
        "clipping_norms": sorted({e.clipping_norm for e in ledger.entries}),
        "rounds_trained": len(ledger.entries),
        "runs": sorted({e.run_id for e in ledger.entries}),
        "total_steps": sum(int(n) for _, _, n in ledger.history),
        "rounds": [asdict(e) for e in ledger.entries],
        "refusals": ledger.refusals,
        "not_covered": list(NOT_COVERED),
        "limitations": list(LIMITATIONS),
        "multi_shop_customers": multi_shop_statement(eps, ledger.delta),
    }


def federation_summary(ledgers: Sequence[PrivacyLedger]) -> dict[str, Any]:
    """Across shops: the guarantee for a customer of one shop, and for a customer of all of them."""
    eps = {lg.shop_id: lg.epsilon() for lg in ledgers}
    return {
        "shops": sorted(eps),
        "customer_of_one_shop": {"epsilon_max": _finite(max(eps.values(), default=0.0)),
                                 "delta_max": max((lg.delta for lg in ledgers), default=0.0)},
        "customer_of_all_shops": {"epsilon": _finite(sum(eps.values())),
                                  "delta": sum(lg.delta for lg in ledgers)},
        "note": "basic composition: a customer of several shops is covered at the sum of those shops' epsilon and delta",
    }
