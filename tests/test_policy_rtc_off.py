"""Nothing for what is switched off: with real-time chunking off (and no coherence selector), no
driver of the control schedule builds committed actions, none goes on the wire, and no delay is
estimated; with it on, each does (so the counts below can fail)."""

import numpy as np
import pytest
import torch

from deploy.robots.kinematic import KinematicRobot
from hume.models.configuration_hume import HumeConfig
from hume.policy import HumePolicy
from hume.policy.delay import DelayEstimator
from hume.policy.schedule import ControlSchedule
from hume.runtime import protocol, system2_node
from hume.runtime.config import DeployConfig, TransportConfig
from hume.runtime.system1_node import System1Node
from hume.runtime.system2_node import System2Node
from sim.eval_config import LatencyConfig
from sim.latency import LatencyModel, VirtualClockPolicy

TICKS = 12


@pytest.fixture(scope="module", params=[False, True], ids=["rtc_off", "rtc_on"])
def rtc(request):
    torch.manual_seed(0)
    return request.param, HumePolicy.from_config(HumeConfig(rtc=request.param, s2_replan_steps=4))


@pytest.fixture
def counts(monkeypatch):
    """Calls of what real-time chunking needs: the committed actions, the delay estimate."""
    n = {"committed": 0, "delay": 0, "steps_for": 0}

    def counting(key, fn):
        def wrapper(*args, **kwargs):
            n[key] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(ControlSchedule, "committed", counting("committed", ControlSchedule.committed))
    monkeypatch.setattr(DelayEstimator, "add", counting("delay", DelayEstimator.add))
    monkeypatch.setattr(system2_node, "steps_for", counting("steps_for", system2_node.steps_for))
    return n


def _observation() -> dict:
    robot = KinematicRobot(image_size=64, max_steps=100, seed=0)
    robot.reset(0)
    return robot.observe()


def test_the_synchronous_loop_and_the_virtual_clock(rtc, counts):
    on, policy = rtc
    obs = _observation()
    policy.reset(seed=0)
    for _ in range(TICKS):
        policy.select_action(obs)
    sync = counts["committed"]
    clock = VirtualClockPolicy(policy, LatencyModel(LatencyConfig(steps=2), seed=0), think_every=4)
    clock.reset(seed=0)
    for _ in range(TICKS):
        clock.select_action(obs)
    if on:
        assert sync > 0 and counts["committed"] > sync and counts["delay"] > 0
    else:
        assert counts == {"committed": 0, "delay": 0, "steps_for": 0}


def test_the_two_nodes(rtc, counts, tmp_path):
    on, policy = rtc
    cfg = DeployConfig(
        transport=TransportConfig(observations=f"ipc://{tmp_path}/o", chunks=f"ipc://{tmp_path}/c")
    )
    obs = _observation()
    s2 = System2Node(cfg, policy, "tiny@0")
    s1 = System1Node(cfg, policy, KinematicRobot(image_size=64, max_steps=100, seed=0), "tiny@0")
    sent = []
    s1.obs_out.sock.send_multipart = lambda frames, **kw: sent.append(
        protocol.decode([bytes(f) for f in frames])
    )
    try:
        s1.schedule.land(policy.think(obs), 0)  # a chunk to be committed to
        s1._publish(obs, episode=0, step=0)  # what System 1 sends each tick
        assert len(sent) == 1
        s2.think(sent)  # and System 2 thinks on it
    finally:
        s1.close()
        s2.close()
    if on:
        assert counts["committed"] == 1 and counts["delay"] == counts["steps_for"] == 1
        assert sent[0].arrays[protocol.COMMITTED_KEY].shape[1] == 7 and s2.delays == [0]
    else:
        assert counts == {"committed": 0, "delay": 0, "steps_for": 0}
        assert protocol.COMMITTED_KEY not in sent[0].arrays and s2.delays == [None]
    assert np.isfinite(s2.think_ms).all()
