"""Smooth chunk switches: real-time chunking's weights and guided velocity (hand-checked), the
committed actions the schedule reports, the delay estimate, and the switch metric."""

import math

import numpy as np
import pytest
import torch

from hume.models import flow
from hume.policy.chunk import Chunk
from hume.policy.delay import DelayEstimator, steps_for
from hume.policy.schedule import ControlSchedule, ScheduleConfig
from hume.policy.switches import action_changes, episode_record, pooled_summary, switch_summary


def test_prefix_weights_freeze_the_delay_then_decay_over_the_committed_steps():
    w = flow.prefix_weights(horizon=10, delay=3, overlap=7).tolist()
    assert w[:3] == [1.0, 1.0, 1.0]
    c = [(7 - i) / (7 - 3 + 1) for i in range(3, 7)]
    assert w[3:7] == pytest.approx([ci * math.expm1(ci) / math.expm1(1) for ci in c], rel=1e-6)
    assert all(a > b for a, b in zip(w[3:7], w[4:7], strict=False)) and w[3] < 1.0
    assert w[7:] == [0.0, 0.0, 0.0]
    # Nothing committed beyond the chunk or beyond what is there: never weight what is missing.
    assert flow.prefix_weights(4, delay=6, overlap=2).tolist() == [1.0, 1.0, 0.0, 0.0]
    assert flow.prefix_weights(4, delay=0, overlap=0).tolist() == [0.0] * 4


def test_guided_velocity_matches_the_formula_for_a_field_with_identity_jacobian():
    c = torch.tensor([[0.5, -1.0, 2.0]])

    def velocity(x, t):
        return c.expand_as(x) + 0.0 * x  # constant: the clean estimate x - t c has Jacobian I

    x = torch.tensor([[1.0, 2.0, 3.0]])
    target = torch.tensor([[0.0, 1.0, -1.0]])
    weights = torch.tensor([[1.0, 0.5, 0.0]])
    for t, gain in ((0.4, (0.6**2 + 0.4**2) / (0.4 * 0.6)), (0.98, 5.0)):  # the gain caps at 5
        tt = torch.tensor([t])
        guided = flow.guided_velocity(velocity, target, weights, max_guidance=5.0)(x, tt)
        expected = c - gain * weights * (target - (x - t * c))
        torch.testing.assert_close(guided, expected)


def test_guided_sampling_lands_on_the_target_where_it_is_weighted():
    """The exact field of data a ~ N(0, 1): guided, the weighted steps end near the target."""
    torch.manual_seed(0)
    noise = torch.randn(4, 6, 2)

    def velocity(x, t):
        t = t[:, None, None]
        clean = (1 - t) / ((1 - t) ** 2 + t**2) * x  # E[a | x_t]
        return (x - clean) / t

    target = torch.full((4, 6, 2), 0.7)
    weights = flow.prefix_weights(6, delay=2, overlap=4)[None, :, None].expand(4, 6, 2)
    steps = torch.full((4,), 10)
    t0, dt = torch.ones(4), torch.full((4,), -0.1)
    free = flow.euler_integrate_steps(velocity, noise, t0 - 1e-3, dt, steps)
    guided = flow.euler_integrate_steps(
        flow.guided_velocity(velocity, target, weights, 5.0), noise, t0 - 1e-3, dt, steps
    )
    assert (guided[:, :2] - 0.7).abs().max() < 0.1 < 0.5 < (free[:, :2] - 0.7).abs().mean()
    torch.testing.assert_close(guided[:, 4:], free[:, 4:])  # weight 0: untouched


def chunk(value: float, length: int = 16) -> Chunk:
    return Chunk(
        actions=np.full((length, 7), value, np.float32), noise_level=0.0, values=np.zeros(1), index=0
    )


def plan_of(request):
    return np.stack([np.full(7, 100 + request.start + i, np.float32) for i in range(8)])


def test_committed_is_the_plan_up_to_its_next_refinement_then_the_newest_chunk():
    schedule = ControlSchedule(ScheduleConfig(16, horizon=8, refine_every=4, history=1, action_dim=7, ttl=12))

    def to_robot(c):
        return c.actions * 10

    assert len(schedule.committed(to_robot, 0)) == 0, "nothing before the first chunk"
    schedule.land(chunk(1.0), 0)
    for _ in range(2):  # ticks 0 and 1; the plan was made at tick 0
        schedule.end(plan_of(r) if (r := schedule.begin(np.zeros(8))) else None)
    # From tick 1 (this tick) or 2 (the next): the plan's actions up to 3 (it is refined again at
    # tick 4), then the chunk's indices 4 .. 11 (its TTL is 12 steps).
    assert schedule.committed(to_robot, 1)[:, 0].tolist() == [101.0, 102.0, 103.0] + [10.0] * 8
    assert schedule.committed(to_robot, 2)[:, 0].tolist() == [102.0, 103.0] + [10.0] * 8
    schedule.land(chunk(2.0), 1)  # a newer chunk: what follows the plan comes from it
    assert schedule.committed(to_robot, 2)[:, 0].tolist() == [102.0, 103.0] + [20.0] * 9
    assert len(schedule.committed(to_robot, 20)) == 0, "past the chunk's validity"


def test_delay_estimate_is_the_largest_recent_delay_in_steps():
    assert steps_for(208.0, 20.0) == 5 and steps_for(50.0, 20.0) == 1 and steps_for(0.0, 20.0) == 0
    d = DelayEstimator(window=3)
    assert d.steps == 0
    for steps in (4, 7, 5, 5, 5):
        d.add(steps)
    assert d.steps == 5, "the 7 left the window"
    d.reset()
    assert d.steps == 0


def test_action_changes_split_switch_ticks_from_within_plan_ticks_and_skip_holds():
    actions = np.array(
        [[0, 0, 0], [3, 4, 1], [3, 4, -1], [3, 5, -1], [0, 0, 0], [1, 0, 0]], np.float32
    )  # last column: the gripper, ignored
    switch = np.array([1, 1, 0, 0, 0, 1], bool)
    hold = np.array([0, 0, 0, 0, 1, 0], bool)
    at_switch, within = action_changes(actions, switch, hold)
    assert at_switch.tolist() == [5.0]  # tick 5 follows a hold: left out
    assert within.tolist() == [0.0, 1.0]
    summary = switch_summary(at_switch, within)
    assert summary["action_change_switch"]["p90"] == 5.0
    assert summary["switch_ratio_p90"] == pytest.approx(5.0 / 0.9, abs=1e-4)
    rows = [episode_record(at_switch, within), episode_record([1.0], [1.0]), {"success": True}]
    assert pooled_summary(rows)["switch_ticks"] == 2 and pooled_summary([{}]) is None


def test_the_schedule_tells_chunk_switches_from_refinements_of_the_same_chunk():
    schedule = ControlSchedule(
        ScheduleConfig(chunk_size=16, horizon=8, refine_every=4, history=1, action_dim=7)
    )
    schedule.land(chunk(1.0), 0)
    flags = []
    for tick in range(10):
        if tick == 2:
            schedule.land(chunk(2.0), 1)  # taken up at the refinement of tick 4
        schedule.end(plan_of(r) if (r := schedule.begin(np.zeros(8))) else None)
        flags.append((schedule.executed[-1][1], schedule.chunk_switch))
    assert [t for t, (kind, _) in enumerate(flags) if kind == "refined"] == [0, 4, 8]
    assert [t for t, (_, new) in enumerate(flags) if new] == [0, 4]
    at_switch, within, at_chunk_switch = schedule.switch_changes()
    assert (len(at_switch), len(within), len(at_chunk_switch)) == (2, 7, 1)
