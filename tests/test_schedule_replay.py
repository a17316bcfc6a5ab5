"""One recorded sequence of chunk arrivals through the three drivers of the control schedule: the
synchronous loop, the evaluator's virtual clock, and the System-1 node (a real process on the
kinematic robot, fed over ZeroMQ by a test-side System 2 that replays the chunks). Same actions,
tick for tick.

A chunk answers the observation of every 5th tick and System 1 refines every 8, so chunks land
mid-plan and are taken up at the next refinement. The synchronous loop lands each chunk at the tick
of its observation (latency 0), as does the virtual clock at latency 0. The node never waits on
System 2 inside a tick, so a chunk answering tick c reaches it at tick c + 1 at the earliest (the
episode's first chunk excepted: it is waited for before the clock starts), which the virtual clock
at latency 1 replays; as no chunk lands on a refinement tick, that one tick changes nothing here.
With System 1 refining ahead of the tick (the node's default), its plans take over one tick after
their observation, which the virtual clock replays with refine_lead 1.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from runtime_support import Peer, Proc, node_args

from deploy.robots.kinematic import KinematicRobot
from hume.models.configuration_hume import HumeConfig
from hume.policy import Chunk, HumePolicy
from hume.runtime import protocol
from hume.runtime.config import EnvelopeConfig
from hume.runtime.envelope import Envelope, resolve
from hume.runtime.policy_loader import model_id
from sim.eval_config import LatencyConfig
from sim.latency import LatencyModel, VirtualClockPolicy

TICKS = 28
EVERY = 5  # a chunk answers the observation of every 5th tick


class ReplayedThinks(HumePolicy):
    """A real System 1 (refine) whose System 2 replays recorded chunks in order."""

    chunks: list[Chunk] = []

    def reset(self, seed=None):
        super().reset(seed)
        self.next_chunk = 0

    def think(self, obs, noise=None, committed=None, delay=0, recent=None, draws=None, choice=None):
        self.next_chunk += 1
        return self.chunks[self.next_chunk - 1]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "ckpt"
    torch.manual_seed(0)
    HumePolicy.from_config(HumeConfig(s2_replan_steps=EVERY)).save_pretrained(path)
    rng = np.random.default_rng(0)
    chunks = [
        Chunk(
            actions=rng.normal(0, 0.6, (16, 7)).astype(np.float32),
            noise_level=0.1,
            values=rng.normal(size=5).astype(np.float32),
            index=0,
        )
        for _ in range(TICKS // EVERY + 1)
    ]
    return path, chunks


def drive(select_action, schedule) -> np.ndarray:
    """The node's loop without the node: kinematic robot, envelope, one action per tick."""
    robot = KinematicRobot(image_size=64, max_steps=TICKS, seed=0)
    robot.reset(0)
    envelope = Envelope(resolve(EnvelopeConfig(), robot, "kinematic"))
    envelope.reset()
    obs, sent = robot.observe(), []
    for _ in range(TICKS):
        action = select_action(obs)
        action = envelope.hold() if schedule().executed[-1][1] == "hold" else envelope.apply(action)[0]
        robot.act(action)
        obs = robot.observe()
        sent.append(action)
    return np.stack(sent)


def in_process(path, chunks, latency: int | None, refine_lead: int = 0) -> np.ndarray:
    """latency None: the synchronous loop; else the virtual clock at that latency, System 1's
    plans taking over `refine_lead` ticks after their observation."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the node runs: the same kernels, the same bits
    try:
        policy = ReplayedThinks.from_pretrained(path)
        policy.chunks = chunks
        policy.reset(seed=0)
        if latency is None:
            return drive(policy.select_action, lambda: policy.loop.schedule)
        clock = VirtualClockPolicy(
            policy,
            LatencyModel(LatencyConfig(steps=latency), seed=0),
            think_every=EVERY,
            refine_lead=refine_lead,
        )
        clock.reset(seed=0)
        return drive(clock.select_action, lambda: clock.schedule)
    finally:
        torch.set_num_threads(threads)


def through_the_node(path, chunks, run, **options) -> dict[str, np.ndarray]:
    """`hume serve system1` on the kinematic robot; the test answers the observation of every 5th
    tick with the next recorded chunk, 20 ms later (well inside the 100 ms tick)."""
    run.mkdir()
    peer = Peer(pub=f"ipc://{run}/chunks", sub=f"ipc://{run}/obs", bind=True)
    node = Proc(
        [
            "serve",
            "system1",
            *node_args(
                path,
                run,
                episodes=1,
                torch_threads=1,
                robot__max_steps=TICKS,
                control__control_hz=10,
                **options,
            ),
        ],
        run / "system1.log",
    )
    answered, seq, mid = set(), 0, model_id(path)
    try:
        deadline = time.monotonic() + 120
        while node.p.poll() is None and time.monotonic() < deadline:
            if not peer.sub.poll(100):
                continue
            msg = protocol.decode(peer.sub.recv_multipart())
            tick = msg.fields.get("tick")
            if msg.type != protocol.OBSERVATION or tick % EVERY or tick in answered:
                continue
            answered.add(tick)
            chunk = chunks[tick // EVERY]
            time.sleep(0.02)
            fields = {"model_id": mid, "episode": 0, "step": tick, "tick": tick, "chosen": 0}
            fields |= {"noise_level": chunk.noise_level, "think_ms": 20.0}
            arrays = {"actions": chunk.actions, "values": chunk.values}
            peer.pub.send_multipart(protocol.encode(protocol.CHUNK, "replay", seq, fields, arrays))
            seq += 1
        assert node.p.wait(timeout=60) == 0, node.text()[-3000:]
    finally:
        node.stop()
        peer.close()
    with (run / "ticks.csv").open() as f:
        header = f.readline().strip().split(",")
        table = np.loadtxt(f, delimiter=",", ndmin=2)
    return {name: table[:, i] for i, name in enumerate(header)}


@pytest.mark.slow
def test_one_recorded_sequence_gives_the_same_actions_in_all_three_drivers(recorded, tmp_path):
    path, chunks = recorded
    sync = in_process(path, chunks, latency=None)
    np.testing.assert_array_equal(in_process(path, chunks, latency=0), sync)
    clock = in_process(path, chunks, latency=1)
    np.testing.assert_array_equal(clock, sync)
    # System 1 refining inside the tick, as the synchronous loop does.
    trace = through_the_node(path, chunks, tmp_path / "node", control__refine_ahead=False)
    sent = np.stack([trace[f"a{i}"] for i in range(7)], 1)
    assert len(sent) == TICKS and not trace["hold"].any()
    np.testing.assert_allclose(sent, sync, atol=2e-5)  # ticks.csv keeps 5 decimals
    # The chunks answering ticks 5, 15 and 20 landed mid-plan and were taken up at the next
    # refinement (8, 16, 24) at their age then; each refinement starts a new chunk's plan.
    assert np.flatnonzero(trace["refined"]).tolist() == [0, 8, 16, 24]
    assert np.flatnonzero(trace["chunk_switch"]).tolist() == [0, 8, 16, 24]
    assert trace["chunk_age"][[0, 8, 16, 24]].tolist() == [0, 3, 1, 4]
    # Another recorded sequence gives other actions: the comparison above is not vacuous.
    assert not np.allclose(in_process(path, chunks[::-1], latency=None), sync, atol=1e-3)


@pytest.mark.slow
def test_refining_ahead_of_the_tick_the_node_and_the_virtual_clock_agree(recorded, tmp_path):
    """The node's default: System 1 refines in a worker on tick t's observation and its plan takes
    over at t + 1 (the episode's first excepted: it is waited for before the clock starts). The
    virtual clock replays exactly that with refine_lead 1."""
    path, chunks = recorded
    ahead = in_process(path, chunks, latency=1, refine_lead=1)
    assert not np.allclose(ahead, in_process(path, chunks, latency=1), atol=1e-3)
    trace = through_the_node(path, chunks, tmp_path / "node", control__refine_lead_ticks=1)
    sent = np.stack([trace[f"a{i}"] for i in range(7)], 1)
    assert len(sent) == TICKS and not trace["hold"].any()
    np.testing.assert_allclose(sent, ahead, atol=2e-5)
    # A plan holds h = 8 actions from its observation's tick: its successor is asked one tick
    # before it runs out (7, 14, 21, on those ticks' observations) and takes over one tick later.
    assert np.flatnonzero(trace["refined"]).tolist() == [0, 8, 15, 22]
    assert trace["obs_age"][[0, 7, 8, 14, 15]].tolist() == [0, 7, 1, 7, 1]
    assert (trace["obs_age_ms"][1:] > 0).all()
