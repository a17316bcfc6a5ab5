"""`hume collect` configuration (import-light: no torch, no simulator)."""

from __future__ import annotations

import dataclasses

from hume.config import ConfigError
from sim.eval_config import EvalPolicyConfig, OracleConfig
from sim.experts.base import ExpertNoise

INIT_STATES = ("official", "sampled")
SOURCES = ("expert", "policy")


@dataclasses.dataclass(frozen=True)
class CollectConfig:
    # A LIBERO suite (libero_spatial, libero_object, libero_goal, ...).
    suite: str = "libero_object"
    # Task ids or names to record; empty = every task of the suite that an expert handles.
    tasks: list[str] = dataclasses.field(default_factory=list)
    # Who acts: "expert" (the scripted expert, with `noise`) or "policy" (a trained HumePolicy,
    # `policy.checkpoint`, with its own System 2 candidate noise): rollouts labelled by the
    # simulator's success check, failures included.
    source: str = "expert"
    policy: EvalPolicyConfig = dataclasses.field(default_factory=EvalPolicyConfig)
    # With source=policy and policy.selector=oracle: counterfactual labels. At branch points
    # (oracle.thinks of them, each think with probability oracle.think_prob) every candidate is
    # tried from the saved simulator state and its outcome recorded beside the dataset
    # (meta/labelled_thinks.jsonl: the think's frame, its candidates and their outcomes).
    oracle: OracleConfig = dataclasses.field(default_factory=OracleConfig)
    # Where episodes start. "official": episode k from the task's official initial state
    # (first_init_state + k) mod 50, the states evaluation uses. "sampled": from a new state drawn
    # by the task's own placement sampler, seeded by (seed, task, k): held out from evaluation.
    init_states: str = "official"
    episodes_per_task: int = 10
    first_init_state: int = 0
    # Record episode k of every task before episode k+1 of any: a partial collection then covers
    # all tasks, and a resumed run may raise episodes_per_task (the plan grows, nothing moves).
    interleave_tasks: bool = False
    # Steps per episode; 0 = the suite's standard limit (220/280/300/520).
    max_steps: int = 0
    # Render and record both cameras (agentview, wrist) at this square resolution. cameras=false
    # records state and actions only (~10x faster; for measuring the experts).
    cameras: bool = True
    image_size: int = 128
    # Multisampling, shadows and reflections off: ~2.4x faster rendering, slightly different pixels.
    fast_render: bool = True
    noise: ExpertNoise = dataclasses.field(default_factory=ExpertNoise)
    # Episode e of task t is seeded from (seed, t, e): the same whatever the worker or the order.
    seed: int = 0
    # Worker processes, each with its own simulator.
    workers: int = 1
    # Frames per second written to the dataset (LIBERO's control rate).
    fps: int = 20
    output: str = "outputs/collect"

    def validate(self) -> None:
        for name in ("episodes_per_task", "workers", "image_size", "fps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.init_states not in INIT_STATES:
            raise ConfigError(
                f"init_states must be one of {', '.join(INIT_STATES)}, got {self.init_states!r}"
            )
        if self.source not in SOURCES:
            raise ConfigError(f"source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.source == "policy" and (self.policy.type != "hume" or not self.policy.checkpoint):
            raise ConfigError(
                "source=policy records a Hume checkpoint: policy.type=hume, policy.checkpoint=DIR"
            )
        if self.policy.selector == "oracle" and self.source != "policy":
            raise ConfigError("policy.selector=oracle labels a policy's candidates: it needs source=policy")
        if self.source == "policy" and not self.cameras:
            raise ConfigError("source=policy needs cameras=true: the policy acts on the camera images")
        for name in ("first_init_state", "max_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        try:
            self.noise.validate()
        except ValueError as e:
            raise ConfigError(f"noise: {e}") from None
