"""The env server (sim/remote/): its protocol, a server whose simulator fails or dies, and Meta-World
served from its own environment (.venv-metaworld) to a client written from docs/protocol.md alone,
to `RemoteEnv` (expert, save/restore), and to `hume collect` / `hume eval` in every mode with a
4-dim-action checkpoint."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile

import msgpack
import numpy as np
import pytest
import zmq
from cli_support import ROOT, hume, last_json

from hume.runtime.protocol import MessageError
from sim.remote import protocol as p

METAWORLD_PYTHON = ROOT / ".venv-metaworld/bin/python"
# scripts/setup.sh builds .venv-metaworld unless HUME_SIM_ENVS leaves it out; only then may it be missing.
needs_metaworld = pytest.mark.skipif(
    "metaworld" not in os.environ.get("HUME_SIM_ENVS", "metaworld") and not METAWORLD_PYTHON.exists(),
    reason="HUME_SIM_ENVS leaves out Meta-World's environment",
)


# -- the protocol ----------------------------------------------------------------------------------
def test_requests_and_replies_round_trip():
    action = np.array([0.1, -0.2, 0.3, 1.0], np.float32)
    msg = p.decode(p.encode(p.STEP, "client", 3, arrays={p.ACTION_ARRAY: action}))
    assert (msg.type, msg.session, msg.seq) == (p.STEP, "client", 3)
    np.testing.assert_array_equal(msg.arrays[p.ACTION_ARRAY], action)
    obs = {
        "observation.state": np.ones(4, np.float32),
        "observation.images.agentview": np.zeros((8, 8, 3), np.uint8),
    }
    fields = {"task": 1, "step": 0, "success": False, "instruction": "open the door", "start_distance": 0.5}
    msg = p.decode(p.encode(p.OBSERVATION, "server", 3, fields, obs))
    assert msg.fields == fields and set(msg.arrays) == set(obs)


@pytest.mark.parametrize(
    "header, arrays, reason",
    [
        ({"v": 2, "type": "hello"}, [], "wrong_version"),
        ({"v": 1, "type": "teleport"}, [], "malformed"),
        ({"v": 1, "type": "reset", "task": 0, "start": -2, "seed": 0}, [], "malformed"),
        ({"v": 1, "type": "reset", "task": 0, "start": 0}, [], "malformed"),  # no seed
        ({"v": 1, "type": "step"}, [["action", "<f8", [4]]], "bad_field"),  # float64 action
        ({"v": 1, "type": "step"}, [["action", "<f4", [4]]], "malformed"),  # declared, no frame
        ({"v": 1, "type": "set_state"}, [], "bad_field"),  # no state
    ],
)
def test_malformed_requests_are_refused(header, arrays, reason):
    frames = [msgpack.packb({**header, "session": "s", "seq": 1, "arrays": arrays})]
    if arrays and reason == "bad_field":
        frames.append(np.zeros(4, np.float64).tobytes())
    with pytest.raises(MessageError) as e:
        p.decode(frames)
    assert e.value.reason == reason


def test_non_finite_actions_are_refused():
    with pytest.raises(MessageError, match="finite"):
        p.encode(p.STEP, "c", 1, arrays={p.ACTION_ARRAY: np.array([np.nan, 0, 0, 0], np.float32)})


# -- the server, with a simulator of our own -------------------------------------------------------
class CountingSim:
    """A one-number simulator: the state is a counter that each step adds the action's sum to."""

    spec = {"simulator": "counting", "tasks": [["count", "count up"]], "max_steps": 5, "num_starts": 1,
            "action_dim": 2, "state_dim": 1, "action_low": [-1, -1], "action_high": [1, 1]}  # fmt: skip

    def __init__(self, crash_on_step: int = -1, broken: bool = False):
        if broken:
            raise ImportError("no module named 'vendor_sdk'")
        self.crash_on_step = crash_on_step
        self.value, self.steps = 0.0, 0

    def _obs(self) -> dict:
        return {"task": 0, "step": self.steps, "success": self.value >= 3, "instruction": "count up",
                "observation.state": np.array([self.value], np.float32)}  # fmt: skip

    def reset(self, task, start, seed, state):
        self.value, self.steps = float(start), 0
        return self._obs() if state is None else self.set_state(state)

    def step(self, action):
        if self.steps + 1 == self.crash_on_step:
            os._exit(3)  # a simulator that dies mid-episode (a segfault, an OOM kill)
        if self.steps >= 5:
            raise ValueError("the episode is over")
        self.steps += 1
        self.value += float(action.sum())
        return self._obs()

    def get_state(self):
        return np.array([self.value, self.steps], np.float64)

    def set_state(self, state):
        self.value, self.steps = float(state[0]), int(state[1])
        return self._obs()

    def expert_action(self):
        return np.ones(2, np.float32)

    def close(self):
        pass


def _counting(**options):
    from sim.remote.client import RemoteEnv, RemoteSim

    sim = RemoteSim(sys.executable, "test_sim_remote:CountingSim", options, timeout_s=20)
    return RemoteEnv(sim, "counting", 0)


@pytest.fixture()
def tests_on_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))


def test_a_simulator_error_comes_back_named_and_the_server_goes_on(tests_on_path):
    from sim.remote.client import RemoteError

    with _counting() as env:
        env.reset(0)
        for _ in range(5):
            obs, success = env.step(env.expert_action())
        assert success and obs["observation.state"][0] == 10
        with pytest.raises(RemoteError, match="ValueError: the episode is over"):
            env.step(np.zeros(2, np.float32))
        saved = env.get_state()
        env.reset(1)
        assert env.set_state(saved)["observation.state"][0] == 10 and env.steps == 5
    assert env.remote.proc.returncode == 0  # `close` ended it


def test_a_dead_server_is_an_error_not_a_hang(tests_on_path):
    from sim.remote.client import RemoteError

    env = _counting(crash_on_step=2)
    try:
        env.reset(0)
        env.step(np.zeros(2, np.float32))
        with pytest.raises(RemoteError, match="exited \\(code 3\\)"):
            env.step(np.zeros(2, np.float32))
    finally:
        env.close()


def test_a_simulator_that_cannot_start_is_named_and_leaves_no_process(tests_on_path):
    from sim.remote.client import RemoteError

    with pytest.raises(RemoteError, match="vendor_sdk") as e:
        _counting(broken=True)
    assert "exited (code 1)" in str(e.value)


def test_a_missing_environment_says_how_to_make_it(monkeypatch):
    from sim.remote.client import RemoteError, interpreter

    monkeypatch.setenv("HUME_TEST_PYTHON", "/nonexistent/python")
    with pytest.raises(RemoteError, match="scripts/setup.sh"):
        interpreter(".venv-nothing", "HUME_TEST_PYTHON")


# -- Meta-World in its own environment -------------------------------------------------------------
class RawClient:
    """An env-server client from docs/protocol.md ("Env server") alone: pyzmq + msgpack + numpy."""

    def __init__(self, endpoint: str):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.seq = 0

    def call(self, kind: str, fields: dict | None = None, arrays: dict | None = None) -> tuple[dict, dict]:
        self.seq += 1
        arrays = arrays or {}
        specs = [[name, a.dtype.str, list(a.shape)] for name, a in arrays.items()]
        header = {"v": 1, "type": kind, "session": "raw", "seq": self.seq, **(fields or {}), "arrays": specs}
        self.sock.send_multipart([msgpack.packb(header), *(a.tobytes() for a in arrays.values())])
        assert self.sock.poll(60_000), f"no reply to {kind}"
        head, *frames = self.sock.recv_multipart()
        reply = msgpack.unpackb(head)
        assert reply["seq"] == self.seq and reply["type"] != "error", reply
        got = {
            n: np.frombuffer(f, dtype=d).reshape(s)
            for (n, d, s), f in zip(reply["arrays"], frames, strict=True)
        }
        return reply, got


@needs_metaworld
@pytest.mark.slow
def test_a_client_from_the_doc_alone_drives_metaworld():
    folder = tempfile.mkdtemp(prefix="hume-test-env-")
    endpoint = f"ipc://{folder}/env.sock"
    options = json.dumps({"suite": "metaworld_mt10_reach", "image_size": 32})
    server = subprocess.Popen(
        [str(METAWORLD_PYTHON), "-m", "sim.remote.server", "--sim", "metaworld", "--endpoint", endpoint,
         "--options", options],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE,
    )  # fmt: skip
    client = RawClient(endpoint)
    try:
        spec = client.call("hello")[0]["spec"]
        assert spec["tasks"] == [["reach-v3", "reach the goal position"]] and spec["action_dim"] == 4
        reply, obs = client.call("reset", {"task": 0, "start": 3, "seed": 0})
        assert obs["observation.state"].shape == (4,) and obs["observation.images.wrist"].shape == (32, 32, 3)
        _, state = client.call("get_state")
        action = np.array([1.0, 0.0, 0.0, -1.0], np.float32)
        after = [client.call("step", arrays={"action": action})[1]["observation.state"] for _ in range(3)]
        reply, obs = client.call("set_state", arrays={"state": state["state"]})
        assert reply["step"] == 0
        again = [client.call("step", arrays={"action": action})[1]["observation.state"] for _ in range(3)]
        np.testing.assert_array_equal(after, again)
        assert after[-1][0] > obs["observation.state"][0]  # +x moved the hand along x
        assert client.call("close")[0]["type"] == "closed"
        assert server.wait(timeout=20) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def pick_place():
    from sim.suites import make_env

    env = make_env("metaworld_mt10", 2, image_size=32, max_steps=150)
    yield env
    env.close()


@needs_metaworld
@pytest.mark.slow
def test_the_served_expert_succeeds_and_a_saved_state_replays_exactly(pick_place):
    env = pick_place
    assert env.task.name == "pick-place-v3" and env.instruction == "pick up the puck and place it at the goal"
    env.reset(0)
    success, saved, tail = False, None, []
    while not success and not env.truncated:
        obs, success = env.step(env.expert_action())
        if env.steps == 20:
            saved = env.get_state()
        elif saved is not None and len(tail) < 10:
            tail.append(obs["observation.state"])
    assert success, f"the pick-place expert failed from start 0 ({env.steps} steps)"
    env.reset(5)  # elsewhere; restoring must bring back the whole episode state
    env.set_state(saved)
    assert env.steps == 20
    again = []
    for _ in range(10):
        obs, _ = env.step(env.expert_action())
        again.append(obs["observation.state"])
    np.testing.assert_array_equal(tail, again)


@needs_metaworld
@pytest.mark.slow
def test_sampled_starts_are_held_out_from_the_evaluation_starts(pick_place):
    env = pick_place
    first = env.reset_sampled(11)["observation.state"]
    nearest, distance = env.nearest_official()
    assert 0 <= nearest < 50 and distance > 1e-3
    np.testing.assert_array_equal(env.reset_sampled(11)["observation.state"], first)  # seeded
    official = [env.reset(i)["observation.state"] for i in (0, 50)]  # start indices wrap at 50
    np.testing.assert_array_equal(*official)


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    out = tmp_path_factory.mktemp("mw") / "data"
    r = hume("collect", "--config", "configs/collect/metaworld_smoke.yaml", "--output", str(out),
             "--init_states", "official", "--image_size", "32")  # fmt: skip
    return out, last_json(r)


@needs_metaworld
@pytest.mark.slow
def test_hume_collect_records_four_dim_metaworld_demonstrations(collected):
    from hume.data import LeRobotDataset

    out, summary = collected
    assert summary["episodes"] == 2 and summary["successes"] == 2
    info = json.loads((out / "meta/info.json").read_text())
    assert info["features"]["action"]["shape"] == [4] and info["features"]["observation.state"]["shape"] == [
        4
    ]
    assert info["features"]["observation.images.agentview"]["shape"] == [32, 32, 3]
    ds = LeRobotDataset(out)
    assert ds.columns["action"].shape[1] == 4


@needs_metaworld
@pytest.mark.slow
def test_hume_eval_replays_the_demonstrations_to_success(collected, tmp_path):
    data, _ = collected
    r = hume("eval", "--config", "configs/eval/metaworld_smoke.yaml", "--output", str(tmp_path / "eval"),
             "--tasks", "[pick-place-v3]", "--episodes_per_task", "2", "--max_steps", "120",
             "--policy.type", "replay", "--policy.dataset", str(data), "--render", "false")  # fmt: skip
    results = last_json(r)
    assert results["episodes"] == 2 and results["success_rate"] == 1.0


@pytest.fixture(scope="module")
def four_dim_checkpoint(tmp_path_factory):
    from train_support import tiny_model_config

    from hume.policy import HumePolicy

    path = tmp_path_factory.mktemp("ckpt4") / "ckpt"
    config = dataclasses.replace(tiny_model_config(), state_dim=4, action_dim=4)
    HumePolicy.from_config(config).save_pretrained(path)
    return path


@needs_metaworld
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sync", "deploy"])
def test_a_four_dim_policy_runs_in_metaworld(four_dim_checkpoint, tmp_path, mode):
    out = tmp_path / mode
    r = hume("eval", "--config", "configs/eval/metaworld_smoke.yaml", "--output", str(out),
             "--mode", mode, "--policy.checkpoint", str(four_dim_checkpoint), "--max_steps", "10",
             "--image_size", "32")  # fmt: skip
    assert last_json(r)["episodes"] == 1
    results = json.loads((out / "results.json").read_text())
    assert results["tasks"][0]["name"] == "reach-v3" and results["mode"] == mode
    row = json.loads((out / "episodes.jsonl").read_text().splitlines()[0])
    assert row["steps"] == 10
    if mode == "sync":
        assert len(row["final_state"]) == 4
    else:
        ticks = next(out.rglob("ticks.csv")).read_text().splitlines()
        assert ticks[0].endswith("a0,a1,a2,a3") and len(ticks) == 11


# -- robosuite 1.5 in its own environment ----------------------------------------------------------
needs_robosuite = pytest.mark.skipif(
    "robosuite" not in os.environ.get("HUME_SIM_ENVS", "robosuite")
    and not (ROOT / ".venv-robosuite/bin/python").exists(),
    reason="HUME_SIM_ENVS leaves out robosuite's environment",
)


@pytest.fixture(scope="module")
def robosuite_standard():
    from sim.suites import make_env

    env = make_env("robosuite_standard", 0, image_size=32)
    yield env
    env.close()


@needs_robosuite
@pytest.mark.slow
@pytest.mark.parametrize("task", [0, 1])  # Lift, Stack
def test_robosuite_experts_succeed_and_a_saved_state_replays_exactly(robosuite_standard, task):
    env = robosuite_standard
    env.select_task(task)
    obs = env.reset(3)
    assert obs["observation.state"].shape == (8,) and obs["observation.images.agentview"].shape == (32, 32, 3)
    assert env.max_steps == (200, 300)[task]  # each task's own limit
    success, saved, tail = False, None, []
    while not success and not env.truncated:
        obs, success = env.step(env.expert_action())
        if env.steps == 10:
            saved = env.get_state()
        elif saved is not None and len(tail) < 5:
            tail.append(obs["observation.state"])
    assert success, f"the {env.task.name} expert failed from start 3 ({env.steps} steps)"
    env.set_state(saved)
    again = [env.step(env.expert_action())[0]["observation.state"] for _ in range(5)]
    np.testing.assert_array_equal(tail, again)


@needs_robosuite
@pytest.mark.slow
def test_robosuite_tasks_without_an_expert_say_so(robosuite_standard):
    from sim.remote.client import RemoteError

    env = robosuite_standard
    env.select_task(4)
    env.reset(0)
    assert env.task.name == "Door" and env.instruction == "open the door"
    with pytest.raises(RemoteError, match="no scripted expert for Door"):
        env.expert_action()
