"""Loss-threshold membership inference (Yeom et al., CSF 2018) as a privacy gate for DP-SGD.

The attacker scores each record by minus its loss under the released model: training members tend to
have lower loss. The attack's AUC (Mann-Whitney) is 0.5 when members and non-members look alike.
`overfit_experiment` trains a small, deliberately overfit regression MLP with or without DP-SGD
(sigma chosen by privacy.accounting for the target epsilon, Poisson sampling) and attacks it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from opacus import PrivacyEngine
from scipy.stats import rankdata
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from privacy.accounting import epsilon, noise_for_budget


def attack_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """P(score of a member > score of a non-member), ties counted half (Mann-Whitney U / n1 n2)."""
    n1, n0 = len(member_scores), len(nonmember_scores)
    ranks = rankdata(np.concatenate([member_scores, nonmember_scores]))
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def attack_advantage(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """Best TPR - FPR over all thresholds (the membership advantage)."""
    thresholds = np.unique(np.concatenate([member_scores, nonmember_scores]))
    tpr = (member_scores[None, :] >= thresholds[:, None]).mean(axis=1)
    fpr = (nonmember_scores[None, :] >= thresholds[:, None]).mean(axis=1)
    return float(np.max(tpr - fpr))


@dataclass(frozen=True)
class AttackResult:
    """One attacked model: attack strength, the model's fit, and its privacy."""

    auc: float
    advantage: float
    train_mse: float
    test_mse: float
    epsilon: float | None  # None: trained without DP
    sigma: float | None


Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _data(n: int, d: int, label_noise: float, gen: torch.Generator) -> Split:
    """Members (x, y) then non-members (x, y) of one noisy linear task."""
    w = torch.randn(d, generator=gen)
    x = torch.randn(2 * n, d, generator=gen)
    y = x @ w / d**0.5 + label_noise * torch.randn(2 * n, generator=gen)
    return x[:n], y[:n], x[n:], y[n:]


def overfit_experiment(
    *, target_epsilon: float | None, seed: int, n: int = 200, d: int = 40, hidden: int = 128, epochs: int = 100,
    batch_size: int = 50, lr: float = 0.003, label_noise: float = 2.0, clipping_norm: float = 1.0,
) -> AttackResult:
    """Train an MLP on n members (DP-SGD at `target_epsilon`, or plain if None) and attack it with n non-members."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small runs fastest on one thread, and results do not depend on it
    try:
        return _experiment(target_epsilon, seed, n, d, hidden, epochs, batch_size, lr, label_noise, clipping_norm)
    finally:
        torch.set_num_threads(threads)


def _experiment(target_epsilon: float | None, seed: int, n: int, d: int, hidden: int, epochs: int, batch_size: int,
                lr: float, label_noise: float, clipping_norm: float) -> AttackResult:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x_in, y_in, x_out, y_out = _data(n, d, label_noise, gen)
    model: nn.Module = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(x_in, y_in), batch_size=batch_size, shuffle=True, generator=gen)
    eps: float | None = None
    sigma: float | None = None
    engine: PrivacyEngine | None = None
    if target_epsilon is not None:
        delta = 1.0 / (10 * n)
        sigma = noise_for_budget(history=[], sample_rate=1.0 / len(loader), steps=epochs * len(loader), delta=delta,
                                 budget=target_epsilon)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(Secure RNG turned off|backward hook).*")
            engine = PrivacyEngine(accountant="rdp")
            model, optimizer, loader = engine.make_private(module=model, optimizer=optimizer, data_loader=loader,
                                                           noise_multiplier=sigma, max_grad_norm=clipping_norm,
                                                           poisson_sampling=True)
    model.train()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*backward hook.*")
        for _ in range(epochs):
            for xb, yb in loader:
                optimizer.zero_grad(set_to_none=True)
                err = model(xb).squeeze(-1) - yb
                # An empty Poisson batch still takes a (noise-only) step, so the accountant's step count holds.
                (err.pow(2).mean() if len(xb) else err.sum()).backward()
                optimizer.step()
    if engine is not None:
        eps = epsilon(engine.accountant.history, delta=1.0 / (10 * n))
    model.eval()
    with torch.no_grad():
        loss_in = ((model(x_in).squeeze(-1) - y_in) ** 2).numpy()
        loss_out = ((model(x_out).squeeze(-1) - y_out) ** 2).numpy()
    return AttackResult(auc=attack_auc(-loss_in, -loss_out), advantage=attack_advantage(-loss_in, -loss_out),
                        train_mse=float(loss_in.mean()), test_mse=float(loss_out.mean()), epsilon=eps, sigma=sigma)
