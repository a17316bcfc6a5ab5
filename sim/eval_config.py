"""`hume eval` configuration (import-light: no torch, no simulator)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from hume.config import ConfigError

MODES = ("sync", "async", "deploy")
POLICY_TYPES = ("hume", "replay")
BACKENDS = ("local", "ray")
# Rendered size for policies without an input size of their own (the standard LIBERO evaluation's).
STANDARD_IMAGE_SIZE = 256


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    # "hume": a HumePolicy checkpoint folder; "replay": recorded actions from a LeRobot dataset
    # (episode i of a task replays the dataset's i-th episode of that task).
    type: str = "hume"
    checkpoint: str = "checkpoints/default"
    dataset: str = ""
    # Ablations of a Hume checkpoint (unset: as the checkpoint was saved). use_system1=false acts
    # on System 2's chunk directly; use_value_head=false takes the first of the N candidates.
    use_system1: bool | None = None
    use_value_head: bool | None = None
    num_candidates: int = 0
    # Where the N candidates start (HumeConfig.candidate_t0_spread; unset: the checkpoint's): 0
    # makes every candidate a plain sample from t = 1, so that only the value head's choice differs
    # from N = 1.
    candidate_t0_spread: float | None = None
    # Real-time chunking (HumeConfig.rtc): guide each think to continue the committed actions,
    # and each refinement the plan it replaces over rtc_system1_overlap steps (-1: the
    # checkpoint's; 0: System 2 guided alone), System 2 over rtc_soft_steps committed actions
    # after the delay (unset: the checkpoint's; -1: all).
    rtc: bool | None = None
    rtc_system1_overlap: int = -1
    rtc_soft_steps: int | None = None
    # Where the policy runs: "cpu" or "cuda" (a full-size model wants a GPU), and its dtype
    # ("float32", or "bfloat16" on a GPU). Every worker process loads its own copy.
    device: str = "cpu"
    dtype: str = "float32"

    def overrides(self) -> dict:
        """The HumeConfig fields these switches replace (HumePolicy.from_pretrained keywords)."""
        out = {}
        if self.use_system1 is not None:
            out["use_system1"] = self.use_system1
        if self.use_value_head is not None:
            out["use_value_head"] = self.use_value_head
        if self.num_candidates:
            out["num_candidates"] = self.num_candidates
        if self.candidate_t0_spread is not None:
            out["candidate_t0_spread"] = self.candidate_t0_spread
        if self.rtc is not None:
            out["rtc"] = self.rtc
        if self.rtc_system1_overlap >= 0:
            out["rtc_system1_overlap"] = self.rtc_system1_overlap
        if self.rtc_soft_steps is not None:
            out["rtc_soft_steps"] = self.rtc_soft_steps
        return out


@dataclasses.dataclass(frozen=True)
class LatencyConfig:
    """`async` mode: System 2's chunk becomes visible only `latency` control steps after the
    observation it was computed from, on a virtual clock (deterministic, independent of the CPU)."""

    # Fixed latency in control steps (used when ms_samples is empty).
    steps: int = 4
    # Measured System-2 think times in ms (e.g. from `hume bench`); each think draws one, seeded,
    # and it is converted to control steps at control_hz (rounded up).
    ms_samples: list[float] = dataclasses.field(default_factory=list)
    control_hz: float = 20.0
    # One System-2 worker thinks back to back: a new think starts when the previous chunk lands.
    # think_every > 0 also spaces think starts at least this many control steps apart (with
    # latency 0, back to back would mean a think every step).
    think_every: int = 0
    # Control steps from the observation System 1 refines on to the first step its plan is
    # followed, as on the System-1 node, which refines ahead of the tick in a worker (1 there
    # when a refinement fits in a control period); each episode's first plan is waited for, as
    # the node does before its clock starts. 0: refinements land within their step.
    refine_lead: int = 0


@dataclasses.dataclass(frozen=True)
class RayConfig:
    """`backend=ray`: episodes as Ray tasks (docs/evaluation.md, "Ray")."""

    # Empty: start a private Ray on this machine for the run and stop it after. Otherwise join a
    # running cluster: "auto" (started here with `ray start --head`), "HOST:6379", "ray://HOST:10001".
    address: str = ""
    # The private Ray's CPUs (0 = num_workers * cpus_per_worker); a cluster brings its own.
    num_cpus: float = 0
    # Ray resources each episode task holds. GPUs are requested only with policy.device=cuda;
    # a fraction (0.25) puts that many workers on one GPU.
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0
    # Retries of an episode task whose worker died or that raised (then the run stops, resumable).
    max_retries: int = 2
    # The private Ray's session folder (sockets, worker logs). Empty: DIR/ray, or a short folder in
    # the system temp dir when DIR/ray is too long for Ray's unix sockets (107 bytes).
    temp_dir: str = ""
    # The private Ray's shared-memory object store; episodes move only small rows and videos.
    object_store_mb: int = 256


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    # A LIBERO suite (libero_spatial/object/goal/10/90) or a LIBERO-PRO variant the package provides.
    suite: str = "libero_object"  # the default checkpoint's suite
    # Task ids or names to evaluate; empty = every task of the suite.
    tasks: list[str] = dataclasses.field(default_factory=list)
    # Episodes per task; episode i starts from official initial state (first_init_state + i) mod 50.
    episodes_per_task: int = 50
    first_init_state: int = 0
    mode: str = "sync"
    policy: PolicyConfig = dataclasses.field(default_factory=PolicyConfig)
    latency: LatencyConfig = dataclasses.field(default_factory=LatencyConfig)
    # `deploy` mode: a deploy YAML (configs/deploy/) whose transport and System-1 settings to use;
    # the robot, checkpoint and episodes come from this config. Empty = the runtime's defaults.
    deploy_config: str = ""
    # `deploy` mode: one System-2 process serves `num_workers` System-1 processes (simulator
    # workers) with batched thinks, the way one GPU serves many CPU simulators; false: one
    # deployment (both nodes) per task, one after another.
    policy_server: bool = False
    # Episode e of task t is seeded with hash(seed, t, e): the same regardless of worker or order.
    seed: int = 7
    # Episodes running in parallel, each worker with its own simulator and policy.
    num_workers: int = 2
    # Where workers run: "local" (processes of this machine) or "ray" (Ray tasks: this machine or
    # a cluster, settings under `ray`).
    backend: str = "local"
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)
    # false: no cameras rendered (~10x faster simulation; observations carry state + instruction
    # only, no videos). For policies that need no images, e.g. replaying recorded actions.
    render: bool = True
    # Rendered camera resolution. 0: the policy's own input size (a checkpoint's largest image
    # input; 256 for policies without one), so no pixels are rendered only to be resized away.
    # The standard LIBERO evaluation renders 256x256 and resizes; set 256 to compare with it.
    image_size: int = 0
    # Multisampling, shadows and reflections off: ~2.4x faster rendering but different pixels
    # from the standard renderer, so a policy trained on standard images may score differently.
    fast_render: bool = False
    # Policy steps per episode; 0 = the suite's standard limit (220/280/300/520, 400 for libero_90).
    max_steps: int = 0
    # mp4 videos of the first k episodes of each task (0 = none).
    videos_per_task: int = 1
    # LIBERO-PRO variants of `suite` to evaluate after it, each in DIR/variants/NAME, with a table
    # of success per variant and its drop vs the suite (DIR/robustness.*): "all" (every variant
    # the package ships whole with the suite's number of tasks) or names, comma-separated.
    variants: str = ""
    output: str = "outputs/eval"

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.policy.type not in POLICY_TYPES:
            raise ConfigError(
                f"policy.type must be one of {', '.join(POLICY_TYPES)}, got {self.policy.type!r}"
            )
        if self.policy.type == "replay" and not self.policy.dataset:
            raise ConfigError("policy.type=replay needs policy.dataset: a LeRobot dataset folder")
        if self.policy.type != "hume" and self.mode != "sync":
            raise ConfigError(f"mode {self.mode} needs a Hume policy (think/refine); use mode=sync")
        if self.policy.num_candidates < 0:
            raise ConfigError(
                "policy.num_candidates must be >= 1 (or 0: the checkpoint's), "
                f"got {self.policy.num_candidates}"
            )
        if self.policy.device not in ("cpu", "cuda") or self.policy.dtype not in ("float32", "bfloat16"):
            raise ConfigError(
                f"policy.device must be cpu or cuda and policy.dtype float32 or bfloat16, got "
                f"{self.policy.device!r} / {self.policy.dtype!r}"
            )
        if self.policy.type != "hume" and self.policy.overrides():
            raise ConfigError("policy.use_system1/use_value_head/num_candidates need policy.type=hume")
        for name in ("episodes_per_task", "num_workers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("first_init_state", "max_steps", "videos_per_task", "image_size"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.deploy_config and not self.deploy_config.endswith((".yaml", ".yml")):
            raise ConfigError(f"deploy_config must be a YAML file, got {self.deploy_config!r}")
        if self.policy_server and self.mode != "deploy":
            raise ConfigError("policy_server=true serves System-1 processes: it needs mode=deploy")
        self._validate_backend()
        lat = self.latency
        if lat.steps < 0 or lat.think_every < 0:
            raise ConfigError("latency.steps and latency.think_every must be >= 0")
        if lat.control_hz <= 0 or any(ms < 0 for ms in lat.ms_samples):
            raise ConfigError("latency.control_hz must be > 0 and latency.ms_samples must be >= 0")

    def _validate_backend(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.backend == "ray" and self.mode == "deploy":
            raise ConfigError("mode deploy runs its own two-process runtime: use backend=local")
        r = self.ray
        if r.cpus_per_worker <= 0 or r.gpus_per_worker < 0 or r.num_cpus < 0:
            raise ConfigError("ray.cpus_per_worker must be > 0, ray.gpus_per_worker and ray.num_cpus >= 0")
        if r.max_retries < 0 or r.object_store_mb < 80:
            raise ConfigError("ray.max_retries must be >= 0 and ray.object_store_mb >= 80 (Ray's minimum)")


def render_size(cfg: EvalConfig) -> int:
    """The camera resolution to render: `cfg.image_size`, or when 0 the policy's largest image
    input (System 2's and System 1's sizes in the checkpoint's config.json), since the policy
    resizes to that anyway and rendering costs time in proportion to pixels."""
    if cfg.image_size:
        return cfg.image_size
    if cfg.policy.type != "hume":
        return STANDARD_IMAGE_SIZE
    path = Path(cfg.policy.checkpoint) / "config.json"
    if not path.is_file():
        return STANDARD_IMAGE_SIZE
    model = json.loads(path.read_text())
    sizes = [model.get("image_size"), (model.get("system1") or {}).get("image_size")]
    return max((s for s in sizes if s), default=STANDARD_IMAGE_SIZE)
