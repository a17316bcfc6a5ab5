"""Training throughput of both stages: samples/s and peak memory, through `hume train`'s own loop.

Each stage runs in a fresh (forked) process, so that its peak memory is its own, on a synthetic
LeRobot dataset written here (random smooth states and actions, noise images; the numbers do not
depend on what the data shows). Within that process `hume.train.trainer.train` runs
`steps + timed_steps` steps from scratch; the trainer times every step (batch assembly to optimizer
step, without logging or checkpoints), and the mean over the last `timed_steps` is reported (the
first `steps` warm up allocators and caches). Stage `system1_value` starts from the checkpoint
stage `system2` wrote, as in real use.
Besides wall time, the process's CPU time (all its threads) per step is reported: on a machine
shared with other work it is the steadier figure.

Peak memory on the CPU is the process's peak resident set (ru_maxrss): interpreter, torch,
dataset in memory and training together; `baseline_rss_mb` is the same process before training.
`state_mb` is what the trainer counts after the first optimizer step: parameters, gradients and
optimizer state this process holds (its shards when sharded), the part that sharding divides.

Sharded mode (`--distributed=fsdp --processes='[1, 2]'`): each stage runs once per process count,
the processes forked together and joined over gloo as torchrun would; samples/s counts all of
them (batch_size x processes per step), memory is per process (the largest of them). Each process
gets threads / processes torch threads, so that the counts share the same cores.

`paper_model` adds the computed per-GPU memory table of that model at 1/2/4/8 GPUs
(hume/bench/train_memory.py), checked by sharding it on the meta device.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hume.config import ConfigError
from hume.constants import ACTION_KEY, IMAGE_KEY, STATE_KEY

log = logging.getLogger(__name__)

TASKS = ("put the black bowl on the plate", "open the top drawer")
CAMERAS = ("agentview", "wrist")


@dataclass(frozen=True)
class Config:
    # Model config (a configs/model/*.yaml file).
    model: str = "configs/model/tiny.yaml"
    batch_size: int = 8
    # Untimed warm-up steps, then timed steps (all in one run).
    steps: int = 2
    timed_steps: int = 10
    # Synthetic dataset: episodes x frames, square images of this side.
    episodes: int = 4
    episode_length: int = 40
    image_size: int = 128
    threads: int = 2
    # "ddp" (plain, or data parallel with several processes) or "fsdp" (sharded, hume train's
    # distributed=fsdp); each stage runs once per entry of `processes`.
    distributed: str = "ddp"
    # "cpu", or "cuda" (one process per GPU; peak_device_mb is the GPU's peak allocation): e.g.
    # one sharded step on a GPU: --device=cuda --distributed=fsdp --smoke --paper_model=''
    device: str = "cpu"
    processes: list[int] = dataclasses.field(default_factory=lambda: [1])
    mixed_precision: str = "no"
    activation_checkpointing: bool = False
    # The model of the computed memory table (a configs/model/*.yaml); empty: no table.
    paper_model: str = "configs/model/full.yaml"
    # A few-second run (batch 2, 1 + 1 steps, a small dataset) to check the harness.
    smoke: bool = False
    json: bool = False
    output: str = ""

    def validate(self) -> None:
        for name in ("batch_size", "timed_steps", "episodes", "episode_length", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.processes or min(self.processes) < 1:
            raise ConfigError(f"processes must list counts >= 1, got {self.processes}")
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        if self.distributed not in ("ddp", "fsdp"):
            raise ConfigError(f"distributed must be 'ddp' or 'fsdp', got {self.distributed!r}")
        if self.paper_model and not Path(self.paper_model).is_file():
            raise ConfigError(
                f"paper_model {self.paper_model} not found (a configs/model/*.yaml file, or '')"
            )
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1 (the warm-up steps), got {self.steps}")
        if not Path(self.model).is_file():
            raise ConfigError(f"model config {self.model} not found (pass a configs/model/*.yaml file)")

    def effective(self) -> Config:
        if not self.smoke:
            return self
        return dataclasses.replace(
            self, batch_size=2, steps=1, timed_steps=1, episodes=2, episode_length=20, image_size=64
        )


def write_dataset(root: Path, episodes: int, length: int, image_size: int) -> Path:
    """A LeRobot v2.1 dataset in our LIBERO conventions; every other episode fails (reward 0)."""
    from hume.data import LeRobotWriter
    from hume.data.format import libero_features

    writer = LeRobotWriter(root, fps=20, features=libero_features(image_size, 20, CAMERAS))
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, length, dtype=np.float32)[:, None]
    for ep in range(episodes):
        phase = rng.uniform(0, np.pi, (1, 8)).astype(np.float32)
        state = np.sin(2 * t + phase)
        action = np.cos(3 * t + phase[:, :7])
        success = ep % 2 == 0
        reward = np.zeros(length, np.float32)
        reward[-1] = float(success)
        last = np.arange(length) == length - 1
        frames = {
            **{
                IMAGE_KEY.format(cam): rng.integers(0, 256, (length, image_size, image_size, 3), np.uint8)
                for cam in CAMERAS
            },
            STATE_KEY: state,
            ACTION_KEY: action,
            "next.reward": reward,
            "next.done": last,
            "next.success": last & success,
        }
        writer.add_episode(ep, TASKS[ep % len(TASKS)], frames, success=success)
    writer.finalize()
    return root


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _measure_stage(
    cfg: Config, stage: str, dataset: str, init_from: str, out: str, result, rank: int, world: int, port: int
) -> None:
    """In a fresh process (rank `rank` of `world`): train `stage` for steps + timed_steps steps;
    put the figures in `result`."""
    if world > 1:
        # What torchrun sets: accelerate reads it and joins the processes over gloo.
        os.environ.update(
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(world),
            LOCAL_WORLD_SIZE=str(world),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
    import torch

    from hume.train.config import TrainConfig
    from hume.train.trainer import train

    torch.set_num_threads(max(1, cfg.threads // world))
    baseline = _rss_mb()
    n = cfg.steps + cfg.timed_steps
    train_cfg = TrainConfig(
        stage=stage,
        dataset=dataset,
        model=cfg.model,
        init_from=init_from,
        output=f"{out}/{stage}",
        steps=n,
        batch_size=cfg.batch_size,
        save_every=n,
        log_every=n,
        resume=False,
        cpu=cfg.device == "cpu",
        distributed=cfg.distributed,
        mixed_precision=cfg.mixed_precision,
        activation_checkpointing=cfg.activation_checkpointing,
    )
    train_cfg.validate()
    trained = train(train_cfg)
    checkpoint = str(trained.checkpoint)
    step_s = float(np.mean(trained.step_seconds[cfg.steps :]))
    cpu_step_s = float(np.mean(trained.step_cpu_seconds[cfg.steps :]))
    result.update(
        step_s=step_s,
        cpu_s_per_step=cpu_step_s,
        peak_rss_mb=_rss_mb(),
        baseline_rss_mb=baseline,
        state_mb={k: v / 2**20 for k, v in trained.memory.items()},
        peak_device_mb=torch.cuda.max_memory_allocated() / 2**20 if cfg.device == "cuda" else None,
        checkpoint=checkpoint,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _in_fresh_processes(cfg: Config, stage: str, dataset: str, init_from: str, out: str, world: int) -> dict:
    """One row: `stage` trained by `world` fresh processes together."""
    # fork: the child starts with the parent's imports (torch, the trainer) and nothing else; no
    # torch op has run in the parent, so no thread pool is inherited half-made.
    ctx = multiprocessing.get_context("fork")
    port = _free_port()
    with ctx.Manager() as manager:
        results = [manager.dict() for _ in range(world)]
        procs = [
            ctx.Process(
                target=_measure_stage,
                args=(cfg, stage, dataset, init_from, out, results[rank], rank, world, port),
            )
            for rank in range(world)
        ]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        failed = [proc.exitcode for proc in procs if proc.exitcode != 0]
        if failed:
            raise RuntimeError(f"stage {stage}: a training process failed (exit codes {failed})")
        ranks = [dict(r) for r in results]
    first = ranks[0]
    return {
        "stage": stage,
        "processes": world,
        "step_s": round(first["step_s"], 4),
        "samples_per_s": round(cfg.batch_size * world / first["step_s"], 2),
        "cpu_s_per_step": round(first["cpu_s_per_step"], 4),
        "samples_per_cpu_s": round(cfg.batch_size / first["cpu_s_per_step"], 2),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in ranks), 1),
        "baseline_rss_mb": round(max(r["baseline_rss_mb"] for r in ranks), 1),
        "state_mb": {k: round(max(r["state_mb"][k] for r in ranks), 2) for k in first["state_mb"]},
        "peak_device_mb": None
        if first["peak_device_mb"] is None
        else round(max(r["peak_device_mb"] for r in ranks), 1),
        "checkpoint": first["checkpoint"],
    }


def run(cfg: Config) -> dict:
    # Imported once, before the stages fork: the trainer, and the plotting it does at the end.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    import hume.train.trainer  # noqa: F401

    cfg = cfg.effective()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hume-train-throughput-") as tmp:
        dataset = str(write_dataset(Path(tmp) / "data", cfg.episodes, cfg.episode_length, cfg.image_size))
        for world in cfg.processes:
            init_from = ""
            for stage in ("system2", "system1_value"):
                row = _in_fresh_processes(cfg, stage, dataset, init_from, f"{tmp}/{world}", world)
                init_from = row.pop("checkpoint")
                log.info("%s", row)
                rows.append(row)
    table = None
    if cfg.paper_model:
        from hume.bench.train_memory import paper_table

        table = paper_table(cfg.paper_model)
    return {
        "benchmark": "train-throughput",
        "device": cfg.device,
        "model": cfg.model,
        "batch_size": cfg.batch_size,
        "timed_steps": cfg.timed_steps,
        "threads": cfg.threads,
        "image_size": cfg.image_size,
        "distributed": cfg.distributed,
        "mixed_precision": cfg.mixed_precision,
        "activation_checkpointing": cfg.activation_checkpointing,
        "stages": rows,
        "paper_memory": table,
    }


def table(result: dict) -> str:
    rows = [
        f"{'stage':<14} {'procs':>5} {'s/step':>8} {'samples/s':>10} {'CPU s/step':>11} "
        f"{'peak RSS MB':>12} {'baseline MB':>12} {'params/grads/optim MB per process':>34}"
    ]
    for r in result["stages"]:
        state = "/".join(f"{r['state_mb'][k]:.1f}" for k in ("parameters", "gradients", "optimizer"))
        rows.append(
            f"{r['stage']:<14} {r['processes']:>5} {r['step_s']:>8.3f} {r['samples_per_s']:>10.2f} "
            f"{r['cpu_s_per_step']:>11.3f} {r['peak_rss_mb']:>12.0f} {r['baseline_rss_mb']:>12.0f} "
            f"{state:>34}"
        )
    paper = result.get("paper_memory")
    if paper:
        rows.append(f"\n{paper['model']}, per GPU, GB (batch {paper['batch_size_per_gpu']} per GPU):")
        rows.append(
            f"{'stage':<14} {'GPUs':>4} {'params':>7} {'gathered':>8} {'grads':>6} {'Adam':>6} "
            f"{'activ.':>7} {'act.+ckpt':>9} {'total':>7} {'total+ckpt':>10}"
        )
        for name, stage in paper["stages"].items():
            for r in stage["rows"]:
                act = r.get("activations_without_checkpointing_gb", float("nan"))
                act_ckpt = r.get("activations_with_checkpointing_gb", float("nan"))
                total = r.get("total_without_checkpointing_gb", r.get("total_before_activations_gb"))
                total_ckpt = r.get("total_with_checkpointing_gb", float("nan"))
                rows.append(
                    f"{name:<14} {r['gpus']:>4} {r['parameters_gb']:>7.2f} {r['gathered_gb']:>8.2f} "
                    f"{r['gradients_gb']:>6.2f} {r['optimizer_gb']:>6.2f} {act:>7.2f} {act_ckpt:>9.2f} "
                    f"{total:>7.2f} {total_ckpt:>10.2f}"
                )
    return "\n".join(rows)
