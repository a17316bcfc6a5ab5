"""The control schedule on its own: alignment, refine cadence, chunks landing mid-plan, TTL, holds,
and System 1's state history (one state per tick, whatever happens)."""

import numpy as np
import pytest

from hume.policy.chunk import Chunk
from hume.policy.schedule import ControlSchedule, ScheduleConfig

CFG = ScheduleConfig(chunk_size=16, horizon=8, refine_every=4, history=2, action_dim=7)


def chunk(value: float, length: int = 16) -> Chunk:
    return Chunk(
        actions=np.full((length, 7), value, np.float32), noise_level=0.0, values=np.zeros(1), index=0
    )


def fake_refine(request, h=8):
    """Refined actions that say which chunk and which index they came from: value*100 + index."""
    base = request.chunk.actions[0, 0] * 100
    return np.stack([np.full(7, base + request.start + i, np.float32) for i in range(h)])


def run(
    schedule: ControlSchedule, ticks: int, arrivals: dict[int, tuple[float, int]], fail: set = frozenset()
):
    """Drive `ticks` ticks; arrivals {tick: (chunk value, observation tick)}; returns (action[0], kind)."""
    out = []
    for t in range(ticks):
        if t in arrivals:
            value, obs_tick = arrivals[t]
            schedule.land(chunk(value), obs_tick)
        request = schedule.begin(np.full(8, t, np.float32))
        refined = None if request is None or t in fail else fake_refine(request, schedule.cfg.horizon)
        action, kind = schedule.end(refined)
        out.append((float(action[0]), kind))
    return out


def test_holds_until_the_first_chunk_then_follows_it_aligned_to_its_observation():
    out = run(ControlSchedule(CFG), 8, {3: (1.0, 1)})  # computed on tick 1's observation, landed at 3
    assert [k for _, k in out[:3]] == ["hold"] * 3
    # At tick 3 the chunk is 2 steps old: System 1 refines from index 2 and acts on it.
    assert out[3] == (102.0, "refined")
    assert out[4:] == [(103.0, "plan"), (104.0, "plan"), (105.0, "plan"), (106.0, "refined")]


def test_refines_every_refine_every_ticks_and_near_the_end_reads_the_last_h_actions():
    out = run(ControlSchedule(CFG), 16, {0: (1.0, 0)})
    refined = [t for t, (_, kind) in enumerate(out) if kind == "refined"]
    assert refined == [0, 4, 8, 12]
    # At tick 12 fewer than h actions are left: the slice is the chunk's last 8 (start 8), skip 4.
    assert [a for a, _ in out[12:16]] == [112.0, 113.0, 114.0, 115.0]


def test_a_chunk_landing_mid_plan_is_taken_up_at_the_next_refinement():
    out = run(ControlSchedule(CFG), 6, {0: (1.0, 0), 2: (2.0, 1)})
    assert out[2:4] == [(102.0, "plan"), (103.0, "plan")], "the current plan goes on"
    assert out[4] == (203.0, "refined")  # the new chunk answers tick 1: index 3 at tick 4
    # A plan that ran out is refined from the newest chunk at once.
    short = run(ControlSchedule(ScheduleConfig(16, 2, 4, 2, 7)), 4, {0: (1.0, 0), 1: (2.0, 1)})
    assert short[2] == (201.0, "refined")


def test_an_older_chunk_never_replaces_a_newer_one():
    schedule = ControlSchedule(CFG)
    assert schedule.land(chunk(1.0), 5)
    assert not schedule.land(chunk(2.0), 4)


def test_ttl_and_chunk_end_hold_the_robot_with_the_last_gripper_command():
    out = run(ControlSchedule(ScheduleConfig(16, 8, 4, 2, 7, ttl=6)), 9, {0: (1.0, 0)})
    assert [k for _, k in out[6:]] == ["hold"] * 3
    schedule = ControlSchedule(CFG)
    schedule.land(chunk(0.5), 0)
    for _ in range(16):
        action, _ = schedule.end(fake_refine(r) if (r := schedule.begin(np.zeros(8))) else None)
    assert schedule.begin(np.zeros(8)) is None
    action, kind = schedule.end()
    assert kind == "hold" and action[:6].tolist() == [0.0] * 6 and action[6] == pytest.approx(65.0)


def test_a_failed_refine_continues_the_still_valid_plan_and_leaves_the_history_as_it_was():
    ok, failed = ControlSchedule(CFG), ControlSchedule(CFG)
    a = run(ok, 6, {0: (1.0, 0)})
    b = run(failed, 6, {0: (1.0, 0)}, fail={4})
    # Not an abrupt hold: the plan made at tick 0 (8 actions) goes on; the next tick asks again.
    assert b[4] == (104.0, "plan") and b[5] == (105.0, "refined")
    assert failed.failed_refinements == 1 and ok.failed_refinements == 0
    assert a[:4] == b[:4]
    np.testing.assert_array_equal(ok.history(), failed.history())
    np.testing.assert_array_equal(failed.history()[:, 0], [4.0, 5.0])  # one state per tick
    # Failing until the plan runs out: then, and only then, the robot holds.
    held = run(ControlSchedule(CFG), 10, {0: (1.0, 0)}, fail=set(range(4, 10)))
    assert [k for _, k in held[4:]] == ["plan"] * 4 + ["hold"] * 2


def run_ahead(schedule: ControlSchedule, ticks: int, arrivals: dict, answer_at: dict | None = None):
    """As run(), but each refinement's answer comes back `answer_at[tick]` ticks after its request
    (default: the next tick), as from the System-1 node's worker."""
    out, flight = [], []
    for t in range(ticks):
        for _, request, actions in [f for f in flight if f[0] <= t]:
            schedule.land_plan(request, actions)
        flight = [f for f in flight if f[0] > t]
        if t in arrivals:
            schedule.land(chunk(arrivals[t][0]), arrivals[t][1])
        request = schedule.begin(np.full(8, t, np.float32))
        if request is not None:
            delay = (answer_at or {}).get(t, 1)
            flight.append((t + delay, request, fake_refine(request, schedule.cfg.horizon)))
        action, kind = schedule.end()
        out.append((float(action[0]), kind, schedule.observation_age))
    return out


def test_refining_ahead_lands_each_plan_lead_ticks_after_its_observation_aligned_by_tick():
    ahead = ControlSchedule(ScheduleConfig(16, 8, 4, 2, 7, lead=1))
    out = run_ahead(ahead, 12, {0: (1.0, 0)})
    # Tick 0 asks; its plan (row i for tick i) takes over at tick 1; each successor is asked 4
    # ticks after its predecessor and takes over one tick later: plans of 4 ticks, as in the tick.
    assert [k for _, k, _ in out] == ["hold"] + (["refined"] + ["plan"] * 3) * 2 + ["refined", "plan", "plan"]
    assert [a for a, _, _ in out[1:6]] == [101.0, 102.0, 103.0, 104.0, 105.0]
    assert [age for _, _, age in out[1:]] == [1, 2, 3, 4] * 2 + [1, 2, 3]
    # An answer that comes back late: the still-valid plan goes on until it does.
    late = run_ahead(ControlSchedule(ScheduleConfig(16, 8, 4, 2, 7, lead=1)), 9, {0: (1.0, 0)}, {4: 3})
    assert [k for _, k, _ in late[4:9]] == ["plan", "plan", "plan", "refined", "plan"]
    assert [a for a, _, _ in late[4:9]] == [104.0, 105.0, 106.0, 107.0, 108.0]
    assert [age for _, _, age in late[4:9]] == [4, 5, 6, 3, 4]
    # A plan that would run out before its successor takes over is replaced in time: h = 2.
    short = run_ahead(ControlSchedule(ScheduleConfig(16, 2, 4, 2, 7, lead=1)), 6, {0: (1.0, 0)})
    assert [k for _, k, _ in short[1:]] == ["refined"] * 5


def test_a_failed_refinement_ahead_of_the_tick_continues_the_plan():
    schedule = ControlSchedule(ScheduleConfig(16, 8, 4, 2, 7, lead=1))
    out = []
    for t in range(8):
        if t == 0:
            schedule.land(chunk(1.0), 0)
        if schedule.in_flight is not None and t > 0:
            request = schedule.in_flight
            schedule.land_plan(request, None if request.tick == 4 else fake_refine(request))
        schedule.begin(np.zeros(8))
        out.append(schedule.end())
    kinds = [k for _, k in out]
    # Asked at 4, failed (known at 5): the plan goes on at 5, asked again at 5, new at 6.
    assert kinds == ["hold", "refined", "plan", "plan", "plan", "plan", "refined", "plan"]
    assert schedule.failed_refinements == 1


def test_history_repeats_the_first_state_at_an_episode_start():
    schedule = ControlSchedule(ScheduleConfig(16, 8, 4, history=3, action_dim=7))
    schedule.begin(np.arange(8, dtype=np.float32))
    assert schedule.history().shape == (3, 8)
    assert (schedule.history() == np.arange(8)).all()
    schedule.reset()
    assert schedule.tick == -1 and schedule.chunk is None


def test_a_four_dim_robot_holds_and_commits_at_its_own_width():
    """Meta-World's [dx, dy, dz, gripper]: the hold action and the committed actions take the
    robot's width, not LIBERO's 7."""
    schedule = ControlSchedule(ScheduleConfig(16, 8, 4, 2, 4))
    action, kind = schedule.end(schedule.begin(np.zeros(4)))
    assert kind == "hold" and action.tolist() == [0.0, 0.0, 0.0, -1.0]
    assert schedule.committed(lambda c: c.actions, 1).shape == (0, 4)
    schedule.land(
        Chunk(actions=np.full((16, 4), 0.5, np.float32), noise_level=0.0, values=np.zeros(1), index=0), 1
    )
    request = schedule.begin(np.zeros(4))
    action, kind = schedule.end(np.full((8, 4), 0.25, np.float32))
    assert kind == "refined" and action.shape == (4,)
    assert schedule.committed(lambda c: c.actions, 2).shape[1] == 4 and request.continues.shape == (0, 4)


def test_a_blended_switch_cross_fades_the_arm_from_the_replaced_plan_and_switches_the_gripper():
    schedule = ControlSchedule(ScheduleConfig(16, 8, 4, 2, 7, blend=3))
    run(schedule, 5, {0: (1.0, 0), 2: (2.0, 1)})
    # What a think continues is what the robot will execute: the blended rows.
    assert schedule.committed(lambda c: c.actions, 5)[:2, 0].tolist() == [154.5, 180.25]
    run(schedule, 4, {})  # ticks 5..8
    actions = np.stack([action for action, _, _ in schedule.executed])
    # The first plan (tick 0) has nothing to blend from. At tick 4 the plan from chunk 2 (index 3
    # for tick 4) takes over from the first plan's rows 104, 105, 106 over three ticks.
    assert actions[:4, 0].tolist() == [100.0, 101.0, 102.0, 103.0]
    assert actions[4:8, 0].tolist() == [0.75 * 104 + 0.25 * 203, 154.5, 180.25, 206.0]
    assert actions[4:8, -1].tolist() == [203.0, 204.0, 205.0, 206.0], "the gripper switches at once"
    # The next switch (tick 8, same chunk) blends too: from the blended plan's own row for tick 8.
    assert actions[8, 0] == 0.75 * 207 + 0.25 * 207
    at_switch, within, _ = schedule.switch_changes()
    plain = ControlSchedule(CFG)
    run(plain, 9, {0: (1.0, 0), 2: (2.0, 1)})
    assert at_switch.max() < plain.switch_changes()[0].max() / 3


def test_no_blend_after_a_hold():
    schedule = ControlSchedule(ScheduleConfig(16, 8, 4, 2, 7, ttl=6, blend=3))
    out = run(schedule, 12, {0: (1.0, 0), 8: (2.0, 8)})
    # The first chunk runs out at tick 6 (ttl): hold; the next plan starts at its own actions.
    assert [k for _, k in out[6:8]] == ["hold", "hold"]
    assert out[8] == (200.0, "refined") and out[9] == (201.0, "plan")


@pytest.mark.parametrize(
    "cfg", [CFG, ScheduleConfig(16, 8, 4, 2, 7, ttl=6), ScheduleConfig(16, 2, 4, 2, 7, blend=1)], ids=str
)
def test_requests_next_foretells_begin_and_changes_nothing(cfg):
    schedule = ControlSchedule(cfg)
    arrivals = {0: (1.0, 0), 5: (2.0, 5), 9: (3.0, 8), 20: (4.0, 20)}
    out, requested = [], []
    for t in range(30):
        if t in arrivals:
            schedule.land(chunk(arrivals[t][0]), arrivals[t][1])
        foretold = schedule.requests_next()
        request = schedule.begin(np.full(8, t, np.float32))
        assert foretold == (request is not None), t
        requested.append(foretold)
        action, kind = schedule.end(None if request is None else fake_refine(request, cfg.horizon))
        out.append((float(action[0]), kind))
    assert 0 < sum(requested) < 30
    # Probing changed nothing: the same actions and histories as a schedule never probed.
    plain = ControlSchedule(cfg)
    assert run(plain, 30, arrivals) == out
    np.testing.assert_array_equal(plain.history(), schedule.history())
