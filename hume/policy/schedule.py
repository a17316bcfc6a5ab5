"""The control schedule: which chunk System 1 follows, at which offset, when it refines, when the
robot holds, and System 1's state history. Pure and clock-free: ticks and chunk arrivals in,
decisions out. The synchronous loop (hume/policy/sync_loop.py), the evaluator's virtual clock
(sim/latency.py) and the System-1 node all drive this one object, so they make the same decisions
for the same ticks and arrivals.

Each control tick:
    request = schedule.begin(state)        # record the tick's state; a RefineRequest or None
    actions = policy.refine(obs, request.chunk, request.start, schedule.history(),
                            continues=request.continues)   # if a request
    action, kind = schedule.end(actions)   # the action to execute: "refined", "plan" or "hold"
and, whenever a chunk computed from the observation of tick c becomes available,
    schedule.land(chunk, c)

System 1 may also refine ahead of the tick (the System-1 node: a worker thread, so that no network
runs between "observation in hand" and "action out"). Then `lead` > 0 ticks pass between the
observation a refinement reads and the first tick its plan is followed: the tick calls `end()`
without actions, the request stays in flight, and its answer comes back, at any later tick, as
    schedule.land_plan(request, actions)   # None: it failed
A plan is aligned by tick like a chunk: row i is for tick request.tick + i, and it takes over at
tick request.tick + lead (or the first tick after its answer came back, if later). The
synchronous loop is the same with lead 0 (the answer lands within the tick).

Rules:
- A chunk may be followed while its age (ticks since the observation it answers) is below
  `valid = min(ttl, chunk length)`; after that, or before the first chunk, the robot holds (zero
  motion, gripper as last commanded).
- System 1 refines so that a new plan takes over every `refine_every` ticks, or when its refined
  actions run out (or it has none), always from the newest chunk: the request is made `lead`
  ticks before, and one at a time (none while one is in flight). A chunk landing mid-plan is
  taken up at the next refinement, not at once: System 2 may deliver a chunk nearly every tick,
  and refining on each would make System 1 run every tick instead of every `refine_every`
  (measured on the demo: refines on 87% of ticks, tick p50 20 ms).
- It refines the h actions of the chunk that start at the chunk's current offset, or the chunk's
  last h actions when fewer are left (the ones already past are skipped): System 1 always reads a
  real h-step slice, stamped with where it starts.
- A refinement that fails leaves the current plan in place while it is valid (the next tick asks
  again): a failure costs smoothness, not an abrupt stop.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hume.policy.chunk import Chunk
from hume.policy.hold import OPEN_GRIPPER, hold_action
from hume.policy.switches import action_changes


def sends_committed(config) -> bool:
    """Whether System 2 reads the committed actions System 1 sends with each observation (the
    schedule's `committed()`): real-time chunking guides its thinks to continue them, and the
    coherence selector keeps close to them. Where this is False nothing is built or sent, and
    System 2 estimates no delay."""
    return bool(getattr(config, "rtc", False)) or getattr(config, "selector", None) == "coherence"


@dataclass(frozen=True)
class ScheduleConfig:
    chunk_size: int  # H: actions in a chunk
    horizon: int  # h: actions System 1 refines per call
    refine_every: int  # s1_replan_steps
    history: int  # K: robot states System 1 reads
    action_dim: int  # the robot's action width, gripper last (the hold action's)
    ttl: int = 0  # ticks a chunk may be followed after its observation; 0 = the whole chunk
    # Ticks from the observation a refinement reads to the first tick its plan is followed: 0 in
    # the synchronous loop, >= 1 when System 1 refines ahead of the tick (the node's worker).
    lead: int = 0
    # Ticks over which a new plan's arm actions cross-fade from the replaced plan's (0: at once).
    blend: int = 0

    @classmethod
    def of(cls, config, ttl: int = 0, refine_every: int = 0, lead: int = 0) -> ScheduleConfig:
        """From a HumeConfig (the checkpoint's schedule); `ttl` and `refine_every` override it."""
        return cls(
            chunk_size=config.chunk_size,
            horizon=config.s1_horizon,
            refine_every=refine_every or config.s1_replan_steps,
            history=config.system1.state_history,
            ttl=ttl,
            action_dim=config.action_dim,
            lead=lead,
            blend=getattr(config, "switch_blend", 0),
        )

    def valid_steps(self, length: int) -> int:
        return min(self.ttl, length) if self.ttl else length


@dataclass(frozen=True)
class RefineRequest:
    chunk: Chunk
    start: int  # the slice System 1 refines begins here (chunk index)
    skip: int  # refined actions already past (offset - start)
    # What the new plan should continue, aligned with the refined slice [skip + k, action_dim]:
    # the robot actions the plan being replaced would execute from this tick on (its last action
    # when it has run out; k = 0 without one), after `skip` rows of NaN for the ticks already past.
    continues: np.ndarray
    tick: int = 0  # the tick whose observation System 1 refines on: the plan's row 0 is for it
    chunk_tick: int = 0  # the tick of the observation the chunk answers


class ControlSchedule:
    def __init__(self, cfg: ScheduleConfig):
        if cfg.horizon > cfg.chunk_size or min(cfg.horizon, cfg.refine_every, cfg.history) < 1:
            raise ValueError(f"bad schedule {cfg}")
        if min(cfg.lead, cfg.blend) < 0:
            raise ValueError(f"bad schedule {cfg}")
        self.cfg = cfg
        self.reset()

    def reset(self, tick: int = -1) -> None:
        """A new episode; `tick` is the one before its first (a node counts ticks across episodes)."""
        self.tick = tick  # the current tick (begin() advances it)
        self.chunk: Chunk | None = None
        self.chunk_tick = tick
        self.plan: np.ndarray | None = None  # refined robot actions, plan[0] at plan_tick
        self.plan_tick = tick
        self.plan_chunk_tick = tick
        self._history: deque[np.ndarray] = deque(maxlen=self.cfg.history)
        self._request: RefineRequest | None = None  # made this tick
        self.in_flight: RefineRequest | None = None  # made, its plan not taken over yet
        self._answer: np.ndarray | None = None  # the in-flight request's refined actions, once back
        self.failed_refinements = 0
        self.gripper = OPEN_GRIPPER
        self.chunk_switch = False  # the last tick's plan came from a chunk its predecessor did not
        self._new_plan = False  # a plan took over this tick
        self._previous_chunk: int | None = None  # the chunk tick of the last plan followed
        # This episode's (action, kind, whether a new chunk was taken up) per tick.
        self.executed: list[tuple[np.ndarray, str, bool]] = []

    # -- inputs ------------------------------------------------------------------------------------
    def land(self, chunk: Chunk, chunk_tick: int) -> bool:
        """A chunk computed from the observation of `chunk_tick`; older than the current one: ignored."""
        if self.chunk is not None and chunk_tick < self.chunk_tick:
            return False
        self.chunk, self.chunk_tick = chunk, chunk_tick
        return True

    def begin(self, state: np.ndarray) -> RefineRequest | None:
        """Start a tick with the robot's state: it joins the history (one per tick, whatever
        happens next). Returns what System 1 must refine this tick, or None."""
        self.tick += 1
        self._history.append(np.asarray(state, np.float32).reshape(-1))
        self._request = None
        self._take_over()
        if self.chunk is None or self.in_flight is not None:
            return None
        age = self.tick - self.chunk_tick
        length = len(self.chunk.actions)
        if age >= self.cfg.valid_steps(length) or age < 0:
            return None
        # Plans are asked for every refine_every ticks, each taking over `lead` ticks after it is
        # asked; and early enough that the next takes over before the current one runs out.
        since = self.tick - self.plan_tick
        if self.plan is None or since >= self.cfg.refine_every or since + self.cfg.lead >= len(self.plan):
            start = max(0, min(age, length - self.cfg.horizon))
            continues = self._continues(since, self.chunk.actions.shape[1])
            past = np.full((age - start, continues.shape[1]), np.nan, np.float32)
            self._request = RefineRequest(
                self.chunk,
                start,
                age - start,
                np.concatenate([past, continues]),
                tick=self.tick,
                chunk_tick=self.chunk_tick,
            )
            self.in_flight = self._request
        return self._request

    def requests_next(self) -> bool:
        """Whether the next tick's begin() will ask for a refinement (so its observation's images
        are read), with the chunk as it is now: begin() itself answers, on a copy."""
        probe = copy.copy(self)
        probe._history = deque(self._history, maxlen=self.cfg.history)  # begin() appends to it
        state = self._history[-1] if self._history else np.zeros(1, np.float32)
        return probe.begin(state) is not None

    def land_plan(self, request: RefineRequest, refined: np.ndarray | None) -> None:
        """The answer to an in-flight request (None: the refinement failed: the current plan goes on
        while valid, and the next tick asks again). It takes over at tick request.tick + lead."""
        if request is not self.in_flight:
            return  # an answer from before a reset
        if refined is None:
            self.in_flight, self._answer = None, None
            self.failed_refinements += 1
            return
        self._answer = np.asarray(refined, np.float32)

    def _take_over(self, lead: int | None = None) -> bool:
        """Make the in-flight request's answer the plan if it is back and its tick has come."""
        request = self.in_flight
        lead = self.cfg.lead if lead is None else lead
        if request is None or self._answer is None or self.tick < request.tick + lead:
            return False
        left = self.cfg.valid_steps(len(request.chunk.actions)) - (request.tick - request.chunk_tick)
        plan = self._answer[request.skip :][:left]
        self.plan = self._blend(plan, self.tick - request.tick) if self.cfg.blend else plan
        self.plan_tick, self.plan_chunk_tick = request.tick, request.chunk_tick
        self.in_flight, self._answer = None, None
        self._new_plan = True
        return True

    def _blend(self, plan: np.ndarray, first: int) -> np.ndarray:
        """`plan` (row i for tick request.tick + i, followed from row `first` on, this tick) with
        its next `blend` arm actions cross-faded from what the robot was executing: the replaced
        plan's rows for those ticks (its last when it runs out), or the last executed action. Nothing
        to blend from after a hold or at an episode's start."""
        previous = self._continues(self.tick - self.plan_tick, plan.shape[1])
        if not len(previous):
            return plan
        plan = plan.copy()
        n = min(self.cfg.blend, len(plan) - first)
        rows = np.minimum(np.arange(n), len(previous) - 1)
        w = (np.arange(1, n + 1, dtype=np.float32) / (self.cfg.blend + 1))[:, None]
        arm = slice(0, plan.shape[1] - 1)  # the gripper (last) switches at once
        plan[first : first + n, arm] = (1 - w) * previous[rows, arm] + w * plan[first : first + n, arm]
        return plan

    def _continues(self, since: int, width: int) -> np.ndarray:
        if self.plan is not None and since < len(self.plan):
            return self.plan[since:]
        if self.executed and self.executed[-1][1] != "hold":
            return self.executed[-1][0][None]
        return np.zeros((0, width), np.float32)  # nothing to continue

    def committed(self, to_robot: Callable[[Chunk], np.ndarray], tick: int) -> np.ndarray:
        """Robot actions [k, action_dim] this schedule will execute from `tick` on (the current
        tick after end(), the next one before begin()), as far as it knows now (k may be 0): the
        current plan up to its next refinement, then the newest chunk's actions up to its last valid
        step (`to_robot` turns a chunk into robot actions, unrefined: System 1's refinement of them
        is not known yet). What a think on the observation of `tick` must continue (real-time
        chunking)."""
        parts = [np.zeros((0, self.cfg.action_dim), np.float32)]
        if self.plan is not None:
            stop = self.plan_tick + min(len(self.plan), self.cfg.refine_every)
            if tick < stop:
                parts.append(self.plan[tick - self.plan_tick : stop - self.plan_tick])
                tick = stop
        if self.chunk is not None:
            end = self.chunk_tick + self.cfg.valid_steps(len(self.chunk.actions))
            if self.chunk_tick <= tick < end:
                parts.append(to_robot(self.chunk)[tick - self.chunk_tick : end - self.chunk_tick])
        return np.concatenate(parts).astype(np.float32)

    def recent(self) -> np.ndarray | None:
        """[1, action_dim]: the last action executed from a plan (what the coherence selector keeps
        close to), None when the robot has held since the episode began."""
        for action, kind, _ in reversed(self.executed):
            if kind != "hold":
                return np.asarray(action, np.float32)[None]
        return None

    def history(self) -> np.ndarray:
        """[K, state_dim]: the last K states, oldest first (the first repeated at an episode's start)."""
        states = list(self._history)
        return np.stack([states[0]] * (self.cfg.history - len(states)) + states)

    def end(self, refined: np.ndarray | None = None) -> tuple[np.ndarray, str]:
        """Finish the tick: `refined` answers this tick's request within the tick (it takes over
        now, whatever the lead). Without it, this tick's request stays in flight (land_plan
        answers it) when lead > 0, and counts as failed when lead is 0. Returns the action to
        execute and where it came from: "refined" (a new plan's first), "plan" (the current one)
        or "hold"."""
        request, self._request = self._request, None
        if request is not None and (refined is not None or self.cfg.lead == 0):
            self.land_plan(request, refined)  # answered within the tick: it takes over now
            self._take_over(lead=0)
        new_plan, self._new_plan = self._new_plan, False
        kind = "refined" if new_plan else "plan"
        # A plan never outlives its chunk: it was cut to the chunk's valid steps when made.
        i = self.tick - self.plan_tick
        if self.plan is None or i >= len(self.plan):
            action, kind = hold_action(self.gripper, self.cfg.action_dim), "hold"
        else:
            action = self.plan[i]
            self.gripper = float(action[-1])
        self.chunk_switch = kind == "refined" and self.plan_chunk_tick != self._previous_chunk
        if kind != "hold":
            self._previous_chunk = self.plan_chunk_tick
        self.executed.append((action, kind, self.chunk_switch))
        return action, kind

    def switch_changes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This episode's |Δa| at plan switches, within plans, and at chunk switches
        (hume/policy/switches.py)."""
        if not self.executed:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        actions = np.stack([a for a, _, _ in self.executed])
        kinds = np.array([k for _, k, _ in self.executed])
        new_chunk = np.array([c for _, _, c in self.executed])
        hold = kinds == "hold"
        at_switch, within = action_changes(actions, kinds == "refined", hold)
        return at_switch, within, action_changes(actions, new_chunk, hold)[0]

    @property
    def age(self) -> int:
        """Ticks since the observation the current plan's chunk answers (-1 without a plan)."""
        return self.tick - self.plan_chunk_tick if self.plan is not None else -1

    @property
    def observation_age(self) -> int:
        """Ticks since the observation System 1 refined the current plan on (-1 without a plan)."""
        return self.tick - self.plan_tick if self.plan is not None else -1
