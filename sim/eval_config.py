"""`hume eval` configuration (import-light: no torch, no simulator)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from hume.config import ConfigError
from hume.models.configuration_hume import DTYPES, SELECTORS

MODES = ("sync", "async", "deploy")
POLICY_TYPES = ("hume", "replay")
BACKENDS = ("local", "ray")
# Rendered size for policies without an input size of their own (the standard LIBERO evaluation's).
STANDARD_IMAGE_SIZE = 256


# EvalPolicyConfig's fields that replace the HumeConfig field of the same name; unset (None): the
# checkpoint's value.
HUME_OVERRIDES = (
    "dtype",
    "use_system1",
    "use_value_head",
    "num_candidates",
    "candidate_t0_spread",
    "rtc",
    "rtc_system1_overlap",
    "rtc_soft_steps",
    "switch_blend",
    "selector",
    "lcb_k",
    "softmax_temperature",
    "gated_margin",
    "compile",
)
# How evaluations saved before that convention said "the checkpoint's": {field: old value}. (dtype
# was "float32" by default before it became an override, when every checkpoint was float32.)
LEGACY_UNSET = {"num_candidates": 0, "rtc_system1_overlap": -1, "dtype": "float32"}


def read_saved_policy(saved: dict) -> dict:
    """A saved evaluation's `policy` section in today's convention (None for the checkpoint's)."""
    return {k: None if k in LEGACY_UNSET and v == LEGACY_UNSET[k] else v for k, v in saved.items()}


@dataclasses.dataclass(frozen=True)
class EvalPolicyConfig:
    """The policy an evaluation (or a collection) runs, `policy:` in eval configs: a checkpoint and
    its ablation switches. Not the runtime's `PolicyConfig` (hume/runtime/config.py), which picks
    the policy class the deployment nodes serve."""

    # "hume": a HumePolicy checkpoint folder; "replay": recorded actions from a LeRobot dataset
    # (episode i of a task replays the dataset's i-th episode of that task).
    type: str = "hume"
    checkpoint: str = "checkpoints/default"
    dataset: str = ""
    # Ablations of a Hume checkpoint (unset: as the checkpoint was saved). use_system1=false acts
    # on System 2's chunk directly; use_value_head=false takes the first of the N candidates.
    use_system1: bool | None = None
    use_value_head: bool | None = None
    num_candidates: int | None = None
    # Where the N candidates start (HumeConfig.candidate_t0_spread; unset: the checkpoint's): 0
    # makes every candidate a plain sample from t = 1, so that only the value head's choice differs
    # from N = 1.
    candidate_t0_spread: float | None = None
    # Real-time chunking (HumeConfig.rtc): guide each think to continue the committed actions,
    # and each refinement the plan it replaces over rtc_system1_overlap steps (0: System 2 guided
    # alone), System 2 over rtc_soft_steps committed actions after the delay (-1: all).
    rtc: bool | None = None
    rtc_system1_overlap: int | None = None
    rtc_soft_steps: int | None = None
    # Ticks over which a new plan cross-fades from the one it replaces (HumeConfig.switch_blend).
    switch_blend: int | None = None
    # Which candidate a think follows (HumeConfig.selector: value, first, random, coherence,
    # consensus, lcb, softmax, gated, oracle) and the selectors' parameters; unset: the
    # checkpoint's. "oracle" tries the candidates in the simulator (settings under `oracle`, sync
    # mode only).
    selector: str | None = None
    lcb_k: float | None = None
    softmax_temperature: float | None = None
    gated_margin: float | None = None
    # Where the policy runs: "cpu" or "cuda" (a full-size model wants a GPU), and its dtype
    # (HumeConfig.dtype: float32, bfloat16 or float16, the last two for a GPU; unset: the
    # checkpoint's). Every worker process loads its own copy.
    device: str = "cpu"
    dtype: str | None = None
    # The fast inference path (HumeConfig.compile: frozen traced graphs, exact); unset: the checkpoint's.
    compile: bool | None = None

    def overrides(self) -> dict:
        """The HumeConfig fields these switches replace (HumePolicy.from_pretrained keywords)."""
        return {name: getattr(self, name) for name in HUME_OVERRIDES if getattr(self, name) is not None}


@dataclasses.dataclass(frozen=True)
class OracleConfig:
    """`policy.selector=oracle`: at the first `thinks` thinks of an episode, every candidate is
    executed from the saved simulator state (through System 1, as the schedule would) and the
    policy continues with one plain sample per think, `seeds` times with continuation noise shared
    across candidates, to the episode's end or `horizon` steps; the candidate that succeeds most
    often is followed (ties: the lowest index, so candidate 0 when it is among the best)."""

    thinks: int = 1
    seeds: int = 1
    # Steps a branch runs after the think (0: to the episode's step limit); a branch that has not
    # succeeded by then counts as a failure.
    horizon: int = 0
    # false: stop trying candidates once one succeeded on every seed (none after it can beat it);
    # true: try all, so that every candidate's outcome is recorded.
    try_all: bool = False
    # Each think is a branch point with this probability (drawn from the episode's seed) until
    # `thinks` of them: 1 branches the first `thinks` thinks; less spreads them over the episode
    # (labelled thinks for training a critic, `hume collect`).
    think_prob: float = 1.0


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
    policy: EvalPolicyConfig = dataclasses.field(default_factory=EvalPolicyConfig)
    oracle: OracleConfig = dataclasses.field(default_factory=OracleConfig)
    latency: LatencyConfig = dataclasses.field(default_factory=LatencyConfig)
    # `deploy` mode: a deploy YAML (configs/deploy/) whose transport, control and serving settings to use;
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
        if self.policy.num_candidates is not None and self.policy.num_candidates < 1:
            raise ConfigError(
                "policy.num_candidates must be >= 1 (unset: the checkpoint's), got "
                f"{self.policy.num_candidates}"
            )
        if self.policy.device not in ("cpu", "cuda") or self.policy.dtype not in (None, *DTYPES):
            raise ConfigError(
                f"policy.device must be cpu or cuda and policy.dtype one of {', '.join(DTYPES)}, got "
                f"{self.policy.device!r} / {self.policy.dtype!r}"
            )
        self._validate_selector()
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

    def _validate_selector(self) -> None:
        if self.policy.selector is not None and self.policy.selector not in SELECTORS:
            raise ConfigError(
                f"policy.selector must be one of {', '.join(SELECTORS)}, got {self.policy.selector!r}"
            )
        if self.policy.selector == "oracle" and self.mode != "sync":
            raise ConfigError(
                "policy.selector=oracle branches the simulator between steps: it needs mode=sync"
            )
        o = self.oracle
        if min(o.thinks, o.seeds) < 1 or o.horizon < 0 or not 0 < o.think_prob <= 1:
            raise ConfigError(
                "oracle.thinks and oracle.seeds must be >= 1, oracle.horizon >= 0 and "
                "oracle.think_prob in (0, 1]"
            )

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
    """The camera resolution to render: `cfg.image_size`, or when 0 the policy's image input (the
    checkpoint config's `image_size`, which System 2 and System 1 both read), since the policy
    resizes to that anyway and rendering costs time in proportion to pixels."""
    if cfg.image_size:
        return cfg.image_size
    if cfg.policy.type != "hume":
        return STANDARD_IMAGE_SIZE
    path = Path(cfg.policy.checkpoint) / "config.json"
    if not path.is_file():
        return STANDARD_IMAGE_SIZE
    return json.loads(path.read_text()).get("image_size") or STANDARD_IMAGE_SIZE


def check_policy_overrides(cfg: EvalConfig) -> None:
    """The checkpoint's config with the `policy.*` overrides applied must be a valid HumeConfig:
    checked before anything is written, so that a bad override fails here, naming itself, and not
    in a worker after the output folder holds this evaluation's settings."""
    overrides = cfg.policy.overrides()
    path = Path(cfg.policy.checkpoint) / "config.json"
    if cfg.policy.type != "hume" or not overrides or not path.is_file():
        return
    from hume.models.configuration_hume import HumeConfig

    try:
        HumeConfig.from_dict({**json.loads(path.read_text()), **overrides}).validate()
    except (ValueError, ConfigError) as e:
        given = ", ".join(f"policy.{k}={v}" for k, v in overrides.items())
        raise ConfigError(f"{given} do not fit the checkpoint {cfg.policy.checkpoint}: {e}") from None
