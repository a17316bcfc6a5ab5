"""The oracle selector: the simulator tries every candidate and the policy follows one that works.

At each of an episode's first `oracle.thinks` thinks, the episode is branched: from the saved
simulator and policy state, candidate i is followed (through System 1, as the schedule would) and
the policy runs on with one plain sample per think, to the episode's end or a horizon, once per
continuation seed; then everything is restored and the candidate that succeeded most often is
taken (ties: the lowest index). The branches decide nothing else, so with N = 1 the episode is
exactly the plain run. What it measures: how much *any* selector could give with these
candidates — the headroom of thinking — before any critic is trained.

The policy side of the protocol (HumePolicy implements it with selector "oracle"): `thinks_next()`,
`force_next_choice(index, continuation_seed)`, `save_episode()` / `restore_episode(saved)`, and
`config.num_candidates`; the simulator side: LiberoEnv's `get_state()` / `set_state(saved)`.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from hume.constants import STATE_KEY
from hume.data.episode_frame import episode_frame
from hume.data.video import VideoWriter
from sim.episode import CONTROL_HZ, EpisodeResult, reset_policy, step_marks
from sim.eval_config import OracleConfig


def continuation_seed(seed: int, think: int, m: int) -> int | None:
    """Continuation m of a branch point: m = 0 draws on as the plain run would (None), the others
    from a seed of their own, the same for every candidate."""
    if m == 0:
        return None
    return int(np.random.SeedSequence([seed, think, m]).generate_state(1)[0])


def rollout(env, policy, obs: dict, horizon: int) -> tuple[bool, int]:
    """Run on to success, the step limit or `horizon` steps from here (0: no horizon); returns
    (success, the episode's step count at the end)."""
    start, success = env.steps, False
    while not success and not env.truncated and not (horizon and env.steps - start >= horizon):
        obs, success = env.step(policy.select_action(obs))
    return success, env.steps


def branch(env, policy, obs: dict, oracle: OracleConfig, seed: int, think: int) -> dict:
    """Try the candidates of the think about to happen; leaves env and policy as they were.
    Returns the record: the tick, per candidate tried its outcomes [[success, steps], ...] (one
    per continuation seed), and the chosen index."""
    tick, saved_env, saved_policy = env.steps, env.get_state(), policy.save_episode()
    outcomes: list[list[list[int]]] = []
    for i in range(policy.config.num_candidates):
        runs = []
        for m in range(oracle.seeds):
            env.set_state(saved_env)
            policy.restore_episode(saved_policy)
            policy.force_next_choice(i, continuation_seed(seed, think, m))
            success, steps = rollout(env, policy, obs, oracle.horizon)
            runs.append([int(success), steps])
        outcomes.append(runs)
        if not oracle.try_all and all(s for s, _ in runs):
            break  # a later candidate can at best tie, and ties go to the lower index
    env.set_state(saved_env)
    policy.restore_episode(saved_policy)
    rates = [np.mean([s for s, _ in runs]) for runs in outcomes]
    return {"tick": tick, "outcomes": outcomes, "chosen": int(np.argmax(rates))}


def run_oracle_episode(
    env,
    policy,
    init_state: int,
    oracle: OracleConfig,
    seed: int,
    video: Path | None = None,
) -> tuple[EpisodeResult, list[dict]]:
    """sim/episode.py's `run_episode` with the oracle's branching at the first thinks; also returns
    each branch point's record."""
    t0 = time.monotonic()
    obs = env.reset(init_state)
    reset_policy(policy, seed)
    success, records = False, []
    with VideoWriter(video, CONTROL_HZ) if video is not None else nullcontext() as film:
        while not success and not env.truncated:
            if len(records) < oracle.thinks and policy.thinks_next():
                record = branch(env, policy, obs, oracle, seed, len(records))
                records.append(record)
                policy.force_next_choice(record["chosen"], continuation_seed(seed, len(records) - 1, 0))
            action = policy.select_action(obs)
            if film is not None:
                film.append(episode_frame(obs, env.steps, **step_marks(policy)))
            obs, success = env.step(action)
        if film is not None:
            film.append(episode_frame(obs, env.steps))
    result = EpisodeResult(
        success=success,
        steps=env.steps,
        seconds=time.monotonic() - t0,
        final_state=[round(float(x), 5) for x in obs[STATE_KEY]],
    )
    return result, records
