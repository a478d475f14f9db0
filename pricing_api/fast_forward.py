"""The demand model's forward pass in numpy, for the small batches of a storefront request.

Torch's per-call overhead (~60 µs for a handful of rows) dominates a quote; numpy does the same maths in a
few µs. The layers are read from the loaded DemandModel itself, and `compile_forward` checks the result
against torch on probe inputs: a model this module does not understand keeps the torch path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from demand.model import MIN_SCALE, DemandModel

log = logging.getLogger(__name__)
Forward = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
TOLERANCE = 1e-4


def _layer(module: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    if isinstance(module, nn.Linear):
        w = module.weight.detach().double().numpy().T.copy()
        b = None if module.bias is None else module.bias.detach().double().numpy().copy()
        return (lambda h: h @ w) if b is None else (lambda h: h @ w + b)
    if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1:
        eps = float(module.eps)
        g = None if module.weight is None else module.weight.detach().double().numpy().copy()
        beta = None if module.bias is None else module.bias.detach().double().numpy().copy()

        def norm(h: np.ndarray) -> np.ndarray:
            centred = h - h.mean(axis=-1, keepdims=True)
            out = centred / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + eps)
            if g is not None:
                out = out * g
            return out + beta if beta is not None else out

        return norm
    if isinstance(module, nn.Tanh):
        return np.tanh
    if isinstance(module, nn.ReLU):
        return lambda h: np.maximum(h, 0.0)
    raise TypeError(f"no numpy version of {type(module).__name__}")


def torch_forward(model: DemandModel) -> Forward:
    """(mu, s) through torch itself."""

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            mu, scale = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        return mu.numpy().astype(np.float64), scale.numpy().astype(np.float64)

    return run


def numpy_forward(model: DemandModel) -> Forward:
    """(mu, s) computed in numpy from the model's own layers (raises TypeError for layers it does not know)."""
    layers = [_layer(m) for m in model.body] + [_layer(model.head)]

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.asarray(x, dtype=np.float64)
        for f in layers:
            h = f(h)
        return h[:, 0], np.logaddexp(0.0, h[:, 1]) + MIN_SCALE

    return run


def compile_forward(model: DemandModel, n_features: int) -> tuple[Forward, str]:
    """The fastest forward that matches torch on probe inputs, and its name ('numpy' or 'torch')."""
    slow = torch_forward(model)
    try:
        fast = numpy_forward(model)
    except (TypeError, AttributeError) as exc:
        log.info("model served through torch: %s", exc)
        return slow, "torch"
    probe = np.random.default_rng(0).normal(size=(64, n_features)) * 2.0
    probe[0] = 0.0
    mu_t, s_t = slow(probe)
    mu_n, s_n = fast(probe)
    err = max(float(np.abs(mu_t - mu_n).max()), float(np.abs(s_t - s_n).max()))
    if not err < TOLERANCE:
        log.warning("numpy forward differs from torch by %.3g; serving through torch", err)
        return slow, "torch"
    return fast, "numpy"
