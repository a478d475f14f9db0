"""The demand model's forward pass in numpy, for the small batches of a storefront request.

Torch's per-call overhead (~60 µs for a handful of rows) dominates a quote; numpy does the same maths in a
few µs: each layer in place on the array its matrix product made, a LayerNorm's centring folded into the
linear layer before it. In float64: float32 products (faster) vary in the last bits with the number of rows,
so a quote's probability could depend on which other quotes share its batch. The layers are read from the
loaded DemandModel itself, and `compile_forward` checks the result against torch on probe inputs: a model
this module does not understand keeps the torch path.
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


Step = Callable[[np.ndarray], np.ndarray]


def _weights(layer: nn.Linear, *, centre: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(W^T, b) in float64; `centre` subtracts each row's mean over the outputs (the next LayerNorm's centring)."""
    w = layer.weight.detach().double().numpy().T.copy()
    b = None if layer.bias is None else layer.bias.detach().double().numpy().copy()
    if centre:  # mean over outputs of x @ w + b is x @ mean(w) + mean(b): centring folds into the weights
        w -= w.mean(axis=1, keepdims=True)
        b = None if b is None else b - b.mean()
    return w, b


def _linear(layer: nn.Linear, *, centre: bool) -> Step:
    w, b = _weights(layer, centre=centre)

    def run(h: np.ndarray) -> np.ndarray:
        out = h @ w  # a fresh array: the steps after it work in place
        if b is not None:
            out += b
        return out

    return run


def _norm(module: nn.LayerNorm, *, centred: bool) -> Step:
    """LayerNorm in place on an array of its own (`centred`: the linear layer before it already centred it)."""
    eps = float(module.eps)
    g = None if module.weight is None else module.weight.detach().double().numpy().copy()
    beta = None if module.bias is None else module.bias.detach().double().numpy().copy()

    def run(h: np.ndarray) -> np.ndarray:
        if not centred:
            h = h - h.mean(axis=-1, keepdims=True)
        var = np.einsum("ij,ij->i", h, h)
        var /= h.shape[-1]
        var += eps
        np.sqrt(var, out=var)
        h /= var[:, None]
        if g is not None:
            h *= g
        if beta is not None:
            h += beta
        return h

    return run


def _tanh(h: np.ndarray) -> np.ndarray:
    return np.tanh(h, out=h)


def _relu(h: np.ndarray) -> np.ndarray:
    return np.maximum(h, 0.0, out=h)


def _steps(modules: list[nn.Module]) -> list[Step]:
    """One in-place numpy step per layer (raises TypeError for a layer it does not know)."""
    steps: list[Step] = []
    for i, module in enumerate(modules):
        before, after = modules[i - 1] if i else None, modules[i + 1] if i + 1 < len(modules) else None
        if isinstance(module, nn.Linear):
            steps.append(_linear(module, centre=isinstance(after, nn.LayerNorm) and len(after.normalized_shape) == 1))
        elif isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1:
            steps.append(_norm(module, centred=isinstance(before, nn.Linear)))
        elif isinstance(module, nn.Tanh):
            steps.append(_tanh)
        elif isinstance(module, nn.ReLU):
            steps.append(_relu)
        else:
            raise TypeError(f"no numpy version of {type(module).__name__}")
    if not steps or not isinstance(modules[0], nn.Linear):  # the in-place steps need a fresh array first
        steps.insert(0, lambda h: np.array(h, dtype=np.float64))
    return steps


def torch_forward(model: DemandModel) -> Forward:
    """(mu, s) through torch itself."""

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            mu, scale = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        return mu.numpy().astype(np.float64), scale.numpy().astype(np.float64)

    return run


def numpy_forward(model: DemandModel) -> Forward:
    """(mu, s) computed in numpy from the model's own layers (raises TypeError for layers it does not know)."""
    steps = _steps([*model.body, model.head])

    def run(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.asarray(x, dtype=np.float64)
        for step in steps:
            h = step(h)
        scale = np.logaddexp(0.0, h[:, 1])
        scale += MIN_SCALE
        return h[:, 0], scale

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
