"""The oracle selector: it takes a candidate that succeeds in the simulator, decides nothing else
(N = 1 is the plain run exactly), and `hume eval` records every branch it tried."""

import json
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest

from hume.config import ConfigError, parse_config
from hume.constants import STATE_KEY
from hume.policy import HumePolicy
from hume.policy.sync_loop import SyncLoop
from sim.episode import run_episode
from sim.eval_config import EvalConfig, OracleConfig
from sim.evaluator import evaluate
from sim.libero_env import LiberoEnv
from sim.oracle import OracleActor

DEFAULT = "checkpoints/default"


class Line:
    """A one-dimensional world: the robot succeeds when it reaches x >= 3 within 12 steps."""

    def __init__(self):
        self.x, self.steps = 0.0, 0

    def reset(self, init_state):
        self.x, self.steps = 0.0, 0
        return {STATE_KEY: [self.x]}

    def step(self, action, render=True):
        self.x += float(action)
        self.steps += 1
        return {STATE_KEY: [self.x]}, self.x >= 3

    @property
    def truncated(self):
        return self.steps >= 12

    def get_state(self):
        return (self.x, self.steps)

    def set_state(self, saved):
        self.x, self.steps = saved
        return {STATE_KEY: [self.x]}


@dataclass(frozen=True)
class LineConfig:
    num_candidates: int


class Chooser:
    """Thinks every 4 steps; candidate i moves by `moves[i]` per step for its 4 steps; a plain
    think (any think the oracle does not decide) moves by moves[0]."""

    def __init__(self, moves):
        self.moves = moves
        self.config = LineConfig(len(moves))
        self.schedule = SimpleNamespace(chunk=SimpleNamespace(candidates=np.array(moves)))

    def reset(self):
        self.tick, self.move, self.forced = 0, 0.0, None

    def thinks_next(self):
        return self.tick % 4 == 0

    def force_next_choice(self, index, continuation_seed=None):
        self.forced = index

    def select_action(self, obs):
        if self.thinks_next():
            self.move = self.moves[self.forced or 0]
            self.forced = None
        self.tick += 1
        return self.move

    def save(self):
        return (self.tick, self.move, self.forced)

    def restore(self, saved):
        self.tick, self.move, self.forced = saved


def run_oracle_episode(env, policy, init_state, oracle, seed):
    """An episode with the oracle; its branch points without the candidates."""
    actor = OracleActor(policy, env, oracle)
    result = run_episode(env, actor, init_state, seed=seed)
    return result, [{k: v for k, v in r.items() if k != "candidates"} for r in actor.records]


def test_the_oracle_takes_the_candidate_that_succeeds():
    env, policy = Line(), Chooser([-1.0, 1.0])
    result, records = run_oracle_episode(env, policy, 0, OracleConfig(), seed=0)
    assert result.success and result.steps == 3
    assert records == [{"tick": 0, "outcomes": [[[0, 12]], [[1, 3]]], "chosen": 1}]
    # Its outcome is what the branch of the chosen candidate saw.
    assert records[0]["outcomes"][1][0] == [int(result.success), result.steps]


def test_ties_go_to_candidate_zero_and_try_all_records_every_candidate():
    env, policy = Line(), Chooser([1.0, 1.0, -1.0])
    result, records = run_oracle_episode(env, policy, 0, OracleConfig(), seed=0)
    assert result.success and records[0]["outcomes"] == [[[1, 3]]] and records[0]["chosen"] == 0
    _, records = run_oracle_episode(env, policy, 0, OracleConfig(try_all=True, seeds=2), seed=0)
    # Candidate 2 backs off for its 4 steps, then plain thinks (+1) reach 3 at step 11.
    assert records[0]["outcomes"] == [[[1, 3]] * 2, [[1, 3]] * 2, [[1, 11]] * 2]
    assert records[0]["chosen"] == 0


def test_a_horizon_cuts_the_branches_and_later_thinks_branch_too():
    # Candidate 1 moves slowly: it reaches 3 only after 6 steps, beyond a horizon of 4.
    env, policy = Line(), Chooser([-1.0, 0.5])
    _, records = run_oracle_episode(env, policy, 0, OracleConfig(horizon=4), seed=0)
    assert records[0]["outcomes"] == [[[0, 4]], [[0, 4]]] and records[0]["chosen"] == 0
    # Two oracle thinks: after 4 slow steps (x = 2) the second branch point finds the way.
    result, records = run_oracle_episode(env, Chooser([0.5, -1.0]), 0, OracleConfig(thinks=2), seed=0)
    assert [r["tick"] for r in records] == [0, 4] and result.success


@pytest.mark.slow
def test_oracle_with_one_candidate_is_the_plain_run_exactly():
    """Real LIBERO, the default checkpoint: branching (save, run the branch, restore) leaves no
    trace on the episode, so with nothing to choose from the oracle's episode is the plain run."""
    with LiberoEnv("libero_object", 1, image_size=64, fast_render=True, max_steps=20) as env:
        plain = SyncLoop(HumePolicy.from_pretrained(DEFAULT, num_candidates=1))
        expected = run_episode(env, plain, 2, seed=11)
        oracle = SyncLoop(HumePolicy.from_pretrained(DEFAULT, num_candidates=1, selector="oracle"))
        actor = OracleActor(oracle, env, OracleConfig(thinks=2))
        result = run_episode(env, actor, 2, seed=11)
        records = actor.records
    assert [r["tick"] for r in records] == [0, 16] and all(r["chosen"] == 0 for r in records)
    assert (result.success, result.steps, result.final_state) == (
        expected.success,
        expected.steps,
        expected.final_state,
    )
    executed = [np.stack([a for a, _, _ in p.schedule.executed]) for p in (plain, oracle)]
    np.testing.assert_array_equal(*executed)
    assert oracle.episode_stats() == plain.episode_stats()


@pytest.mark.slow
def test_hume_eval_records_the_oracles_branches(tmp_path):
    argv = ["--suite=libero_object", "--tasks=[0]", "--max_steps=18", "--image_size=64", "--fast_render=true"]
    argv += [
        "--episodes_per_task=1",
        "--num_workers=1",
        "--videos_per_task=0",
        f"--policy.checkpoint={DEFAULT}",
    ]
    argv += ["--policy.selector=oracle", "--policy.num_candidates=3", "--oracle.try_all=true"]
    results = evaluate(parse_config(EvalConfig, [*argv, f"--output={tmp_path}"]))
    assert results["episodes"] == 1
    row = json.loads((tmp_path / "episodes.jsonl").read_text().splitlines()[0])
    (record,) = row["oracle"]
    assert record["tick"] == 0 and len(record["outcomes"]) == 3 and 0 <= record["chosen"] < 3
    assert row["think_chosen"][0] == record["chosen"] and len(row["think_values"][0]) == 3
    assert len(row["think_values"][1]) == 1, "after the oracle's think: one plain sample"


def test_branch_points_can_be_drawn_over_the_episode():
    """think_prob < 1: branch points spread over the thinks, the same ones for the same seed."""
    env = Line()
    ticks = []
    for seed in (0, 0, 1, 2, 3):
        actor = OracleActor(Chooser([0.25, 0.25]), env, OracleConfig(thinks=2, think_prob=0.5))
        run_episode(env, actor, 0, seed=seed)
        ticks.append([r["tick"] for r in actor.records])
        assert all(len(r["candidates"]) == 2 for r in actor.records)
    assert ticks[0] == ticks[1] and len({tuple(t) for t in ticks}) > 1
    assert all(len(t) <= 2 and set(t) <= {0, 4, 8} for t in ticks)


@pytest.mark.slow
def test_hume_collect_labels_every_candidate_of_a_branched_think(tmp_path):
    """Counterfactual labels: a rollout of the default checkpoint from a sampled start whose first
    think's three candidates are all tried; the side table holds the think's frame, candidates and
    outcomes, once, and the dataset the episode."""
    from hume.data.labels import LABELS_FILE, read_labelled_thinks
    from sim.collect import collect
    from sim.collect_config import CollectConfig

    argv = ["--config", "configs/collect/rollouts_smoke.yaml", "--episodes_per_task=1", "--max_steps=18"]
    argv += ["--policy.selector=oracle", "--policy.num_candidates=3", "--oracle.try_all=true"]
    summary = collect(parse_config(CollectConfig, [*argv, "--output", str(tmp_path)]))
    assert summary["episodes"] == 1 and summary["labelled_thinks"] == 1
    (row,) = read_labelled_thinks(tmp_path)
    assert (row["episode_index"], row["frame_index"]) == (0, 0)
    assert np.asarray(row["candidates"]).shape == (3, 16, 7) and len(row["outcomes"]) == 3
    assert all(steps == 18 for runs in row["outcomes"] for _, steps in runs), "too short to succeed"
    # A label written twice (a crash before its episode was recorded) is read once.
    with open(tmp_path / LABELS_FILE, "a") as f:
        f.write(json.dumps(row) + "\n")
    assert len(read_labelled_thinks(tmp_path)) == 1
    with pytest.raises(ConfigError, match="source=policy"):
        parse_config(CollectConfig, ["--policy.selector=oracle", "--source=expert"])


@pytest.mark.slow
def test_the_oracle_branches_a_simulator_in_its_own_environment(tmp_path):
    """Meta-World behind the env server: with one candidate the oracle's episode (a branch run,
    the state restored over the wire) is the plain run exactly; with three every branch is kept."""
    base = ["--config", "configs/eval/metaworld_smoke.yaml", "--videos_per_task=0", "--max_steps=18"]
    rows = {}
    for name, extra in {
        "plain": ["--policy.num_candidates=1", "--policy.selector=first"],
        "oracle1": ["--policy.num_candidates=1", "--policy.selector=oracle", "--oracle.thinks=2"],
        "oracle3": ["--policy.num_candidates=3", "--policy.selector=oracle", "--oracle.try_all=true"],
    }.items():
        evaluate(parse_config(EvalConfig, [*base, *extra, f"--output={tmp_path / name}"]))
        rows[name] = json.loads((tmp_path / name / "episodes.jsonl").read_text().splitlines()[0])
    plain, once = rows["plain"], rows["oracle1"]
    assert [r["tick"] for r in once["oracle"]] == [0, 16]
    for key in ("success", "steps", "final_state", "think_values", "switch_deltas"):
        assert once[key] == plain[key], key
    (branch,) = rows["oracle3"]["oracle"]
    assert len(branch["outcomes"]) == 3 and len(rows["oracle3"]["think_values"][0]) == 3
