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


def test_euler_visits_the_equal_step_grid():
    seen = []
    flow.euler_integrate(
        lambda x, t: seen.append(float(t[0])) or torch.zeros_like(x), torch.zeros(1, 1), 1.0, 0.0, 4
    )
    assert seen == pytest.approx([1.0, 0.75, 0.5, 0.25])
    with pytest.raises(ValueError):
        flow.euler_integrate(lambda x, t: x, torch.zeros(1, 1), 1.0, 0.0, 0)


def test_fixed_step_counts_follow_the_authors_loop():
    """`while t >= stop - dt / 2: t += dt` in float32, dt = -0.1: starts 0.90..0.94 take 9 steps,
    0.96, 0.98 and 1.0 take 10 (0.98 ends at -0.02); stopping at 0.5 from 1.0 takes 5."""
    t0 = torch.tensor([0.9, 0.92, 0.94, 0.96, 0.98, 1.0])
    assert flow.fixed_step_counts(t0, -0.1, 0.0).tolist() == [9, 9, 9, 10, 10, 10]
    assert flow.fixed_step_counts(torch.tensor([1.0]), -0.1, 0.5).tolist() == [5]
    with pytest.raises(ValueError):
        flow.fixed_step_counts(t0, 0.1, 0.0)


def test_per_sample_steps_stop_each_sample_on_its_own():
    x = torch.zeros(2, 1)
    out = flow.euler_integrate_steps(
        lambda x, t: torch.ones_like(x), x, torch.ones(2), torch.tensor([-0.1, -0.2]), torch.tensor([3, 1])
    )
    assert torch.allclose(out, torch.tensor([[-0.3], [-0.2]]))


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
