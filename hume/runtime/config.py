"""Config of a deployment: both nodes, the transport, the robot and the launcher. Import-light (no torch).

One file configures both nodes, so the same YAML serves `hume deploy` (both nodes on this host)
and `hume serve system2` / `hume serve system1` (one node per host, endpoints overridden).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import draccus

from hume.config import ConfigError
from hume.models.configuration_hume import DTYPES, SELECTORS
from hume.runtime.protocol import DEFAULT_MAX_MESSAGE_BYTES, MAX_HEADER_BYTES, MAX_MESSAGE_BYTES

# Endpoints `hume serve` uses when none is configured; `hume deploy` picks private ipc:// ones.
SERVE_OBSERVATIONS = "tcp://127.0.0.1:5555"
SERVE_CHUNKS = "tcp://127.0.0.1:5556"


@dataclass(frozen=True)
class TransportConfig:
    # System 2 binds both; System 1 connects to both. Empty: see SERVE_* / the launcher.
    observations: str = ""
    chunks: str = ""
    # A `hume keys` folder; required for any endpoint that is not loopback or ipc://.
    keys_dir: str = ""
    # The most a whole message (all its frames) may hold; also each frame's limit in libzmq.
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    heartbeat_s: float = 0.5

    def endpoints(self) -> tuple[str, str]:
        return self.observations or SERVE_OBSERVATIONS, self.chunks or SERVE_CHUNKS


@dataclass(frozen=True)
class ControlLoopConfig:
    """System 1's control loop (`control:` in deploy configs; `system1:` is the network, in model
    configs: hume/models/configuration_system1.py)."""

    control_hz: float = 20.0
    # Run the System-1 refinement every this many control steps (<= the policy's refine horizon);
    # 0: the checkpoint's s1_replan_steps, which the synchronous loop and the async evaluation use.
    s1_replan_steps: int = 0
    # A chunk may be followed for this many steps after the observation it answers, then: hold;
    # 0: the whole chunk.
    chunk_ttl_steps: int = 0
    # At an episode start the robot stands still until System 2 answers, at most this long.
    first_chunk_timeout_s: float = 120.0
    # Sleep to keep control_hz when the robot is faster than real time (a simulator may be slower).
    realtime: bool = True
    # System 1 refines ahead of the tick in a worker thread (hume/runtime/refiner.py), so no
    # network runs inside a tick; false: inside the tick, as the synchronous loop does (kept to
    # compare the two).
    refine_ahead: bool = True
    # Control ticks from the observation a refinement reads to the first tick its plan is
    # followed; 0: measured when System 1 warms up (its slowest warm refinement, with a 1.5x
    # margin, in control periods; at least 1). A refinement that takes longer is counted
    # (`refine_late`) while the plan it replaces goes on.
    refine_lead_ticks: int = 0
    # SCHED_FIFO priority (1..99) of the policy's share of each tick, so that nothing else on the
    # host (System 2's think included) delays it; where Linux does not permit it (no CAP_SYS_NICE
    # or RLIMIT_RTPRIO), System 1 says so once and runs at normal priority. 0: off.
    realtime_priority: int = 10


@dataclass(frozen=True)
class ServingConfig:
    """How the System-2 node serves (`serving:` in deploy configs); the network's settings are the
    model's `system2` (hume/models/configuration_system2.py)."""

    # Niceness System 2 adds to itself at start: on a host it shares with System 1 (hume deploy)
    # it yields the CPU to the control loop. 0: unchanged.
    nice: int = 10
    # Serving many System-1 clients (a fleet, or evaluation workers): at most this many clients'
    # observations go into one think (one forward), each client's newest only.
    max_batch: int = 8
    # How long the first waiting observation may wait for more clients before the think starts.
    # 0: never wait; observations that arrive during a think share the next one (one client gets
    # exactly the latency it gets alone).
    max_wait_ms: float = 0.0


@dataclass(frozen=True)
class EnvelopeConfig:
    """The robot's action limits (hume/runtime/envelope.py), applied to every action System 1
    sends. Each list left empty is taken from the robot adapter (`action_envelope()`); a plug-in
    adapter without one must set all four here."""

    # Per arm dim (every action dim but the last, the gripper): bounds and the most a dim may
    # change from one control tick to the next.
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    max_delta: list[float] = field(default_factory=list)
    # [low, high] of the gripper command (the last action dim).
    gripper: list[float] = field(default_factory=list)
    # Outside the bounds: "clamp" the action to them, or "hold" the robot for that tick.
    on_violation: str = "clamp"
    # The workspace: absolute limits on where the end effector may go, so that in-bound deltas
    # that all push one way stop at its edge. `workspace_state_dims`: the observation.state dims
    # holding the end-effector position, moved by the first that many action dims;
    # `workspace_low`/`workspace_high`: the box, in the state's units; `workspace_per_unit`: how
    # far (at most) one action unit moves each position dim in one control tick. Each list left
    # empty comes from the adapter's action_envelope()["workspace"]; with none, no workspace.
    workspace_state_dims: list[int] = field(default_factory=list)
    workspace_low: list[float] = field(default_factory=list)
    workspace_high: list[float] = field(default_factory=list)
    workspace_per_unit: list[float] = field(default_factory=list)
    # The most the end effector may move per second (state units/s, the norm over the workspace
    # dims); 0: the adapter's ("max_speed" in its workspace), else none.
    max_speed: float = 0.0


@dataclass(frozen=True)
class RobotConfig:
    # "libero", "metaworld" (its env server), "kinematic" (no simulator), or "package.module:Class"
    # for your own robot adapter.
    kind: str = "libero"
    suite: str = "libero_object"  # the default checkpoint's suite
    task: int = 0
    # Episode i starts from official initial state init_state + i.
    init_state: int = 0
    # Several tasks in turn instead of `task`: episode i runs tasks[i mod n] from official initial
    # state init_state + i // n (n = len(tasks)).
    tasks: list[int] = field(default_factory=list)
    image_size: int = 128
    fast_render: bool = True
    # 0: the suite's standard step limit.
    max_steps: int = 0
    # Passed as keyword arguments to a plug-in adapter class.
    options: dict[str, Any] = field(default_factory=dict)
    envelope: EnvelopeConfig = field(default_factory=EnvelopeConfig)
    # The command watchdog: the robot's driver (its own process, deploy/robots/driver.py) holds the
    # robot by itself when no command came for this long while it was moving, and at once when
    # System 1 is gone. At least two control periods.
    watchdog_s: float = 0.5


@dataclass(frozen=True)
class OpenpiConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    # Required to listen on anything but loopback; clients send it as `Authorization: Api-Key ...`.
    api_key: str = ""


@dataclass(frozen=True)
class PolicyConfig(draccus.ChoiceRegistry):
    """The policy class the nodes serve, picked by `policy.type` (a draccus choice; none: `hume`)."""

    def class_path(self) -> str:
        """ "package.module:Class"; imported only when a node loads it, so configs stay torch-free."""
        raise NotImplementedError

    def overrides(self) -> dict:
        """Config fields replaced at load (from_pretrained keywords); none by default."""
        return {}

    @classmethod
    def default_choice_name(cls) -> str:
        return "hume"


@PolicyConfig.register_subclass("hume")
@dataclass(frozen=True)
class HumePolicyConfig(PolicyConfig):
    # Which candidate a think follows and how many it draws (HumeConfig.selector and
    # num_candidates); unset: the checkpoint's. "oracle" needs a simulator: it is `hume eval`'s.
    selector: str | None = None
    num_candidates: int | None = None
    # What the networks compute in (HumeConfig.dtype: float32, bfloat16 or float16, the last two for
    # a GPU); unset: the checkpoint's.
    dtype: str | None = None
    # The fast inference path (HumeConfig.compile: frozen traced graphs, exact); unset: the checkpoint's.
    compile: bool | None = None
    # Ticks over which a new plan cross-fades from the one it replaces (HumeConfig.switch_blend);
    # unset: the checkpoint's.
    switch_blend: int | None = None

    def class_path(self) -> str:
        return "hume.policy:HumePolicy"

    def overrides(self) -> dict:
        names = ("selector", "num_candidates", "dtype", "compile", "switch_blend")
        return {k: getattr(self, k) for k in names if getattr(self, k) is not None}


@PolicyConfig.register_subclass("import")
@dataclass(frozen=True)
class ImportedPolicyConfig(PolicyConfig):
    # Your own policy class, "package.module:Class": from_pretrained, reset, think and refine.
    path: str = ""

    def class_path(self) -> str:
        return self.path


@dataclass(frozen=True)
class DeployConfig:
    # The control loop's section was `system1:` and the serving's `system2:`, the names model
    # configs give the two networks.
    RENAMED_KEYS: ClassVar[dict[str, str]] = {"system1": "control", "system2": "serving"}

    checkpoint: str = "checkpoints/default"
    policy: PolicyConfig = field(default_factory=HumePolicyConfig)
    device: str = "cpu"
    # torch threads per node process (0: torch's default). Two nodes on one small CPU host run
    # best with 1 each: oversubscribed OpenMP threads spin and stall each other.
    torch_threads: int = 0
    episodes: int = 1
    output: str = "outputs/deploy"
    video: bool = True
    # How long the launcher waits for a node's ready handshake (model loading included).
    startup_timeout_s: float = 300.0
    # `hume deploy` restarts a System-2 process that dies mid-run at most this many times.
    system2_restarts: int = 3
    seed: int = 0
    transport: TransportConfig = field(default_factory=TransportConfig)
    control: ControlLoopConfig = field(default_factory=ControlLoopConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    robot: RobotConfig = field(default_factory=RobotConfig)
    openpi: OpenpiConfig = field(default_factory=OpenpiConfig)

    def validate(self) -> None:
        s1, t = self.control, self.transport
        if self.episodes < 1:
            raise ConfigError(f"episodes must be >= 1, got {self.episodes}")
        if s1.control_hz <= 0:
            raise ConfigError(f"control.control_hz must be > 0, got {s1.control_hz}")
        if s1.s1_replan_steps < 0 or s1.chunk_ttl_steps < 0 or s1.refine_lead_ticks < 0:
            raise ConfigError(
                "control.s1_replan_steps, chunk_ttl_steps and refine_lead_ticks must be >= 1 "
                "(or 0: the checkpoint's, or measured)"
            )
        if not MAX_HEADER_BYTES < t.max_message_bytes <= MAX_MESSAGE_BYTES:
            raise ConfigError(
                f"transport.max_message_bytes must be in ({MAX_HEADER_BYTES}, {MAX_MESSAGE_BYTES >> 20} MiB]"
            )
        if t.heartbeat_s <= 0:
            raise ConfigError(f"transport.heartbeat_s must be > 0, got {t.heartbeat_s}")
        if not 0 <= s1.realtime_priority <= 99:
            raise ConfigError(f"control.realtime_priority must be in 0..99, got {s1.realtime_priority}")
        if not 0 <= self.serving.nice <= 19:
            raise ConfigError(f"serving.nice must be in 0..19, got {self.serving.nice}")
        if self.serving.max_batch < 1 or self.serving.max_wait_ms < 0:
            raise ConfigError(
                f"serving.max_batch must be >= 1 and serving.max_wait_ms >= 0, got "
                f"{self.serving.max_batch} and {self.serving.max_wait_ms}"
            )
        if not self.robot.watchdog_s >= 2.0 / s1.control_hz:
            raise ConfigError(
                f"robot.watchdog_s must be at least two control periods ({2.0 / s1.control_hz:.3g} s at "
                f"{s1.control_hz:g} Hz), got {self.robot.watchdog_s}"
            )
        if self.robot.envelope.on_violation not in ("clamp", "hold"):
            raise ConfigError(
                f"robot.envelope.on_violation must be clamp or hold, got {self.robot.envelope.on_violation!r}"
            )
        self._validate_policy()
        if ":" not in self.policy.class_path():
            raise ConfigError(f"policy.path must be 'package.module:Class', got {self.policy.class_path()!r}")

    def _validate_policy(self) -> None:
        if not isinstance(self.policy, HumePolicyConfig):
            return
        if self.policy.selector is not None and self.policy.selector not in SELECTORS:
            raise ConfigError(
                f"policy.selector must be one of {', '.join(SELECTORS)}, got {self.policy.selector!r}"
            )
        if self.policy.selector == "oracle":
            raise ConfigError(
                "policy.selector=oracle tries candidates in a simulator's copy: it is for "
                "`hume eval --policy.selector=oracle`, not a deployment"
            )
        if self.policy.num_candidates is not None and self.policy.num_candidates < 1:
            raise ConfigError(f"policy.num_candidates must be >= 1, got {self.policy.num_candidates}")
        if self.policy.dtype is not None and self.policy.dtype not in DTYPES:
            raise ConfigError(f"policy.dtype must be one of {', '.join(DTYPES)}, got {self.policy.dtype!r}")
