"""Config of the whole Hume policy: System 2, value-query head, System 1 and the schedule. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass, field

from hume.models.configuration_system1 import System1Config
from hume.models.configuration_system2 import System2Config
from hume.models.configuration_value_query_head import ValueQueryHeadConfig


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

    # Synchronous schedule (HumePolicy.select_action): think every s2_replan_steps control steps,
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

    # Ablation switches: value head off -> take candidate 0; System 1 off -> execute System 2's chunk.
    use_value_head: bool = True
    use_system1: bool = True

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
        if self.image_size % self.system2.patch_size:
            raise ValueError(
                f"image_size ({self.image_size}) must be a multiple of system2.patch_size "
                f"({self.system2.patch_size})"
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
        if self.rtc_max_guidance <= 0:
            raise ValueError(f"rtc_max_guidance must be > 0, got {self.rtc_max_guidance}")
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
        self._check_agrees("system1.chunk_length", self.system1.chunk_length, "s1_horizon", self.s1_horizon)
        self._check_agrees(
            "system1.s2_chunk_length", self.system1.s2_chunk_length, "chunk_size", self.chunk_size
        )
        if self.s1_horizon > self.chunk_size:
            raise ValueError(f"s1_horizon ({self.s1_horizon}) cannot exceed chunk_size ({self.chunk_size})")
        if self.value_head.action_steps > self.chunk_size:
            raise ValueError(
                f"value_head.action_steps ({self.value_head.action_steps}) cannot exceed chunk_size "
                f"({self.chunk_size})"
            )

    @staticmethod
    def _check_agrees(name: str, value: int, policy_name: str, policy_value: int) -> None:
        if value != policy_value:
            raise ValueError(
                f"{name} ({value}) must equal {policy_name} ({policy_value}); set both to the same value"
            )
