"""The System-1 control tick: observation in hand -> action out, cascaded denoising included.

What is timed is the System-1 node itself (`System1Node.run_episode`, hume/runtime/system1_node.py)
with its own per-tick clock (the `tick_ms` column of its trace): publish the observation, take the
newest chunk, align it, run `HumePolicy.refine` (System 1's cascade on the current observation)
and pick the action, at a real 20 Hz. `s1_replan_steps = 1`: System 1's worker refines for every
tick (its worst case), ahead of the tick; `refine_cpu_ms` is that refinement's CPU time.
The robot is the kinematic one (no
simulator: microseconds per step) and System 2 is an echo node in its own process that answers
every observation with one fixed chunk, so no System-2 model work competes for the cores.

Sizes: `tiny` is configs/model/tiny.yaml on the CPU; `full` is the paper's System 1 (DINOv2-small
per camera at 224², a 13-layer width-512 trunk) and runs on CUDA (skipped, with the reason, where
there is none; `device=cpu` forces it onto the CPU), optionally in bf16 and through torch.compile.
System 2's size does not enter the tick, so it stays tiny. `checkpoint` times a saved policy (e.g.
checkpoints/default) instead of random weights.

`paths` runs the tick once per inference path, one after the other in one process: `eager` (plain
modules) and `fast` (HumeConfig.compile, hume/policy/fast_path.py, traced before the first tick).
The top-level figures are the first path's; every path's are under `paths`.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hume.config import ConfigError
from hume.models.configuration_hume import DTYPES

log = logging.getLogger(__name__)

SIZES = ("tiny", "full")
FULL_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "model" / "full.yaml"
COMPILE_MODES = ("", "default", "reduce-overhead", "max-autotune-no-cudagraphs")
PATHS = ("eager", "fast")


@dataclass(frozen=True)
class Config:
    # tiny (CPU) or full (the paper's System 1; CUDA unless device=cpu).
    size: str = "tiny"
    # Control ticks timed (after `warmup` ticks that are not).
    ticks: int = 1000
    warmup: int = 50
    # Device for the policy: "" = cuda for full, cpu for tiny.
    device: str = ""
    # float32, bfloat16 or float16 (HumeConfig.dtype; half precision is for CUDA).
    dtype: str = "float32"
    # torch.compile mode for System 1's vision encoder and trunk; empty = eager.
    compile: str = ""
    # Torch CPU threads.
    threads: int = 1
    # A checkpoint folder to time instead of random weights of `size` (e.g. checkpoints/default).
    checkpoint: str = ""
    # Inference paths to time, in this order: eager and/or fast (HumeConfig.compile).
    paths: tuple[str, ...] = ("eager",)
    # Camera resolution the robot renders (the policy resizes to the model's input).
    robot_image_size: int = 128
    # A few-second run (50 ticks, 5 warm-up) to check the harness.
    smoke: bool = False
    json: bool = False
    output: str = ""

    def validate(self) -> None:
        if self.size not in SIZES:
            raise ConfigError(f"size must be one of {SIZES}, got {self.size!r}")
        if self.ticks < 1 or self.warmup < 0 or self.threads < 1:
            raise ConfigError("ticks and threads must be >= 1, warmup >= 0")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.compile not in COMPILE_MODES:
            raise ConfigError(f"compile must be one of {COMPILE_MODES}, got {self.compile!r}")
        if not self.paths or any(p not in PATHS for p in self.paths):
            raise ConfigError(f"paths must name some of {PATHS}, got {list(self.paths)}")

    def effective(self) -> Config:
        return dataclasses.replace(self, ticks=50, warmup=5) if self.smoke else self


def model_config(size: str):
    """HumeConfig with the System 1 of `size` (System 2 and the value head stay tiny: not on the tick)."""
    import draccus
    import yaml

    from hume.models.configuration_hume import HumeConfig

    if size == "tiny":
        return HumeConfig()
    full = draccus.decode(HumeConfig, yaml.safe_load(FULL_CONFIG.read_text()))
    return dataclasses.replace(HumeConfig(), system1=full.system1, image_size=full.image_size)


class _CpuTimed:
    """The policy as the node sees it, recording the CPU time of each `refine` on the calling thread.

    With one torch thread all of System 1's work runs on that thread, so this is the tick's compute
    without the time the thread waited for a core: on a machine shared with other work it is the
    steadier figure. (On CUDA the thread mostly waits for the GPU; there wall time is the figure.)
    """

    def __init__(self, policy) -> None:
        self._policy = policy
        self.refine_cpu_ms: list[float] = []

    def __getattr__(self, name):
        return getattr(self._policy, name)

    def refine(self, obs, chunk, offset, history=None, continues=None):
        t0 = time.thread_time()
        actions = self._policy.refine(obs, chunk, offset, history, continues)
        self.refine_cpu_ms.append((time.thread_time() - t0) * 1e3)
        return actions


def _device(cfg: Config) -> str:
    import torch

    device = cfg.device or ("cuda" if cfg.size == "full" else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        return ""
    return device


def build_policy(cfg: Config, device: str, fast: bool = False):
    import torch

    from hume.policy import HumePolicy

    torch.manual_seed(0)
    switches = {"compile": False, "dtype": cfg.dtype}
    if cfg.checkpoint:
        policy = HumePolicy.from_pretrained(cfg.checkpoint, **switches)
    else:
        policy = HumePolicy.from_config(dataclasses.replace(model_config(cfg.size), **switches))
    policy = policy.to(device=device).eval()
    if cfg.compile:
        s1 = policy.system1
        s1.vision_encoder = torch.compile(s1.vision_encoder, mode=cfg.compile)
        s1.trunk = torch.compile(s1.trunk, mode=cfg.compile)
    if fast:
        # Switched on once the policy sits on its device, then traced before the first tick.
        policy.config = dataclasses.replace(policy.config, compile=True)
        policy.warm_up()
    return policy


def run(cfg: Config) -> dict:
    import torch

    cfg = cfg.effective()
    device = _device(cfg)
    base = {"benchmark": "s1-tick", "size": cfg.size, "dtype": cfg.dtype, "compile": cfg.compile}
    if not device:
        msg = f"size={cfg.size} needs a CUDA device and none is available here; skipped"
        log.warning("%s", msg)
        return {**base, "device": "none", "skipped": msg}

    if cfg.dtype != "float32" and device == "cpu":
        raise ConfigError(f"dtype={cfg.dtype} is for CUDA; on the CPU use float32")
    torch.set_num_threads(cfg.threads)
    paths = {path: _tick(cfg, build_policy(cfg, device, path == "fast")) for path in cfg.paths}
    return {
        **base,
        "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        "threads": cfg.threads,
        "checkpoint": cfg.checkpoint,
        **paths[cfg.paths[0]],
        "paths": paths,
    }


def _tick(cfg: Config, policy) -> dict:
    """Run the System-1 node for warmup + ticks control ticks with `policy`; its timings."""
    from deploy.metrics import percentiles
    from deploy.robots.kinematic import KinematicRobot
    from hume.bench import echo
    from hume.runtime.config import ControlLoopConfig, DeployConfig, TransportConfig
    from hume.runtime.system1_node import System1Node

    params = sum(p.numel() for p in policy.system1.parameters())
    ctx = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="hume-s1-tick-") as tmp, ExitStack() as stack:
        obs_ep, chunk_ep = f"ipc://{tmp}/obs", f"ipc://{tmp}/chunks"
        echo.start(stack, ctx, echo.serve_system2, obs_ep, chunk_ep, policy.config.chunk_size)
        deploy = DeployConfig(
            video=False,
            transport=TransportConfig(observations=obs_ep, chunks=chunk_ep),
            # At a real 20 Hz: System 1 refines ahead of the tick in its worker, so a free-running
            # loop would only measure how fast ticks can spin while the worker falls behind.
            control=ControlLoopConfig(s1_replan_steps=1, control_hz=20.0, first_chunk_timeout_s=60),
        )
        robot = KinematicRobot(image_size=cfg.robot_image_size, max_steps=cfg.warmup + cfg.ticks)
        timed = _CpuTimed(policy)
        node = System1Node(deploy, timed, robot, echo.MODEL_ID)
        stack.callback(node.close)  # before the echo server stops: the stack unwinds in reverse
        t0 = time.perf_counter()
        node.run_episode(0)
        wall = time.perf_counter() - t0

    cols = node.trace.columns
    rows = node.trace.rows[cfg.warmup :]
    tick_ms = np.array([r[cols.index("tick_ms")] for r in rows])
    cpu_ms = np.array(timed.refine_cpu_ms[-len(rows) :])
    refined = sum(r[cols.index("refined")] for r in rows)
    holds = sum(r[cols.index("hold")] for r in rows)
    return {
        "system1_params": params,
        "ticks": len(rows),
        "refined_ticks": int(refined),
        "hold_ticks": int(holds),
        "tick_ms": {**percentiles(tick_ms, 50, 99, keep_max=True), "mean": round(float(tick_ms.mean()), 3)},
        "refine_cpu_ms": percentiles(cpu_ms, 50, 99),
        "loop_hz": round((cfg.warmup + cfg.ticks) / wall, 1),
    }


def table(result: dict) -> str:
    if "skipped" in result:
        return f"s1-tick {result['size']}: {result['skipped']}"
    lines = []
    for path, r in result["paths"].items():
        t, cpu = r["tick_ms"], r["refine_cpu_ms"]
        lines.append(
            f"s1-tick {result['checkpoint'] or result['size']} {path} on {result['device']} "
            f"({result['dtype']}{', compile ' + result['compile'] if result['compile'] else ''}): "
            f"{r['ticks']} ticks, p50 {t['p50']:.2f} ms, p99 {t['p99']:.2f} ms, max {t['max']:.2f} ms; "
            f"{r['refined_ticks']} refined, {r['hold_ticks']} held; "
            f"refine CPU time p50 {cpu['p50']:.2f} ms, p99 {cpu['p99']:.2f} ms"
        )
    return "\n".join(lines)
