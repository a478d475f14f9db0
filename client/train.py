"""One federated round of local DP-SGD (Opacus) with the customer as the unit of privacy."""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass

import torch
from opacus import PrivacyEngine
from torch.utils.data import DataLoader

from demand.examples import CustomerExamples
from demand.model import DemandModel
from demand.training import examples_dataset, train_epoch
from privacy.ledger import PrivacyLedger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DPConfig:
    """Local training hyper-parameters (privacy arguments keyword-only at the call sites)."""

    local_epochs: int = 1
    batch_size: int = 64
    learning_rate: float = 0.01
    clipping_norm: float = 1.0


@dataclass(frozen=True)
class RoundResult:
    """What one local round produced: weights to share and figures to report."""

    state_dict: dict[str, torch.Tensor]
    num_examples: int
    train_loss: float
    epsilon: float
    delta: float
    sigma: float
    sample_rate: float
    steps: int


def train_round(
    model: DemandModel,
    examples: CustomerExamples,
    ledger: PrivacyLedger,
    *,
    run_id: str,
    server_round: int,
    rounds_total: int,
    config: DPConfig,
    seed: int,
    plan_target: float | None = None,
) -> RoundResult:
    """Train locally with DP-SGD, composing this round into the shop's lifetime ledger.

    Sigma is planned once per run so the run's rounds fit `plan_target` (the federation's epsilon
    target; default the shop's budget). Raises BudgetExhaustedError (and trains nothing) if the
    round would take the shop past its own budget.
    """
    torch.manual_seed(seed)
    dataset = examples_dataset(examples)
    loader = DataLoader(dataset, batch_size=config.batch_size)
    steps_per_epoch = len(loader)
    sample_rate = 1.0 / steps_per_epoch
    steps = steps_per_epoch * config.local_epochs
    sigma = ledger.plan(run_id=run_id, sample_rate=sample_rate, steps_per_round=steps,
                        rounds_left=rounds_total - server_round + 1, target=plan_target)
    ledger.check(sigma=sigma, sample_rate=sample_rate, steps=steps)

    model = copy.deepcopy(model)  # Opacus attaches hooks: never to the caller's model
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    with warnings.catch_warnings():
        # secure_mode=False: noise comes from torch's PRNG, not a CSPRNG (a documented limitation).
        warnings.filterwarnings("ignore", message=".*Secure RNG turned off.*")
        warnings.filterwarnings("ignore", message=".*(non-full|Full) backward hook.*")
        engine = PrivacyEngine(accountant="rdp")
        if ledger.history:
            engine.accountant.load_state_dict({"history": list(ledger.history), "mechanism": "rdp"})
        private_model, private_opt, private_loader = engine.make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=sigma,
            max_grad_norm=config.clipping_norm, poisson_sampling=True,
        )
        losses = [train_epoch(private_model, private_loader, private_opt) for _ in range(config.local_epochs)]
    ledger.record(run_id=run_id, server_round=server_round, history=list(engine.accountant.history), sigma=sigma,
                  sample_rate=sample_rate, steps=steps, clipping_norm=config.clipping_norm)
    state = {k: v.detach().clone() for k, v in private_model._module.state_dict().items()}
    return RoundResult(state_dict=state, num_examples=len(examples), train_loss=losses[-1], epsilon=ledger.epsilon(),
                       delta=ledger.delta, sigma=sigma, sample_rate=sample_rate, steps=steps)
