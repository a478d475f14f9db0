"""The numpy forward pass used for small requests gives the demand model's own (mu, s)."""

from __future__ import annotations

import numpy as np
import torch
from api_world import World
from torch import nn

from demand.model import DemandModel, predict
from demand.schema import N_FEATURES
from pricing_api.fast_forward import compile_forward


def _numpy_matches_torch(model: DemandModel, rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Compile the numpy forward, check it against torch on random rows, return its (mu, s)."""
    forward, engine = compile_forward(model, N_FEATURES)
    assert engine == "numpy"
    x = np.random.default_rng(seed).normal(size=(rows, N_FEATURES)).astype(np.float32)
    mu, s = forward(x)
    mu_t, s_t = predict(model, x)
    assert np.abs(mu - mu_t).max() < 1e-5 and np.abs(s - s_t).max() < 1e-5
    return mu, s


def test_numpy_forward_matches_torch_on_the_trained_model(world: World) -> None:
    model = DemandModel()
    model.load_state_dict(world.trained_state())
    _, s = _numpy_matches_torch(model, 37, seed=1)
    assert (s > 0).all()


def test_a_model_numpy_cannot_copy_keeps_torch() -> None:
    model = DemandModel()
    model.body[2] = nn.GELU()  # a layer the numpy path does not implement
    forward, engine = compile_forward(model, N_FEATURES)
    assert engine == "torch"
    x = np.zeros((2, N_FEATURES), np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x))[0].numpy()
    assert np.allclose(forward(x)[0], expected)


def test_a_model_whose_forward_changed_keeps_torch() -> None:
    class Shifted(DemandModel):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            mu, s = super().forward(x)
            return mu + 0.5, s

    model = Shifted()
    forward, engine = compile_forward(model, N_FEATURES)
    assert engine == "torch"
    x = np.zeros((1, N_FEATURES), np.float32)
    assert np.allclose(forward(x)[0], predict(model, x)[0])


def test_layer_norm_with_and_without_a_linear_layer_before_it_matches_torch() -> None:
    torch.manual_seed(3)
    model = DemandModel()
    model.body = nn.Sequential(nn.Linear(N_FEATURES, 64), nn.Tanh(), nn.LayerNorm(64), nn.ReLU(), nn.Linear(64, 64),
                               nn.LayerNorm(64), nn.Tanh())
    mu, s = _numpy_matches_torch(model, 50, seed=2)
    assert mu.dtype == s.dtype == np.float64
