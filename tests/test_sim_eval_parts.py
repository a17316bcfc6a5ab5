"""Evaluator parts that need no simulator: intervals, planning, the episode log, the virtual clock."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from hume.config import ConfigError, parse_config
from hume.policy.chunk import Chunk
from sim.eval_config import EvalConfig, LatencyConfig
from sim.evaluator import check_resume, episode_seed, plan, read_log
from sim.latency import LatencyModel, VirtualClockPolicy
from sim.libero_env import get_task
from sim.policies import ReplayPolicy
from sim.stats import wilson_interval


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(50, 50)
    assert hi == pytest.approx(1.0) and lo == pytest.approx(0.9287, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_plan_uses_official_states_in_order_with_stable_seeds():
    cfg = parse_config(EvalConfig, ["--suite=libero_goal", "--episodes_per_task=3", "--first_init_state=48"])
    tasks = [get_task("libero_goal", 2), get_task("libero_goal", 5)]
    units = plan(cfg, tasks)
    assert [(u.task_id, u.episode, u.init_state) for u in units] == [
        (2, 0, 48), (2, 1, 49), (2, 2, 0), (5, 0, 48), (5, 1, 49), (5, 2, 0),
    ]  # fmt: skip
    assert units[0].seed == episode_seed(7, 2, 0) and len({u.seed for u in units}) == 6
    assert plan(cfg, tasks[1:])[0].seed == units[3].seed, "a unit's seed does not depend on the others"


def test_config_errors_name_the_key():
    for argv, key in (
        (["--mode=fast"], "mode"),
        (["--num_workers=0"], "num_workers"),
        (["--policy.type=replay"], "policy.dataset"),
        (["--latency.steps=-1"], "latency.steps"),
        (["--policy.num_candidates=-1"], "policy.num_candidates"),
        (["--policy.type=replay", "--policy.dataset=d", "--policy.use_system1=false"], "policy.type=hume"),
    ):
        with pytest.raises(ConfigError, match=key):
            parse_config(EvalConfig, argv)


def test_episode_log_ignores_torn_line_and_duplicates(tmp_path):
    path = tmp_path / "episodes.jsonl"
    rows = [{"task_id": 0, "episode": 0, "success": True}, {"task_id": 0, "episode": 1, "success": False}]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(
        text + json.dumps({"task_id": 0, "episode": 0, "success": False}) + "\n" + '{"task_id": 0, "ep'
    )
    done = read_log(path)
    assert set(done) == {(0, 0), (0, 1)} and done[(0, 0)]["success"] is True


def test_resume_refuses_a_different_evaluation(tmp_path):
    cfg = parse_config(EvalConfig, [f"--output={tmp_path}"])
    check_resume(cfg, tmp_path)
    check_resume(parse_config(EvalConfig, [f"--output={tmp_path}", "--num_workers=1"]), tmp_path)
    with pytest.raises(ConfigError, match="seed"):
        check_resume(parse_config(EvalConfig, [f"--output={tmp_path}", "--seed=8"]), tmp_path)
    # A run saved before a setting existed resumes: the setting reads as its default there.
    saved = json.loads((tmp_path / "eval_config.json").read_text())
    del saved["policy"]["candidate_t0_spread"]
    (tmp_path / "eval_config.json").write_text(json.dumps(saved))
    check_resume(cfg, tmp_path)
    with pytest.raises(ConfigError, match="differs in: policy"):
        check_resume(
            parse_config(EvalConfig, [f"--output={tmp_path}", "--policy.candidate_t0_spread=0"]), tmp_path
        )
    # Saved when 0 and -1 said "the checkpoint's" where None says it now: the same evaluation.
    saved["policy"] |= {"num_candidates": 0, "rtc_system1_overlap": -1}
    (tmp_path / "eval_config.json").write_text(json.dumps(saved))
    check_resume(cfg, tmp_path)
    with pytest.raises(ConfigError, match="differs in: policy"):
        check_resume(
            parse_config(EvalConfig, [f"--output={tmp_path}", "--policy.num_candidates=1"]), tmp_path
        )


def test_replay_policy_plays_then_holds_gripper():
    actions = np.array([[0.1, 0, 0, 0, 0, 0, -1], [0, 0.2, 0, 0, 0, 0, 1]], dtype=np.float32)
    p = ReplayPolicy(actions)
    out = [p.select_action({}) for _ in range(4)]
    np.testing.assert_array_equal(out[1], actions[1])
    np.testing.assert_array_equal(out[3], [0, 0, 0, 0, 0, 0, 1])
    p.reset()
    np.testing.assert_array_equal(p.select_action({}), actions[0])
    with pytest.raises(ValueError):
        ReplayPolicy(np.zeros((3, 1)))  # a gripper and no arm
    meta_world = ReplayPolicy(np.array([[0.5, 0, 0, 1]], dtype=np.float32))  # any width: Meta-World's 4
    meta_world.select_action({})
    np.testing.assert_array_equal(meta_world.select_action({}), [0, 0, 0, 1])


class RecordingPolicy:
    """think/refine with actions that encode where they came from: [chunk's step, chunk offset, ...]."""

    def __init__(self, chunk_size=16, horizon=8, refine_every=4, think_every=16):
        self.config = SimpleNamespace(
            chunk_size=chunk_size,
            s1_horizon=horizon,
            s1_replan_steps=refine_every,
            s2_replan_steps=think_every,
            action_dim=7,
            system1=SimpleNamespace(state_history=2),
        )
        self.thought_at = []

    def reset(self):
        self.thought_at = []

    def think(self, obs, committed=None, delay=0, draws=None):
        self.thought_at.append(obs["t"])
        actions = np.full((self.config.chunk_size, 7), obs["t"], np.float32)
        return Chunk(actions=actions, noise_level=0.0, values=np.zeros(1, np.float32), index=0)

    def robot_actions(self, chunk):
        return chunk.actions

    def refine(self, obs, chunk, offset, history, continues=None):
        assert 0 <= offset <= self.config.chunk_size - self.config.s1_horizon
        assert history.shape == (2, 1) and history[-1, 0] == obs["t"], "the schedule's history, up to now"
        step = chunk.actions[0, 0]
        return np.array([[step, offset + i, obs["t"], 0, 0, 0, 1] for i in range(self.config.s1_horizon)])


def drive(policy, steps):
    return np.array([policy.select_action({"t": t, "observation.state": [t]}) for t in range(steps)])


def test_virtual_clock_aligns_chunks_by_elapsed_steps():
    inner = RecordingPolicy()
    vc = VirtualClockPolicy(inner, LatencyModel(LatencyConfig(steps=3), seed=0))
    acts = drive(vc, 40)
    # The first chunk is waited for before step 0 (as the System-1 node waits); then back to back:
    # each think starts on the newest observation when its predecessor lands.
    assert inner.thought_at == [0, *range(1, 40, 3)]
    ages = []
    for t in range(40):
        refined_at = t // 4 * 4  # System 1 refines every 4 ticks
        chunk_step = max(s for s in inner.thought_at if s == 0 or s + 3 <= refined_at)
        assert acts[t][0] == chunk_step, t
        assert acts[t][1] == t - chunk_step, "the action is the chunk's entry for now, not its start"
        assert acts[t][2] == refined_at, "System 1 refined on the observation of its own tick"
        ages.append(t - chunk_step)
    stats = vc.episode_stats()
    assert stats["holds"] == 0 and stats["thinks"] == 14 and stats["chunk_age_max"] == max(ages)
    vc.reset()
    np.testing.assert_array_equal(drive(vc, 40), acts)


def test_virtual_clock_holds_when_chunks_run_out():
    inner = RecordingPolicy(chunk_size=16, horizon=8, refine_every=4)
    vc = VirtualClockPolicy(inner, LatencyModel(LatencyConfig(steps=10), seed=0), think_every=16)
    acts = drive(vc, 40)
    assert inner.thought_at == [0, 16, 32]
    moving = [t for t in range(40) if np.any(acts[t, :6] != 0)]
    # Chunk 0 is waited for and covers steps 0..15; chunk 16 lands at 26 and covers 26..31.
    assert moving == [*range(1, 16), *range(26, 32)], "(step 0's action is chunk 0's entry 0: all zero)"
    assert [int(acts[t][1]) for t in range(10, 16)] == list(range(10, 16)), "offsets past H - h are kept"
    assert [int(acts[t][1]) for t in range(26, 32)] == list(range(10, 16))
    hold = [t for t in range(40) if t not in range(0, 16) and t not in range(26, 32)]
    assert np.all(acts[:, 6] == 1), "holding keeps the gripper as last commanded"
    assert vc.episode_stats()["holds"] == len(hold)


def test_latency_drawn_from_measured_times_is_seeded():
    cfg = LatencyConfig(ms_samples=[10.0, 120.0, 260.0], control_hz=20.0)
    a, b = LatencyModel(cfg, seed=3), LatencyModel(cfg, seed=3)
    assert [a.sample() for _ in range(10)] == [b.sample() for _ in range(10)]
    assert sorted({LatencyModel(cfg, seed=s).sample() for s in range(40)}) == [1, 3, 6]
    assert LatencyModel(LatencyConfig(steps=5), seed=0).sample() == 5


class ImageCheckingPolicy(RecordingPolicy):
    """A RecordingPolicy that fails on an observation whose images were not rendered."""

    def think(self, obs, committed=None, delay=0, draws=None):
        assert "images" in obs, f"think on step {obs['t']} without images"
        return super().think(obs, committed, delay, draws)

    def refine(self, obs, chunk, offset, history, continues=None):
        assert "images" in obs, f"refine on step {obs['t']} without images"
        return super().refine(obs, chunk, offset, history, continues)


@pytest.mark.parametrize(
    "latency, think_every, lead",
    [(LatencyConfig(steps=3), 0, 0), (LatencyConfig(steps=10), 16, 0), (LatencyConfig(steps=2), 0, 2),
     (LatencyConfig(ms_samples=[10.0, 120.0, 260.0], control_hz=20.0), 0, 0)],
    ids=["back-to-back", "holds", "lead", "drawn"],
)  # fmt: skip
def test_virtual_clock_foretells_which_steps_read_images(latency, think_every, lead):
    def policy():
        return VirtualClockPolicy(
            ImageCheckingPolicy(), LatencyModel(latency, seed=4), think_every=think_every, refine_lead=lead
        )

    skipping, rendered, actions = policy(), [], []
    for t in range(60):
        obs = {"t": t, "observation.state": [t]}
        if skipping.needs_images_next():
            obs["images"], _ = True, rendered.append(t)
        actions.append(skipping.select_action(obs))
    assert 0 < len(rendered) < 60, "some steps' images are read, not all"
    # Foretelling changed nothing: the same actions as a policy never asked, shown every image.
    always = policy()
    plain = [always.select_action({"t": t, "observation.state": [t], "images": True}) for t in range(60)]
    np.testing.assert_array_equal(actions, plain)
