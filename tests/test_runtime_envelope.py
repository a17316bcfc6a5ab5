"""The action envelope (bounds, rate limit, gripper range, clamp or hold, non-finite actions), the
chunk and observation checks against the receiving policy, and rate-limited log lines."""

import logging

import numpy as np
import pytest

from hume.config import ConfigError
from hume.runtime.config import EnvelopeConfig
from hume.runtime.envelope import CLAMPED, HELD, NONFINITE, RATE_LIMITED, WORKSPACE, Envelope, resolve
from hume.runtime.policy_spec import MAX_ABS_ACTION, PolicySpec
from hume.runtime.protocol import MessageError
from hume.runtime.ratelog import RateLimitedLog

LIMITS = {"low": [-1.0] * 6, "high": [1.0] * 6, "max_delta": [0.5] * 6, "gripper": [-1.0, 1.0]}


class Adapter:
    def __init__(self, **envelope):
        self.envelope = envelope

    def action_envelope(self):
        return self.envelope


def envelope(mode="clamp", **over) -> Envelope:
    return Envelope(resolve(EnvelopeConfig(**over), Adapter(**LIMITS)), mode)


def inside(env: Envelope, a: np.ndarray) -> bool:
    lim = env.limits
    return bool(
        (a[:-1] >= lim.low).all() and (a[:-1] <= lim.high).all() and lim.gripper[0] <= a[-1] <= lim.gripper[1]
    )


def test_huge_actions_are_clamped_and_ramped_and_counted():
    env = envelope()
    sent, bits = env.apply(np.full(7, 1e6, np.float32))
    # From rest, at most max_delta this tick; the gripper (a command, not a motion) clamped only.
    np.testing.assert_array_equal(sent, [0.5] * 6 + [1.0])
    assert bits == CLAMPED | RATE_LIMITED
    sent, _ = env.apply(np.full(7, 1e6, np.float32))
    np.testing.assert_array_equal(sent, [1.0] * 6 + [1.0])
    sent, bits = env.apply(np.array([0.9] * 6 + [1.16], np.float32))  # the gripper of a real run
    assert sent[-1] == 1.0 and bits == CLAMPED
    assert env.counts == {"clamped": 3, "rate_limited": 1}


def test_non_finite_or_misshapen_actions_never_pass():
    env = envelope()
    env.apply(np.array([0.2] * 6 + [1.0], np.float32))
    for bad in (np.array([np.nan] * 7), np.array([0.1] * 6 + [np.inf]), np.zeros(8)):
        sent, bits = env.apply(bad)
        assert bits == NONFINITE | HELD and inside(env, sent)
        np.testing.assert_array_equal(sent, [0.0] * 6 + [1.0])  # hold: still, gripper as last sent
    assert env.counts["nonfinite"] == 3


def test_hold_mode_holds_on_out_of_bounds_but_ramps_rate():
    env = envelope("hold")
    sent, bits = env.apply(np.array([0.4] * 6 + [-1.0], np.float32))
    assert bits == 0 and sent[0] == pytest.approx(0.4)
    sent, bits = env.apply(np.array([2.0] + [0.4] * 5 + [-1.0], np.float32))
    assert bits == CLAMPED | HELD and (sent[:6] == 0).all() and sent[6] == -1.0
    sent, bits = env.apply(np.array([0.9] * 6 + [-1.0], np.float32))  # from the hold: ramp, not hold
    assert bits == RATE_LIMITED and sent[0] == pytest.approx(0.5)
    assert env.counts == {"clamped": 1, "held": 1, "rate_limited": 1}


def test_the_hold_lies_inside_the_envelope_whatever_was_asked_before():
    env = envelope(gripper=[0.0, 0.8])  # a robot whose gripper command is 0..0.8
    assert inside(env, env.hold()) and env.hold()[-1] == 0.0  # "open" (-1) clamped into range
    env.apply(np.array([0.0] * 6 + [1.16], np.float32))
    held = env.hold()
    assert inside(env, held) and held[-1] == pytest.approx(0.8)
    env.reset()
    assert env.last[-1] == 0.0 and (env.last[:6] == 0).all()


def test_random_actions_always_come_out_inside():
    env = envelope()
    rng = np.random.default_rng(0)
    last = env.last.copy()
    for _ in range(2000):
        a = rng.normal(0, 3, 7).astype(np.float32)
        if rng.random() < 0.05:
            a[rng.integers(7)] = rng.choice([np.nan, np.inf, -np.inf, 1e30])
        sent, _ = env.apply(a)
        assert inside(env, sent) and np.isfinite(sent).all()
        assert (np.abs(sent[:6] - last[:6]) <= env.limits.max_delta + 1e-6).all() or (sent[:6] == 0).all()
        last = sent


def test_config_overrides_the_adapter_and_bad_envelopes_are_refused():
    env = envelope(max_delta=[2.0] * 6)
    assert env.limits.max_delta.tolist() == [2.0] * 6 and env.limits.low.tolist() == [-1.0] * 6
    with pytest.raises(ConfigError, match="robot.envelope.gripper"):
        resolve(EnvelopeConfig(), Adapter(low=[-1] * 6, high=[1] * 6, max_delta=[1] * 6))
    with pytest.raises(ConfigError, match="robot.envelope.low"):
        resolve(EnvelopeConfig(), object())  # a plug-in robot without an envelope
    bad = [
        dict(low=[0.1] * 6),  # the hold (zero) outside
        dict(high=[1.0] * 5),  # lengths differ
        dict(max_delta=[0.0] * 6),
        dict(gripper=[1.0, -1.0]),
        dict(low=[float("-inf")] * 6),
    ]
    for over in bad:
        with pytest.raises(ConfigError, match="robot.envelope"):
            resolve(EnvelopeConfig(**over), Adapter(**LIMITS))
    with pytest.raises(ConfigError, match="on_violation"):
        envelope("ignore")


def test_kinematic_robot_declares_its_envelope():
    from deploy.robots.kinematic import KinematicRobot

    limits = resolve(EnvelopeConfig(), KinematicRobot())
    assert limits.action_dim == 7 and limits.gripper == (-1.0, 1.0)


class Config:
    """The parts of a HumeConfig PolicySpec reads."""

    def __init__(self, pinned=True):
        self.cameras, self.state_dim, self.chunk_size = ("agentview", "wrist"), 8, 16
        self.action_dim, self.max_action_dim = 7, 32
        self.system2 = type("S2", (), {"pin_padded_actions": pinned})()


def spec(pinned=True) -> PolicySpec:
    return PolicySpec.of(type("Policy", (), {"config": Config(pinned)})())


def chunk(h=16, d=7, value=0.5, padding=None) -> dict:
    arrays = {"actions": np.full((h, d), value, np.float32), "values": np.zeros(5, np.float32)}
    if padding is not None:
        arrays["padding"] = np.zeros((h, padding), np.float32)
    return arrays


def test_chunks_are_checked_against_the_policy():
    spec().check_chunk(chunk())
    for bad in (chunk(d=8), chunk(h=8), chunk(padding=25)):
        with pytest.raises(MessageError) as e:
            spec().check_chunk(bad)
        assert e.value.reason == "wrong_shape"
    with pytest.raises(MessageError) as e:
        spec().check_chunk(chunk(value=1e6))
    assert e.value.reason == "out_of_range"
    spec().check_chunk(chunk(value=MAX_ABS_ACTION))  # the limit itself passes


def test_padded_dims_are_required_exactly_when_system2_samples_them():
    padded = spec(pinned=False)
    assert padded.padded_dims == 25
    padded.check_chunk(chunk(padding=25))
    for bad in (chunk(), chunk(padding=24)):
        with pytest.raises(MessageError, match="padding"):
            padded.check_chunk(bad)
    big = chunk(padding=25)
    big["padding"][3, 4] = -1e4
    with pytest.raises(MessageError) as e:
        padded.check_chunk(big)
    assert e.value.reason == "out_of_range"


def test_observations_are_checked_against_the_policy():
    good = {
        "observation.images.agentview": np.zeros((4, 4, 3), np.uint8),
        "observation.images.wrist": np.zeros((4, 4, 3), np.uint8),
        "observation.state": np.zeros(8, np.float32),
    }
    spec().check_observation(good)
    spec().check_observation({**good, "observation.images.extra": np.zeros((4, 4, 3), np.uint8)})
    for bad in ({**good, "observation.state": np.zeros(6, np.float32)}, {k: good[k] for k in list(good)[1:]}):
        with pytest.raises(MessageError) as e:
            spec().check_observation(bad)
        assert e.value.reason == "bad_observation" and "agentview" in str(e.value) and "[8]" in str(e.value)


def test_a_policy_without_a_config_is_checked_for_values_only():
    loose = PolicySpec.of(object())
    loose.check_chunk(chunk(h=3, d=2))
    with pytest.raises(MessageError):
        loose.check_chunk(chunk(value=-1e6))


def test_a_config_without_an_action_width_leaves_chunk_shapes_unchecked():
    # A plug-in policy's config may give chunk_size and no action_dim: its chunks are not rejected.
    spec = PolicySpec(chunk_size=3, action_dim=None)
    spec.check_chunk(chunk(h=3, d=2))
    with pytest.raises(MessageError):
        spec.check_chunk(chunk(h=3, d=2, value=-1e6))


def test_rate_limited_log_says_how_many_it_left_out(caplog):
    now = [0.0]
    rl = RateLimitedLog(logging.getLogger("test.ratelog"), every_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "test.ratelog"):
        logged = [rl(logging.WARNING, "kind", "bad chunk %d", i) for i in range(1000)]
        rl(logging.WARNING, "other", "another kind")
        now[0] = 10.0
        rl(logging.WARNING, "kind", "bad chunk again")
    assert sum(logged) == 1
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["bad chunk 0", "another kind", "bad chunk again (and 999 more like it in the last 10 s)"]
    with caplog.at_level(logging.INFO, "test.ratelog"):
        rl(logging.WARNING, "kind", "x")
        rl.flush()
    assert caplog.records[-1].getMessage() == "1 more kind events were not logged one by one"


def test_in_bound_deltas_that_all_push_one_way_stop_at_the_workspace_edge():
    from deploy.robots.kinematic import KinematicRobot

    robot = KinematicRobot(image_size=16, max_steps=400)
    robot.reset(0)
    env = Envelope(resolve(EnvelopeConfig(), robot, "kinematic"), "clamp", control_hz=20)
    hits = 0
    for _ in range(320):  # +0.9 in x every tick: 14 m of motion asked for
        obs = robot.observe()
        sent, bits = env.apply(np.array([0.9, -0.9, 0.9, 0, 0, 0, 1], np.float32), obs["observation.state"])
        hits += bool(bits & WORKSPACE)
        robot.act(sent)
        position = robot.observe()["observation.state"][:3]
        assert (np.abs(position) <= 0.5 + 1e-6).all(), position
    assert position[0] == pytest.approx(0.5, abs=1e-4) and position[1] == pytest.approx(-0.5, abs=1e-4)
    assert hits > 0 and env.counts["workspace"] == hits
    # Moving back in is always allowed; a non-finite state holds.
    sent, bits = env.apply(
        np.array([-0.5, 0.5, 0, 0, 0, 0, 1], np.float32), robot.observe()["observation.state"]
    )
    assert sent[0] == pytest.approx(-0.5) and not bits & WORKSPACE
    sent, bits = env.apply(np.zeros(7, np.float32), np.full(8, np.nan, np.float32))
    assert bits & HELD


def test_the_workspace_speed_limit_scales_the_motion():
    ws = {
        "state_dims": [0, 1, 2],
        "low": [-1] * 3,
        "high": [1] * 3,
        "per_unit": [0.05] * 3,
        "max_speed": 0.25,
    }
    env = Envelope(resolve(EnvelopeConfig(), Adapter(**LIMITS, workspace=ws)), "clamp", control_hz=20)
    sent, bits = env.apply(np.array([0.5, 0, 0, 0, 0, 0, 1], np.float32), np.zeros(8))
    assert sent[0] == pytest.approx(0.25 / (0.05 * 20)) and bits & WORKSPACE  # 0.5 m/s asked
    with pytest.raises(ConfigError, match="workspace"):
        resolve(EnvelopeConfig(workspace_low=[0.0]), Adapter(**LIMITS))
