"""Flow-matching math on hand-checkable cases."""

import math

import pytest
import torch

from hume.models import flow


def test_sample_time_range_and_beta_mean():
    g = torch.Generator().manual_seed(0)
    t = flow.sample_time(20000, generator=g)
    assert t.min() >= 0.001 and t.max() <= 1.0
    # Beta(1.5, 1) has mean 0.6; scaled: 0.001 + 0.999 * 0.6
    assert abs(t.mean().item() - (0.001 + 0.999 * 0.6)) < 0.01
    g2 = torch.Generator().manual_seed(0)
    assert torch.equal(t, flow.sample_time(20000, generator=g2))


def test_interpolate_endpoints_and_target():
    a = torch.tensor([[[1.0, 2.0]]])
    e = torch.tensor([[[3.0, -1.0]]])
    assert torch.allclose(flow.interpolate(a, e, torch.tensor([0.0])), a)
    assert torch.allclose(flow.interpolate(a, e, torch.tensor([1.0])), e)
    assert torch.allclose(flow.interpolate(a, e, torch.tensor([0.25])), torch.tensor([[[1.5, 1.25]]]))
    assert torch.allclose(flow.velocity_target(a, e), torch.tensor([[[2.0, -3.0]]]))


def test_euler_with_exact_velocity_recovers_data():
    a = torch.randn(4, 16, 7)
    e = torch.randn(4, 16, 7)
    x1 = flow.interpolate(a, e, torch.ones(4))
    out = flow.euler_integrate(lambda x, t: e - a, x1, 1.0, 0.0, 10)
    assert torch.allclose(out, a, atol=1e-5)


def test_euler_partial_and_per_sample_times():
    a = torch.zeros(2, 3, 1)
    e = torch.ones(2, 3, 1)
    x = flow.interpolate(a, e, torch.tensor([1.0, 0.9]))
    out = flow.euler_integrate(lambda x, t: e - a, x, torch.tensor([1.0, 0.9]), 0.1, 4)
    # constant velocity: the sample sits on the straight path at t = 0.1
    assert torch.allclose(out, torch.full_like(out, 0.1), atol=1e-6)


def test_euler_temperature_scales_velocity():
    x = torch.zeros(1, 1)
    out = flow.euler_integrate(lambda x, t: torch.ones_like(x), x, 1.0, 0.0, 5, temperature=0.5)
    assert torch.allclose(out, torch.tensor([[-0.5]]))


def test_euler_times_grid():
    assert flow.euler_times(1.0, 0.0, 4) == [1.0, 0.75, 0.5, 0.25, 0.0]
    with pytest.raises(ValueError):
        flow.euler_times(1.0, 0.0, 0)


def test_masked_loss_ignores_padded_steps():
    a = torch.zeros(1, 2, 3)
    e = torch.zeros(1, 2, 3)
    pred = torch.tensor([[[1.0, 1.0, 1.0], [100.0, 100.0, 100.0]]])
    assert flow.flow_matching_loss(pred, a, e, mask=torch.tensor([[1, 0]])).item() == pytest.approx(1.0)


def test_sinusoidal_embedding():
    emb = flow.sinusoidal_embedding(torch.tensor([0.0, 0.5]), 8)
    assert emb.shape == (2, 8)
    assert torch.allclose(emb[0, :4], torch.zeros(4)) and torch.allclose(emb[0, 4:], torch.ones(4))
    period = 4e-3
    assert emb[1, 0].item() == pytest.approx(math.sin(2 * math.pi * 0.5 / period), abs=1e-5)
    with pytest.raises(ValueError):
        flow.sinusoidal_embedding(torch.zeros(1), 7)
