"""The full-size Hume policy, end to end: build it, think (N candidates), refine; time and memory.

Builds the paper's sizes (configs/model/full.yaml: SigLIP so400m + Gemma 2B + a Gemma 300M expert,
the 4-layer value-query head, System 1 over DINOv2-small; about 3.8B parameters) with random weights,
or loads a converted checkpoint (`checkpoint=DIR`, e.g. one `hume convert` wrote), then times
`HumePolicy.think` for each N in `candidates` and one `refine`, on a synthetic LIBERO-sized
observation (two 224² cameras, an 8-d state, an instruction). Reports the build/load time, each
call's wall time, and the process's peak resident memory, which is what decides whether a machine
can hold the model. On a GPU, `compile=true` runs the same through torch.compile.
"""

from __future__ import annotations

import dataclasses
import logging
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hume.config import ConfigError
from hume.constants import IMAGE_KEY, STATE_KEY, TASK_KEY

log = logging.getLogger(__name__)

FULL_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "model" / "full.yaml"
INSTRUCTION = "pick up the black bowl between the plate and the ramekin and place it on the plate"


@dataclass(frozen=True)
class Config:
    # A model config (YAML of HumeConfig) to build with random weights...
    model: str = str(FULL_CONFIG)
    # ...or a checkpoint folder to load instead (takes precedence when set).
    checkpoint: str = ""
    # "cpu" or "cuda".
    device: str = "cpu"
    # float32 or bfloat16 (this CPU has no native bf16: float32 is the faster choice here).
    dtype: str = "float32"
    # Numbers of candidates to time think with.
    candidates: list[int] = field(default_factory=lambda: [5])
    # Untimed calls before the timed ones (compilation, allocator and kernel warm-up), and timed calls.
    warmup: int = 0
    repeats: int = 1
    # torch.compile System 2's prefix/velocity and System 1's observation/velocity passes.
    compile: bool = False
    # Torch CPU threads (0 = torch's default).
    threads: int = 0
    seed: int = 0
    json: bool = False
    output: str = ""

    def validate(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"device must be cpu or cuda, got {self.device!r}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"dtype must be float32 or bfloat16, got {self.dtype!r}")
        if not self.candidates or min(self.candidates) < 1:
            raise ConfigError(f"candidates must be numbers >= 1, got {self.candidates}")
        if self.repeats < 1 or self.warmup < 0:
            raise ConfigError("repeats must be >= 1 and warmup >= 0")
        if not self.checkpoint and not Path(self.model).is_file():
            raise ConfigError(f"model config not found: {self.model}")


def peak_rss_gib() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def observation(config, rng: np.random.Generator) -> dict:
    obs = {
        IMAGE_KEY.format(cam): rng.integers(0, 256, (config.image_size, config.image_size, 3), np.uint8)
        for cam in config.cameras
    }
    obs[STATE_KEY] = rng.standard_normal(config.state_dim).astype(np.float32)
    obs[TASK_KEY] = INSTRUCTION
    return obs


def build(cfg: Config):
    import torch

    from hume.config import parse_config
    from hume.models.configuration_hume import HumeConfig
    from hume.policy import HumePolicy

    torch.manual_seed(cfg.seed)
    # Built directly in the target dtype: a bf16 model never holds a float32 copy.
    default = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, cfg.dtype))
    try:
        if cfg.checkpoint:
            policy = HumePolicy.from_pretrained(cfg.checkpoint)
        else:
            # Initialised where it will run: a full-size model initialised on the CPU takes a minute.
            with torch.device(cfg.device):
                policy = HumePolicy.from_config(parse_config(HumeConfig, ["--config", cfg.model]))
    finally:
        torch.set_default_dtype(default)
    return policy.to(cfg.device, getattr(torch, cfg.dtype)).eval()


def _timed(fn, warmup: int, repeats: int, sync) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def run(cfg: Config) -> dict:
    import torch

    from hume.policy.draws import Draws

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        return {"benchmark": "full-model", "skipped": "no CUDA device"}
    start = time.perf_counter()
    policy = build(cfg)
    build_s = time.perf_counter() - start
    params = sum(p.numel() for p in policy.parameters())
    log.info("built %.2fB parameters in %.1f s, peak RSS %.1f GiB", params / 1e9, build_s, peak_rss_gib())
    if cfg.compile:
        s2, s1 = policy.system2, policy.system1
        s2.encode_prefix, s2.velocity = torch.compile(s2.encode_prefix), torch.compile(s2.velocity)
        s1.encode_observation, s1.velocity = torch.compile(s1.encode_observation), torch.compile(s1.velocity)

    def sync() -> None:
        if cfg.device == "cuda":
            torch.cuda.synchronize()

    obs = observation(policy.config, np.random.default_rng(cfg.seed))
    rows = []
    base = policy.config
    for n in cfg.candidates:
        policy.config = dataclasses.replace(base, num_candidates=n)
        draws = Draws.seeded(cfg.seed)
        times = _timed(lambda draws=draws: policy.think(obs, draws=draws), cfg.warmup, cfg.repeats, sync)
        rows.append({"n": n, "think_s": float(np.median(times)), "think_all_s": times})
        log.info("think N=%d: %.2f s", n, rows[-1]["think_s"])
    policy.config = base
    chunk = policy.think(obs)
    refine = _timed(lambda: policy.refine(obs, chunk, 0), cfg.warmup, cfg.repeats, sync)
    result = {
        "benchmark": "full-model",
        "source": cfg.checkpoint or cfg.model,
        "device": torch.cuda.get_device_name() if cfg.device == "cuda" else cfg.device,
        "dtype": cfg.dtype,
        "compile": cfg.compile,
        "threads": torch.get_num_threads(),
        "parameters": params,
        "build_s": build_s,
        "think": rows,
        "refine_s": float(np.median(refine)),
        "peak_rss_gib": peak_rss_gib(),
    }
    if cfg.device == "cuda":
        result["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def table(result: dict) -> str:
    if "skipped" in result:
        return f"full-model: skipped ({result['skipped']})"
    lines = [
        f"{result['parameters'] / 1e9:.2f}B parameters on {result['device']} ({result['dtype']}"
        f"{', compiled' if result['compile'] else ''}): built in {result['build_s']:.1f} s",
        *[f"  think N={r['n']:<3} {r['think_s']:8.2f} s" for r in result["think"]],
        f"  refine    {result['refine_s']:8.2f} s",
        f"  peak RSS  {result['peak_rss_gib']:8.1f} GiB",
    ]
    if "peak_gpu_gib" in result:
        lines.append(f"  peak GPU  {result['peak_gpu_gib']:8.1f} GiB")
    return "\n".join(lines)
