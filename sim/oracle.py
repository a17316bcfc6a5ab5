"""The oracle selector: the simulator tries every candidate and the policy follows one that works.

At each of an episode's first `oracle.thinks` thinks (or, with `oracle.think_prob` < 1, that
many thinks drawn at random), the episode is branched: from the saved
simulator and policy state, candidate i is followed (through System 1, as the schedule would) and
the policy runs on with one plain sample per think, to the episode's end or a horizon, once per
continuation seed; then everything is restored and the candidate that succeeded most often is
taken (ties: the lowest index). The branches decide nothing else, so with N = 1 the episode is
exactly the plain run. What it measures: how much *any* selector could give with these
candidates — the headroom of thinking — before any critic is trained.

The policy side of the protocol (the synchronous loop, hume/policy/sync_loop.py, implements it
with selector "oracle"): `thinks_next()`, `force_next_choice(index, continuation_seed)`, `save()` /
`restore(saved)`, `schedule.chunk` and `config.num_candidates`; the simulator side: LiberoEnv's
`get_state()` / `set_state(saved)`.
"""

from __future__ import annotations

import numpy as np

from sim.episode import needs_images_next, reset_policy
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
        obs, success = env.step(policy.select_action(obs), render=needs_images_next(policy))
    return success, env.steps


def branch(env, policy, obs: dict, oracle: OracleConfig, seed: int, think: int) -> dict:
    """Try the candidates of the think about to happen; leaves env and policy as they were.
    Returns the record: the tick, per candidate tried its outcomes [[success, steps], ...] (one
    per continuation seed), and the chosen index."""
    tick, saved_env, saved_policy = env.steps, env.get_state(), policy.save()
    outcomes: list[list[list[int]]] = []
    for i in range(policy.config.num_candidates):
        runs = []
        for m in range(oracle.seeds):
            env.set_state(saved_env)
            policy.restore(saved_policy)
            policy.force_next_choice(i, continuation_seed(seed, think, m))
            success, steps = rollout(env, policy, obs, oracle.horizon)
            runs.append([int(success), steps])
        outcomes.append(runs)
        if not oracle.try_all and all(s for s, _ in runs):
            break  # a later candidate can at best tie, and ties go to the lower index
    env.set_state(saved_env)
    policy.restore(saved_policy)
    rates = [np.mean([s for s, _ in runs]) for runs in outcomes]
    return {"tick": tick, "outcomes": outcomes, "chosen": int(np.argmax(rates))}


class OracleActor:
    """A policy with selector "oracle" acting in `env`: `select_action` branches the episode at its
    branch points, then follows the chosen candidate. Drives like any policy (sim/episode.py's
    run_episode, sim/collect.py's record_episode); `records` holds this episode's branch points,
    each with the think's candidates (normalised, [N, H, action_dim])."""

    def __init__(self, policy, env, oracle: OracleConfig):
        self.policy, self.env, self.oracle = policy, env, oracle
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        reset_policy(self.policy, seed)
        self.seed = 0 if seed is None else seed
        # Which thinks branch: each with probability think_prob, drawn from the episode's seed.
        self.draws = np.random.default_rng([self.seed, 2])
        self.records: list[dict] = []

    @property
    def schedule(self):
        return self.policy.schedule

    def select_action(self, obs: dict) -> np.ndarray:
        if not self._branches_here():
            return self.policy.select_action(obs)
        record = branch(self.env, self.policy, obs, self.oracle, self.seed, len(self.records))
        self.policy.force_next_choice(record["chosen"])
        action = self.policy.select_action(obs)
        record["candidates"] = self.policy.schedule.chunk.candidates
        self.records.append(record)
        return action

    def needs_images_next(self) -> bool:
        return needs_images_next(self.policy)  # sim/episode.py's: True for a policy that does not say

    def _branches_here(self) -> bool:
        if len(self.records) >= self.oracle.thinks or not self.policy.thinks_next():
            return False
        return self.oracle.think_prob >= 1.0 or self.draws.random() < self.oracle.think_prob
