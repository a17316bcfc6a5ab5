"""The full-size Hume policy, end to end: build or load it, think (N candidates), refine; time and memory.

Builds the paper's sizes (configs/model/full.yaml: SigLIP so400m + Gemma 2B + a Gemma 300M expert,
the 4-layer value-query head, System 1 over DINOv2-small; about 3.5B parameters) with random weights,
or loads a checkpoint: a folder (`checkpoint=DIR`, e.g. one `hume convert` wrote), or
`checkpoint=random`, a full-size checkpoint of random weights written (in a child process, tensor by
tensor) to a temporary folder, loaded, and deleted. `cold=true` evicts its file from the OS page
cache first, so the load reads the disk as on a fresh machine. Then times `HumePolicy.think` for
each N in `candidates` (none: the load alone) and one `refine` on a synthetic LIBERO-sized
observation (two 224² cameras, an 8-d state, an instruction). Reports the build/load time, the
weights' size, the process's resident memory before and at its peak after the load (what decides
whether a machine can hold the model), and each call's wall time. On a GPU, `compile=true` runs
the same through torch.compile.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hume.config import ConfigError
from hume.constants import IMAGE_KEY, STATE_KEY, TASK_KEY

log = logging.getLogger(__name__)

MODELS = Path(__file__).resolve().parents[2] / "configs" / "model"
FULL_CONFIG = MODELS / "full.yaml"
INSTRUCTION = "pick up the black bowl between the plate and the ramekin and place it on the plate"
DTYPES = ("float32", "bfloat16", "float16")
RANDOM = "random"


@dataclass(frozen=True)
class Config:
    # A model config (YAML of HumeConfig) to build with random weights (or to write as `random`)...
    model: str = str(FULL_CONFIG)
    # ...or a checkpoint folder to load instead, or "random": write `model` with random weights
    # as a checkpoint under tmp_dir (its tensors in stored_dtype), load it, delete it.
    checkpoint: str = ""
    tmp_dir: str = ""  # "": the system's temporary directory
    stored_dtype: str = ""  # "": dtype
    # Evict the random checkpoint from the OS page cache before loading it (a cold read from disk).
    cold: bool = True
    # "cpu" or "cuda".
    device: str = "cpu"
    # What the policy computes in (HumeConfig.dtype). This CPU has no native half arithmetic:
    # float32 is the faster choice here, bfloat16 halves the memory.
    dtype: str = "float32"
    # Numbers of candidates to time think with (empty: time the build or load only).
    candidates: list[int] = field(default_factory=lambda: [5])
    # Untimed calls before the timed ones (compilation, allocator and kernel warm-up), and timed calls.
    warmup: int = 0
    repeats: int = 1
    # torch.compile System 2's prefix/velocity and System 1's observation/velocity passes.
    compile: bool = False
    # Torch CPU threads (0 = torch's default).
    threads: int = 0
    seed: int = 0
    # The tiny model instead of `model`, one think: seconds, to check the harness.
    smoke: bool = False
    json: bool = False
    output: str = ""

    def validate(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"device must be cpu or cuda, got {self.device!r}")
        if self.dtype not in DTYPES or self.stored_dtype not in ("", *DTYPES):
            raise ConfigError(f"dtype and stored_dtype must be one of {', '.join(DTYPES)}")
        if self.candidates and min(self.candidates) < 1:
            raise ConfigError(f"candidates must be numbers >= 1, got {self.candidates}")
        if self.repeats < 1 or self.warmup < 0:
            raise ConfigError("repeats must be >= 1 and warmup >= 0")
        if self.checkpoint in ("", RANDOM) and not Path(self.model).is_file():
            raise ConfigError(f"model config not found: {self.model}")

    def effective(self) -> Config:
        if not self.smoke:
            return self
        return dataclasses.replace(self, model=str(MODELS / "tiny.yaml"), candidates=self.candidates[:1])


def peak_rss_gib() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def cpu_s() -> float:
    """This process's CPU time so far, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_gib() -> float:
    """This process's resident memory now."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def observation(config, rng: np.random.Generator) -> dict[str, Any]:
    obs: dict[str, Any] = {
        IMAGE_KEY.format(cam): rng.integers(0, 256, (config.image_size, config.image_size, 3), np.uint8)
        for cam in config.cameras
    }
    obs[STATE_KEY] = rng.standard_normal(config.state_dim).astype(np.float32)
    obs[TASK_KEY] = INSTRUCTION
    return obs


def model_config(path: str, dtype: str):
    from hume.config import parse_config
    from hume.models.configuration_hume import HumeConfig

    return dataclasses.replace(parse_config(HumeConfig, ["--config", path]), dtype=dtype)


def build(cfg: Config):
    """The policy in cfg.dtype on cfg.device: loaded from cfg.checkpoint, or built from cfg.model."""
    import torch

    from hume.policy import HumePolicy

    torch.manual_seed(cfg.seed)
    if cfg.checkpoint:
        policy = HumePolicy.from_pretrained(cfg.checkpoint, dtype=cfg.dtype)
    else:
        # Initialised where it will run: a full-size model initialised on the CPU takes a minute.
        with torch.device(cfg.device):
            policy = HumePolicy.from_config(model_config(cfg.model, cfg.dtype))
    return policy.to(cfg.device).eval()


def write_random_checkpoint(model: str, dtype: str, folder: str, seed: int) -> None:
    """A checkpoint folder of random weights for the model config at `model`, its tensors in the
    dtypes a policy in `dtype` saves (hume_policy.network_dtype), written one tensor at a time in
    pieces: the writer holds 64 MiB, never the model. Matrices ~ N(0, 0.02²), vector weights 1
    (norm scales), other vectors 0 (biases): numbers to time, not to act on."""
    import torch

    from hume.config import to_dict
    from hume.policy.hume_policy import CONFIG_FILE, WEIGHTS_FILE, build_networks
    from hume.policy.loading import DTYPES as STORED
    from hume.policy.loading import PIECE
    from hume.policy.normalize import Normalizer

    config = model_config(model, dtype)
    names = {v: k for k, v in STORED.items()}
    tensors = [
        (f"{net}.{key}", t)
        for net, module in build_networks(config, empty=True).items()
        for key, t in module.state_dict().items()
    ]
    header, offset = {}, 0
    for key, t in tensors:
        size = t.numel() * t.element_size()
        header[key] = {
            "dtype": names[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    out = Path(folder)
    generator = torch.Generator().manual_seed(seed)
    with open(out / WEIGHTS_FILE, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for key, t in tensors:
            for start in range(0, t.numel(), PIECE):
                n = min(PIECE, t.numel() - start)
                if t.dim() >= 2:
                    piece = torch.randn(n, generator=generator) * 0.02
                else:
                    piece = torch.full((n,), 1.0 if key.endswith("weight") else 0.0)
                f.write(piece.to(t.dtype).view(torch.uint8).numpy().data)
        f.flush()
        os.fsync(f.fileno())
    (out / CONFIG_FILE).write_text(json.dumps(to_dict(config), indent=2) + "\n")
    Normalizer(None, config.state_dim, config.action_dim).save(out)


def evict(file: Path) -> None:
    """Drop a file's pages from the OS page cache (it was fsynced: they are clean)."""
    fd = os.open(file, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


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

    from hume.policy import HumePolicy  # noqa: F401  (imported before the clock starts)
    from hume.policy.draws import Draws

    cfg = cfg.effective()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        return {"benchmark": "full-model", "skipped": "no CUDA device"}
    folder = None
    written = {}
    try:
        if cfg.checkpoint == RANDOM:
            folder = Path(tempfile.mkdtemp(prefix="hume-full-model-", dir=cfg.tmp_dir or None))
            written = _write(cfg, folder)
            cfg = dataclasses.replace(cfg, checkpoint=str(folder))
        before, cpu = rss_gib(), cpu_s()
        start = time.perf_counter()
        policy = build(cfg)
        build_s = time.perf_counter() - start
        loaded = {
            # CPU time (every thread's, the kernel's included): steadier than wall time on a busy machine.
            "load_cpu_s" if cfg.checkpoint else "build_cpu_s": cpu_s() - cpu,
            "rss_before_gib": before,
            "peak_rss_after_load_gib": peak_rss_gib(),
        }
    finally:
        if folder is not None:
            shutil.rmtree(folder)
    params = sum(p.numel() for p in policy.parameters())
    weights = sum(t.numel() * t.element_size() for t in [*policy.parameters(), *policy.buffers()]) / 2**30
    log.info(
        "%s %.2fB parameters (%.2f GiB) in %.1f s, peak RSS %.2f GiB",
        "loaded" if cfg.checkpoint else "built",
        params / 1e9,
        weights,
        build_s,
        loaded["peak_rss_after_load_gib"],
    )
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
    refine = []
    if cfg.candidates:
        chunk = policy.think(obs)
        refine = _timed(lambda: policy.refine(obs, chunk, 0), cfg.warmup, cfg.repeats, sync)
    result = {
        "benchmark": "full-model",
        "source": "random checkpoint" if folder is not None else cfg.checkpoint or cfg.model,
        "device": torch.cuda.get_device_name() if cfg.device == "cuda" else cfg.device,
        "dtype": cfg.dtype,
        "compile": cfg.compile,
        "threads": torch.get_num_threads(),
        "parameters": params,
        "weights_gib": weights,
        **written,
        # Time to a ready policy: loading the checkpoint, or building with random weights.
        "load_s" if cfg.checkpoint else "build_s": build_s,
        **loaded,
        "peak_rss_over_weights": loaded["peak_rss_after_load_gib"] / weights,
        "load_growth_over_weights": (loaded["peak_rss_after_load_gib"] - before) / weights,
        "think": rows,
        "refine_s": float(np.median(refine)) if refine else None,
        "peak_rss_gib": peak_rss_gib(),
    }
    if cfg.device == "cuda":
        result["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def _write(cfg: Config, folder: Path) -> dict:
    """Write the random checkpoint in a child process (its memory is not this one's peak)."""
    stored = cfg.stored_dtype or cfg.dtype
    start = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(
        target=write_random_checkpoint, args=(cfg.model, stored, str(folder), cfg.seed)
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"writing the random checkpoint failed (exit code {child.exitcode})")
    file = folder / "model.safetensors"
    if cfg.cold:
        evict(file)
    return {
        "stored_dtype": stored,
        "checkpoint_gib": file.stat().st_size / 2**30,
        "write_s": time.perf_counter() - start,
        "cold": cfg.cold,
    }


def table(result: dict) -> str:
    if "skipped" in result:
        return f"full-model: skipped ({result['skipped']})"
    if "load_s" in result:
        how = f"loaded from {result['source']} in {result['load_s']:.1f} s (CPU {result['load_cpu_s']:.1f} s)"
        if "stored_dtype" in result:
            how += (
                f" ({result['checkpoint_gib']:.2f} GiB of {result['stored_dtype']},"
                f" {'cold' if result['cold'] else 'cached'})"
            )
    else:
        how = f"built in {result['build_s']:.1f} s"
    lines = [
        f"{result['parameters'] / 1e9:.2f}B parameters, {result['weights_gib']:.2f} GiB, "
        f"on {result['device']} ({result['dtype']}{', compiled' if result['compile'] else ''}): {how}",
        f"  RSS before / peak after loading  {result['rss_before_gib']:.2f} / "
        f"{result['peak_rss_after_load_gib']:.2f} GiB ({result['peak_rss_over_weights']:.2f}x the weights; "
        f"growth {result['load_growth_over_weights']:.2f}x)",
        *[f"  think N={r['n']:<3} {r['think_s']:8.2f} s" for r in result["think"]],
    ]
    if result["refine_s"] is not None:
        lines.append(f"  refine    {result['refine_s']:8.2f} s")
    lines.append(f"  peak RSS  {result['peak_rss_gib']:8.2f} GiB")
    if "peak_gpu_gib" in result:
        lines.append(f"  peak GPU  {result['peak_gpu_gib']:8.2f} GiB")
    return "\n".join(lines)
