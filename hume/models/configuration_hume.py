"""Config of the whole Hume policy: System 2, value-query head, System 1 and the schedule. Torch-free."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import draccus

from hume.config import ConfigError
from hume.models.configuration_system1 import System1Config
from hume.models.configuration_system2 import System2Config
from hume.models.configuration_value_query_head import ValueQueryHeadConfig

# Keys System 1's config held before it took them from the policy's: {its key: the HumeConfig field}.
SYSTEM1_COPIES = {
    "cameras": "cameras",
    "image_size": "image_size",
    "chunk_length": "s1_horizon",
    "s2_chunk_length": "chunk_size",
}
# Its widths then: now the policy's s1_state_dim / s1_action_dim, which system1.padded_widths picks.
SYSTEM1_WIDTHS = ("state_dim", "action_dim")
# HumeConfig.selector's choices (hume/policy/selectors.py).
SELECTORS = ("value", "first", "random", "coherence", "consensus", "lcb", "softmax", "gated", "oracle")
# HumeConfig.dtype's choices.
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class HumeConfig:
    """Defaults are the tiny CPU model (configs/model/tiny.yaml); configs/model/full.yaml has the paper's."""

    system2: System2Config = field(default_factory=System2Config)
    value_head: ValueQueryHeadConfig = field(default_factory=ValueQueryHeadConfig)
    system1: System1Config = field(default_factory=System1Config)

    # Shapes shared by the three networks and the robot.
    chunk_size: int = 16  # H: actions per System-2 chunk (LIBERO: 16)
    s1_horizon: int = 8  # h: actions System 1 refines per call (H / 2)
    action_dim: int = 7  # robot action: eef delta position 3, delta axis-angle 3, gripper 1
    state_dim: int = 8  # robot state: eef position 3, axis-angle 3, gripper qpos 2
    max_action_dim: int = 32  # System 2 pads actions to this width (pi0 convention)
    max_state_dim: int = 32  # and the state
    cameras: tuple[str, ...] = ("agentview", "wrist")  # System 2's image tokens, in this order
    image_size: int = 64  # System 2's input resolution (full: 224)
    # Image preprocessing. false: a square bilinear resize with antialiasing (our models). true: keep
    # the aspect ratio, bilinear without antialiasing, pad top and left with black (pi0 / the authors').
    resize_with_padding: bool = False
    # The gripper output a -> 1 - 2a: the authors' LIBERO checkpoints predict it in [0, 1] with
    # 1 = open; LIBERO's controller takes -1 = open, +1 = closed.
    postprocess_gripper: bool = False

    # Synchronous schedule (SyncLoop.select_action): think every s2_replan_steps control steps,
    # refine every s1_replan_steps.
    s2_replan_steps: int = 16
    s1_replan_steps: int = 8

    # Value-guided thinking: N candidates.
    # candidate_schedule "spread": candidate i starts at t0_i (spread evenly from 1 down to
    # 1 - candidate_t0_spread) with velocity temperature T_i (spread from 1 to
    # candidate_temperature_min) and integrates to theta2 in equal steps; candidate 0 is always the
    # plain sample (t0 = 1, T = 1).
    # "hume" (the authors' select_action): t0_i = lo + (hi - lo) * i / N over candidate_t0_range, T_i
    # likewise over candidate_temperature_range, fixed steps dt = -1 / system2.num_steps taken while
    # t >= theta2 + |dt| / 2 (so candidates take 9 or 10 steps and stop near, not at, theta2).
    num_candidates: int = 5
    candidate_schedule: str = "spread"
    candidate_t0_spread: float = 0.1
    candidate_temperature_min: float = 1.0
    candidate_t0_range: tuple[float, float] = (0.9, 1.0)
    candidate_temperature_range: tuple[float, float] = (1.0, 2.0)
    # System 2 stops denoising at flow time theta2 (partial denoising); System 1 starts its cascade
    # from the chunk's slice at flow time system1.theta1 (ours: the same time; the authors' LIBERO
    # checkpoints: theta2 = 0, System 2 denoises fully, and system1.theta1 = 1). With System 1 off,
    # System 2 always denoises to 0.
    theta2: float = 0.1

    # Real-time chunking (docs/models.md): a think that is given the robot actions already committed
    # from its observation's tick on, and the delay d (control steps before its chunk can be
    # followed), guides every candidate to keep the first d of them and to continue the rest
    # with weights decaying to 0, so the robot's switch to the new chunk is smooth. rtc_max_guidance
    # caps the guidance gain (the paper's beta). false: committed actions are ignored. Off by
    # default: it smooths switches, but its effect on success is not settled (docs/results.md).
    rtc: bool = False
    rtc_max_guidance: float = 5.0
    # How many committed actions after the delay the new chunk is softly guided to continue;
    # -1: all of them (the paper's soft mask over the whole overlap). 0 by measurement: with System 1
    # guided, freezing the delay alone makes switches as smooth (switch/within p90 1.09 at a delay
    # of 8) without the success the whole overlap cost (docs/results.md).
    rtc_soft_steps: int = 0
    # With rtc, System 1's cascade is guided the same way to continue the plan it replaces over
    # this many steps (weights decaying from the first; arm dims only, so the gripper still
    # switches when the new plan says so): a new plan starts where the robot is going. 0: unguided.
    rtc_system1_overlap: int = 4
    # System 1's gain cap. Its cascade spans only t in (0, theta1], where the guidance gain
    # (flow.guided_velocity) is 9-19 for theta1 = 0.1 in 2 steps; capped at rtc_max_guidance (5)
    # it moves the first action only ~30% of the way to the plan it continues, at 20 ~65%
    # (tests/test_policy.py's refine case).
    rtc_system1_max_guidance: float = 20.0

    # Ticks over which a new plan takes over from the one it replaces (the control schedule,
    # hume/policy/schedule.py): its first switch_blend arm actions cross-fade linearly from what the
    # replaced plan would have executed (weights 1/(n+1) .. n/(n+1)); the gripper switches at once.
    # No network and no guidance: the robot's command does not jump where a plan switches.
    # 0: off, a new plan takes over at once. The shipped checkpoint sets 1: half the jump, the same
    # successes on 100 paired states, where 3 solved 9 fewer (docs/deployment.md, "Smooth switches").
    switch_blend: int = 0

    # Which candidate a think follows (hume/policy/selectors.py): "value" (the highest pessimistic
    # Q, the paper's), "first" (candidate 0: the plain sample), "random", "coherence" (closest to
    # the actions the robot is committed to or just executed; no critic), "consensus" (closest to
    # the candidates' mean: the one the samples agree with; no critic), "lcb" (the highest
    # mean - lcb_k * std over the critic ensemble), "softmax" (drawn with probability
    # proportional to exp(Q / softmax_temperature)), "gated" (candidate 0 unless the best Q beats
    # its Q by more than gated_margin), "oracle" (simulation only: `hume eval` tries every
    # candidate in a copy of the simulator and takes one that succeeds; docs/evaluation.md).
    selector: str = "value"
    lcb_k: float = 2.0
    softmax_temperature: float = 0.1
    gated_margin: float = 0.1

    # What System 2 and System 1 hold their weights and compute in: "float32", "bfloat16" or
    # "float16" (a GPU's choice; this CPU has no native half arithmetic). The value-query head
    # stays float32: it ranks N candidates whose Q-values can be a few hundredths apart (with a bf16
    # System 2 the ranking matched float32's in 12 of 12 thinks, with a bf16 head too in 11 of 12;
    # docs/benchmarks.md), and it is small. So do the normalisation, the rotary tables, the flow's
    # state (noise, times, Euler steps) and the returned actions. Chosen at load:
    # HumePolicy.from_pretrained(path, dtype="bfloat16"); training keeps float32 weights.
    dtype: str = "float32"

    # Ablation switches: value head off -> not run, and the selectors that rank by it take candidate
    # 0; System 1 off -> execute System 2's chunk.
    use_value_head: bool = True
    use_system1: bool = True

    # The fast inference path (hume/policy/fast_path.py): think's and refine's tensor work runs as
    # frozen traced graphs, the same operators without Python and module overhead, so the results
    # are the eager ones bit for bit; traced at load (HumePolicy.from_pretrained), and again for a
    # new input shape. false: plain eager modules.
    compile: bool = False

    def validate(self) -> None:
        self.system2.validate()
        self.value_head.validate()
        self.system1.validate()
        positive = (
            "chunk_size",
            "s1_horizon",
            "action_dim",
            "state_dim",
            "image_size",
            "s2_replan_steps",
            "s1_replan_steps",
            "num_candidates",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.action_dim > self.max_action_dim or self.state_dim > self.max_state_dim:
            raise ValueError(
                f"action_dim/state_dim ({self.action_dim}/{self.state_dim}) cannot exceed "
                f"max_action_dim/max_state_dim ({self.max_action_dim}/{self.max_state_dim})"
            )
        if not self.cameras:
            raise ValueError("cameras must name at least one camera")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras has duplicates: {self.cameras}")
        for network in ("system2", "system1"):
            patch = getattr(self, network).patch_size
            if self.image_size % patch:
                raise ValueError(
                    f"image_size ({self.image_size}) must be a multiple of {network}.patch_size ({patch})"
                )
        if self.s2_replan_steps > self.chunk_size:
            raise ValueError(
                f"s2_replan_steps ({self.s2_replan_steps}) cannot exceed chunk_size ({self.chunk_size}): "
                "the policy would run out of actions before thinking again"
            )
        if self.s1_replan_steps > self.s1_horizon:
            raise ValueError(
                f"s1_replan_steps ({self.s1_replan_steps}) cannot exceed s1_horizon ({self.s1_horizon})"
            )
        last_offset = (self.s2_replan_steps - 1) // self.s1_replan_steps * self.s1_replan_steps
        if last_offset + self.s1_replan_steps > self.chunk_size:
            raise ValueError(
                f"with s2_replan_steps={self.s2_replan_steps} and s1_replan_steps={self.s1_replan_steps} the "
                f"last refinement starts {last_offset} steps into a chunk of {self.chunk_size}: "
                "not enough actions"
            )
        if self.rtc_soft_steps < -1:
            raise ValueError(f"rtc_soft_steps must be >= -1 (-1: all), got {self.rtc_soft_steps}")
        if self.switch_blend < 0:
            raise ValueError(f"switch_blend must be >= 0, got {self.switch_blend}")
        if self.rtc_system1_overlap < 0:
            raise ValueError(f"rtc_system1_overlap must be >= 0, got {self.rtc_system1_overlap}")
        if min(self.rtc_max_guidance, self.rtc_system1_max_guidance) <= 0:
            raise ValueError(
                "rtc_max_guidance and rtc_system1_max_guidance must be > 0, got "
                f"{self.rtc_max_guidance} and {self.rtc_system1_max_guidance}"
            )
        self._validate_selector()
        if self.candidate_schedule not in ("spread", "hume"):
            raise ValueError(
                f"candidate_schedule must be 'spread' or 'hume', got {self.candidate_schedule!r}"
            )
        for name in ("candidate_t0_range", "candidate_temperature_range"):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi:
                raise ValueError(f"{name} must be (lo, hi) with 0 < lo <= hi, got {(lo, hi)}")
        if self.candidate_t0_range[1] > 1.0:
            raise ValueError(f"candidate_t0_range cannot start above t = 1, got {self.candidate_t0_range}")
        if not 0.0 <= self.candidate_t0_spread < 1.0:
            raise ValueError(f"candidate_t0_spread must be in [0, 1), got {self.candidate_t0_spread}")
        if self.candidate_temperature_min <= 0:
            raise ValueError(f"candidate_temperature_min must be > 0, got {self.candidate_temperature_min}")
        if not 0.0 <= self.theta2 < 1.0 - self.candidate_t0_spread:
            raise ValueError(
                f"theta2 ({self.theta2}) must be in [0, 1 - candidate_t0_spread): every candidate must "
                "denoise some way before stopping"
            )
        if self.s1_horizon > self.chunk_size:
            raise ValueError(f"s1_horizon ({self.s1_horizon}) cannot exceed chunk_size ({self.chunk_size})")
        if self.value_head.action_steps > self.chunk_size:
            raise ValueError(
                f"value_head.action_steps ({self.value_head.action_steps}) cannot exceed chunk_size "
                f"({self.chunk_size})"
            )

    def _validate_selector(self) -> None:
        if self.selector not in SELECTORS:
            raise ValueError(f"selector must be one of {', '.join(SELECTORS)}, got {self.selector!r}")
        if self.lcb_k < 0 or self.softmax_temperature <= 0 or self.gated_margin < 0:
            raise ValueError(
                "lcb_k and gated_margin must be >= 0 and softmax_temperature > 0, got "
                f"{self.lcb_k}, {self.gated_margin} and {self.softmax_temperature}"
            )

    @property
    def s1_state_dim(self) -> int:
        """The state width System 1 reads: max_state_dim with system1.padded_widths, else state_dim."""
        return self.max_state_dim if self.system1.padded_widths else self.state_dim

    @property
    def s1_action_dim(self) -> int:
        """The action width System 1 refines: max_action_dim with system1.padded_widths, else action_dim."""
        return self.max_action_dim if self.system1.padded_widths else self.action_dim

    @classmethod
    def from_dict(cls, raw: dict) -> HumeConfig:
        """A config as plain data (config.json), also as older code saved it, when System 1 and the
        value head kept copies of the policy's shapes: a copy that agrees is dropped, one that
        disagrees is a ConfigError naming both keys (no config of today's fits its weights)."""
        system1 = dict(raw.get("system1") or {})
        value_head = dict(raw.get("value_head") or {})
        copies = {key: system1.pop(key) for key in SYSTEM1_COPIES if key in system1}
        widths = {key: system1.pop(key) for key in SYSTEM1_WIDTHS if key in system1}
        input_projection = value_head.pop("input_projection", True)
        config = draccus.decode(cls, {**raw, "system1": system1, "value_head": value_head})
        for key, value in copies.items():
            parent = SYSTEM1_COPIES[key]
            if (tuple(value) if isinstance(value, list) else value) != getattr(config, parent):
                raise ConfigError(
                    f"system1.{key} ({value}) disagrees with {parent} ({getattr(config, parent)}): System 1 "
                    f"takes it from {parent} now, so the two must agree (drop system1.{key}, or set {parent} "
                    f"to {value} if that is what the weights were trained with)"
                )
        if widths:
            robot = {"state_dim": config.state_dim, "action_dim": config.action_dim}
            padded = {"state_dim": config.max_state_dim, "action_dim": config.max_action_dim}
            if "padded_widths" not in system1 and all(widths[k] == padded[k] != robot[k] for k in widths):
                config = dataclasses.replace(
                    config, system1=dataclasses.replace(config.system1, padded_widths=True)
                )
            takes = padded if config.system1.padded_widths else robot
            if any(widths[k] != takes[k] for k in widths):
                given = ", ".join(f"{k} {v}" for k, v in widths.items())
                raise ConfigError(
                    f"system1's {given} agree with neither the robot's state_dim/action_dim "
                    f"({config.state_dim}/{config.action_dim}) nor the padded max_state_dim/max_action_dim "
                    f"({config.max_state_dim}/{config.max_action_dim}, system1.padded_widths: true): "
                    "System 1 takes its widths from those now"
                )
        if not input_projection:
            if config.value_head.width != config.system2.vlm_width:
                raise ConfigError(
                    f"value_head.width ({config.value_head.width}) disagrees with system2.vlm_width "
                    f"({config.system2.vlm_width}) although value_head.input_projection is false (the head "
                    "reads System 2's prefix embeddings directly; today: value_head.width null)"
                )
            config = dataclasses.replace(
                config, value_head=dataclasses.replace(config.value_head, width=None)
            )
        return config
