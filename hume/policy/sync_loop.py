"""SyncLoop: one episode of the synchronous control loop around a stateless policy.

    loop = SyncLoop(policy)        # or policy.loop, the one policy.select_action drives
    loop.reset(seed=0)
    action = loop.select_action(obs)

The policy's think / refine keep no episode state; this loop holds all of it, as openpi's
action-chunk broker sits beside its stateless policy: the control schedule (which chunk, which
offset, System 1's state history; hume/policy/schedule.py), the episode's random streams
(hume/policy/draws.py), the record of its thinks, and the oracle selector's forced choice. Thinks
land at once (the runtime nodes and the evaluator's async mode drive the same schedule with thinks
that land later). Several loops over one policy run independent episodes.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np

from hume.policy.chunk import think_record
from hume.policy.draws import Draws
from hume.policy.schedule import ControlSchedule, ScheduleConfig, sends_committed
from hume.policy.switches import episode_record

if TYPE_CHECKING:
    from hume.models.configuration_hume import HumeConfig
    from hume.policy.hume_policy import HumePolicy


class SyncLoop:
    def __init__(self, policy: HumePolicy, seed: int = 0):
        self.policy = policy
        self.draws = Draws.seeded(seed)
        self.reset()

    @property
    def config(self) -> HumeConfig:
        return self.policy.config

    def reset(self, seed: int | None = None) -> None:
        """Start an episode: the schedule cleared; `seed` fixes its noise and choices (None: the
        streams draw on from where the last episode left them)."""
        if seed is not None:
            self.draws = Draws.seeded(seed)
        self.forced: tuple[int, int | None] | None = None
        self.schedule = ControlSchedule(ScheduleConfig.of(self.config))
        self.thinks: list[tuple[np.ndarray, int]] = []  # this episode's (values, index), for episode_stats

    def select_action(self, obs: dict) -> np.ndarray:
        """One robot action [action_dim]: think every s2_replan_steps (the chunk lands at once), and
        the control schedule does the rest (refine every s1_replan_steps, System 1's history)."""
        policy, schedule = self.policy, self.schedule
        now = schedule.tick + 1
        if self.thinks_next():
            # The chunk lands at once (delay 0): the committed actions are only continued.
            committed = None
            if sends_committed(self.config):
                committed = schedule.committed(policy.robot_actions, now)
            choice, continuation_seed = self.forced or (None, None)
            self.forced = None
            chunk = policy.think(
                obs, committed=committed, recent=schedule.recent(), draws=self.draws, choice=choice
            )
            if continuation_seed is not None:
                self.draws.noise.manual_seed(continuation_seed)  # a continuation of its own (sim/oracle.py)
            self.thinks.append((chunk.values, chunk.index))
            schedule.land(chunk, now)
        request = schedule.begin(policy.raw_state(obs))
        refined = None
        if request is not None:
            refined = policy.refine(
                obs, request.chunk, request.start, schedule.history(), continues=request.continues
            )
        action, _ = schedule.end(refined)
        return action

    def thinks_next(self) -> bool:
        """Whether the next select_action thinks (every s2_replan_steps, and first of all)."""
        schedule = self.schedule
        if schedule.chunk is None:
            return True
        return schedule.tick + 1 - schedule.chunk_tick >= self.config.s2_replan_steps

    def needs_images_next(self) -> bool:
        """Whether the next select_action reads the observation's images: it thinks, or System 1
        refines. A simulator may skip rendering the other steps' cameras (sim/episode.py)."""
        return self.thinks_next() or self.schedule.requests_next()

    def force_next_choice(self, index: int, continuation_seed: int | None = None) -> None:
        """selector "oracle": the next think draws config.num_candidates candidates and follows
        candidate `index` (others think one plain sample); `continuation_seed` reseeds the noise
        of the thinks after it (None: they draw on as they would have)."""
        if self.config.selector != "oracle":
            raise ValueError(f"a forced choice needs selector 'oracle', not {self.config.selector!r}")
        if not 0 <= index < self.config.num_candidates:
            raise ValueError(f"candidate {index} of {self.config.num_candidates}")
        self.forced = (index, continuation_seed)

    def save(self) -> dict:
        """The episode so far (schedule, random streams, thinks, forced choice), by value: with the
        simulator's saved state, a branch point (sim/oracle.py)."""
        return {
            "draws": self.draws.save(),
            **copy.deepcopy({"schedule": self.schedule, "thinks": self.thinks, "forced": self.forced}),
        }

    def restore(self, saved: dict) -> None:
        self.draws.restore(saved["draws"])
        self.schedule, self.thinks, self.forced = copy.deepcopy(
            (saved["schedule"], saved["thinks"], saved["forced"])
        )

    def episode_stats(self) -> dict:
        """The record of the episode so far: action changes at plan switches, and every think's
        candidate values with the chosen index (how the critic ranks, per episode)."""
        return {**episode_record(*self.schedule.switch_changes()), **think_record(self.thinks)}
