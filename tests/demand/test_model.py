"""The demand model: demand falls with price for everyone, by construction; the loss is per customer."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from demand.model import DemandModel, buy_probability, customer_loss
from demand.schema import N_FEATURES


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), lo=st.floats(0.3, 2.0), step=st.floats(0.01, 1.0))
def test_probability_falls_with_price_for_any_weights_and_features(seed: int, lo: float, step: float) -> None:
    torch.manual_seed(seed)
    model = DemandModel()
    for p in model.parameters():  # any weights at all, not just the initial ones
        torch.nn.init.normal_(p, std=2.0)
    x = np.random.default_rng(seed).normal(size=(64, N_FEATURES)).astype(np.float32)
    p_lo = buy_probability(model, x, np.full(64, lo))
    p_hi = buy_probability(model, x, np.full(64, lo + step))
    assert np.all(p_hi <= p_lo)


def test_initial_model_predicts_a_low_base_rate() -> None:
    x = np.zeros((10, N_FEATURES), np.float32)
    p = buy_probability(DemandModel(), x, np.ones(10))
    assert np.allclose(p, 0.02, atol=0.01)


def test_padding_rows_do_not_count_and_loss_is_per_customer() -> None:
    model = DemandModel()
    x = torch.randn(3, 5, N_FEATURES)
    ratio = torch.ones(3, 5)
    y = torch.zeros(3, 5)
    w = torch.ones(3, 5)
    w[1, 2:] = 0.0
    base = customer_loss(model, x, ratio, y, w)
    x2 = x.clone()
    x2[1, 2:] = 1e3  # garbage in padding rows
    assert base.shape == (3,)
    assert torch.allclose(base, customer_loss(model, x2, ratio, y, w))
