"""The steps of `hume bench device-check` (hume/bench/device_check.py), each run in its own process.

Every step takes the device check's Config and a `report(dict)` callback that records its figures
so far (so a step stopped at its time budget still leaves what it measured), and returns its final
figures with a one-line `summary` for the table, or `{"status": "unavailable", ...}` when the code
lacks what the step needs.

Which inference path runs is decided in one place, `policy_switches`: the HumeConfig fields
`compile` (the fast path) and `dtype`. A field this code's HumeConfig lacks makes the variant
"unavailable", unless the value asked for is what the code does without the field anyway (eager,
float32).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MODELS = Path(__file__).resolve().parents[2] / "configs" / "model"
# What the policy does when HumeConfig has no such field.
IMPLICIT = {"compile": False, "dtype": "float32"}

Report = Callable[[dict], None]


def policy_switches(fast: bool, dtype: str) -> dict:
    """The HumeConfig overrides of one inference variant: fast (compiled) or eager, and the dtype."""
    return {"compile": fast, "dtype": dtype}


def missing_switches(switches: dict) -> list[str]:
    """The switches this HumeConfig has no field for and that ask for something else than the
    code's implicit behaviour."""
    from hume.models.configuration_hume import HumeConfig

    fields = {f.name for f in dataclasses.fields(HumeConfig)}
    return [k for k, v in switches.items() if k not in fields and v != IMPLICIT[k]]


def build_policy(size: str, device: str, switches: dict):
    """configs/model/<size>.yaml with random weights and the switches, built on `device` directly
    (a full-size model initialised on the CPU first would cost a minute)."""
    import torch

    from hume.config import parse_config
    from hume.models.configuration_hume import HumeConfig
    from hume.policy import HumePolicy

    config = parse_config(HumeConfig, ["--config", str(MODELS / f"{size}.yaml")])
    fields = {f.name for f in dataclasses.fields(HumeConfig)}
    config = dataclasses.replace(config, **{k: v for k, v in switches.items() if k in fields})
    torch.manual_seed(0)
    with torch.device(device):
        policy = HumePolicy.from_config(config)
    return policy.to(device).eval()


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str, warmup: int, repeats: int) -> dict:
    """First call's seconds (compilation and warm-up show here), then the median of `repeats`."""
    times = []
    for i in range(warmup + repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
        if i == 0:
            first = times[0]
    timed = times[warmup:]
    return {
        "first_s": round(first, 4),
        "p50_ms": round(float(np.median(timed)) * 1e3, 3),
        "calls": len(timed),
    }


def peak_memory_gib(device: str) -> float:
    """The allocator's peak on a GPU; the process's peak resident set on the CPU."""
    import torch

    if device.startswith("cuda"):
        return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def think_and_refine(cfg, report: Report, fast: bool) -> dict:
    """`HumePolicy.think` for each N in cfg.candidates and one `refine`, at cfg.size in cfg.dtype."""
    import torch

    from hume.bench.full_model import observation
    from hume.policy.draws import Draws

    switches = policy_switches(fast, cfg.dtype)
    missing = missing_switches(switches)
    if missing:
        return {"status": "unavailable", "reason": f"no {missing[0]} switch", "switches": switches}
    start = time.perf_counter()
    policy = build_policy(cfg.size, cfg.device, switches)
    build_s = time.perf_counter() - start
    wanted = getattr(torch, cfg.dtype)
    if policy.dtype != wanted:
        raise RuntimeError(f"the dtype switch asked for {wanted}, the policy computes in {policy.dtype}")
    result = {
        "switches": switches,
        "parameters": sum(p.numel() for p in policy.parameters()),
        "build_s": round(build_s, 2),
        "think": [],
    }
    report(result)
    obs = observation(policy.config, np.random.default_rng(0))
    base = policy.config
    for n in cfg.candidates:
        policy.config = dataclasses.replace(base, num_candidates=n)
        think = functools.partial(policy.think, obs, draws=Draws.seeded(0))
        result["think"].append({"n": n, **_timed(think, cfg.device, cfg.warmup, cfg.repeats)})
        log.info("think N=%d: %s", n, result["think"][-1])
        report(result)
    policy.config = base
    chunk = policy.think(obs)
    result["refine"] = _timed(lambda: policy.refine(obs, chunk, 0), cfg.device, cfg.warmup, cfg.repeats)
    result["peak_memory_gib"] = peak_memory_gib(cfg.device)
    # Shown, so that a fast path that traced nothing is seen as the eager one it is.
    result["traced_graphs"] = policy.traced_graphs
    thinks = ", ".join(f"N={r['n']} {r['p50_ms']:.1f} ms" for r in result["think"])
    result["summary"] = (
        f"think {thinks}; refine {result['refine']['p50_ms']:.1f} ms; build {build_s:.1f} s, "
        f"first think {result['think'][0]['first_s']:.1f} s; peak {result['peak_memory_gib']} GiB; "
        f"{result['traced_graphs']} graphs traced"
    )
    return result


def think_eager(cfg, report: Report) -> dict:
    return think_and_refine(cfg, report, fast=False)


def think_fast(cfg, report: Report) -> dict:
    return think_and_refine(cfg, report, fast=True)


def _refine_timing(s1_config, device: str, warmup: int, repeats: int) -> dict:
    """`refine` of the policy hume bench s1-tick builds for `s1_config` (compile mode included)."""
    from hume.bench import s1_tick
    from hume.bench.full_model import observation

    policy = s1_tick.build_policy(s1_config, device)
    obs = observation(policy.config, np.random.default_rng(0))
    chunk = policy.think(obs)
    # CUDA graphs are recorded on the first calls after compilation: one more warm-up.
    return _timed(lambda: policy.refine(obs, chunk, 0), device, warmup + 1, repeats)


def s1_cuda_graphs(cfg, report: Report) -> dict:
    """System 1 at cfg.size (hume bench s1-tick's policy: the paper's System 1, System 2 tiny):
    `refine` eager and compiled with CUDA graphs (torch.compile mode reduce-overhead), to see
    whether the graphs pay; then the control tick through the real System-1 node, eager."""
    from hume.bench import s1_tick

    base = s1_tick.Config(
        size=cfg.size, device=cfg.device, dtype=cfg.dtype, ticks=cfg.ticks, warmup=cfg.ticks // 10
    )
    result: dict[str, Any] = {}
    for name, mode in (("eager", ""), ("cuda_graphs", "reduce-overhead")):
        if mode and not cfg.device.startswith("cuda"):
            result[name] = {"skipped": "CUDA graphs need a CUDA device"}
            continue
        result[name] = _refine_timing(
            dataclasses.replace(base, compile=mode), cfg.device, cfg.warmup, cfg.repeats
        )
        report(result)
    tick = s1_tick.run(base)
    result["tick"] = {
        "tick_ms": tick["tick_ms"],
        "refine_cpu_ms": tick["refine_cpu_ms"],
        "ticks": tick["ticks"],
    }
    eager = result["eager"]["p50_ms"]
    t = tick["tick_ms"]
    ticks = f"node tick p50 {t['p50']:.2f} ms, p99 {t['p99']:.2f} ms (eager)"
    if "p50_ms" in result["cuda_graphs"]:
        graphs = result["cuda_graphs"]["p50_ms"]
        result["speedup"] = round(eager / graphs, 3)
        verdict = "they pay" if graphs < eager else "they do not pay"
        result["summary"] = (
            f"refine p50 eager {eager:.2f} ms, CUDA graphs {graphs:.2f} ms ({result['speedup']}x: "
            f"{verdict}); first call with graphs {result['cuda_graphs']['first_s']:.1f} s; {ticks}"
        )
    else:
        result["summary"] = (
            f"refine p50 eager {eager:.2f} ms; CUDA graphs: {result['cuda_graphs']['skipped']}; {ticks}"
        )
    return result


def s2_batching(cfg, report: Report) -> dict:
    """One System 2 serving 1/8/32 clients (hume bench s2-batching) at cfg.size."""
    from hume.bench import s2_batching as bench

    clients = tuple(cfg.clients)
    got = bench.run(
        bench.Config(
            clients=clients,
            max_batch=max(clients),
            seconds=cfg.batching_seconds,
            rounds=1,
            warmup=1,
            size=cfg.size,
            device=cfg.device,
            dtype=cfg.dtype,
            # One torch thread per node on the CPU (the two nodes share its cores); on a GPU two
            # keep the CPU side (image preprocessing of many clients) from holding the device up.
            threads=1 if cfg.device == "cpu" else 2,
        )
    )
    rows = got["results"]
    got["summary"] = "; ".join(
        f"{r['clients']} clients {r['batched_thinks_per_s']:.1f} vs {r['one_at_a_time_thinks_per_s']:.1f} "
        f"thinks/s ({r['speedup']}x)"
        for r in rows
    )
    return got


TRAIN_VARIANTS = (("system2", "full"), ("system1_value", "full"), ("system2", "lora"))


def _train_variant(cfg, tcfg, dataset, device, bf16: bool) -> dict:
    """Two optimizer steps of one stage, as the trainer takes them; the second is timed."""
    import torch

    from hume.train.data import TrainingData
    from hume.train.trainer import build_policy as trainer_policy
    from hume.train.trainer import make_stage, set_activation_checkpointing

    torch.manual_seed(0)
    with torch.device(device):
        policy = trainer_policy(tcfg, dataset, None)
    policy.to(device)
    data = TrainingData(dataset, policy.config, policy.normalizer, policy.tokenizer)
    stage = make_stage(tcfg, policy)
    set_activation_checkpointing(stage, tcfg.activation_checkpointing)
    optimizers = stage.optimizers(tcfg)
    trainable = {name: [p for g in opt.param_groups for p in g["params"]] for name, opt in optimizers.items()}
    times = []
    for step in range(2):
        _sync(cfg.device)
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(step)
        idx = data.sample(cfg.train_batch, generator)
        batch = {k: v.to(device) for k, v in stage.batch(data, idx, generator, True).items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = stage(batch, torch.Generator(device=device).manual_seed(step))
        out["loss"].backward()
        for name, opt in optimizers.items():
            torch.nn.utils.clip_grad_norm_(trainable[name], tcfg.optim.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
        stage.after_step()
        _sync(cfg.device)
        times.append(time.perf_counter() - start)
    return {
        "trainable": sum(p.numel() for params in trainable.values() for p in params),
        "first_step_s": round(times[0], 3),
        "step_s": round(times[1], 3),
        "loss": round(float(out["loss"]), 4),
        "peak_memory_gib": peak_memory_gib(cfg.device),
    }


def train_step(cfg, report: Report) -> dict:
    """One optimizer step of each training stage at cfg.size (System 2 in full and with LoRA on its
    VLM; System 1 + value head), with the trainer's own policy, stage modules and optimizers, bf16
    autocast as `hume train --mixed_precision=bf16`, and the memory it peaks at. No checkpoint is
    written (a full-size one with its optimizer state is tens of GB). A stage that fails (out of
    memory, say) is recorded and the next one runs."""
    import gc

    import torch

    from hume.bench.train_throughput import write_dataset
    from hume.config import parse_config
    from hume.data.reader import LeRobotDataset
    from hume.models.configuration_hume import HumeConfig
    from hume.train.config import LoraConfig, TrainConfig

    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.cuda.init()  # the peak-memory counters exist once CUDA is initialised
    bf16 = cfg.dtype == "bfloat16"
    model = str(MODELS / f"{cfg.size}.yaml")
    image_size = parse_config(HumeConfig, ["--config", model]).image_size
    result = {"batch_size": cfg.train_batch, "mixed_precision": "bf16" if bf16 else "no", "stages": []}
    with tempfile.TemporaryDirectory(prefix="hume-device-check-") as tmp:
        dataset = LeRobotDataset(str(write_dataset(Path(tmp) / "data", 2, 40, image_size)))
        for stage_name, kind in TRAIN_VARIANTS:
            tcfg = TrainConfig(
                stage=stage_name,
                model=model,
                batch_size=cfg.train_batch,
                activation_checkpointing=cfg.activation_checkpointing,
                lora=LoraConfig(rank=cfg.lora_rank if kind == "lora" else 0),
                cpu=device.type != "cuda",
            )
            gc.collect()  # the previous stage's policy and optimizer state, before the peak resets
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            row = {"stage": stage_name, "weights": kind}
            try:
                row.update(_train_variant(cfg, tcfg, dataset, device, bf16))
            except Exception as e:
                log.exception("stage %s (%s) failed", stage_name, kind)
                row["error"] = f"{type(e).__name__}: {e}"[:200]
            log.info("%s", row)
            result["stages"].append(row)
            report(result)
    memory = "GPU allocator peak" if device.type == "cuda" else "process peak RSS"
    result["summary"] = (
        "; ".join(
            f"{r['stage']} {r['weights']} "
            + (
                f"failed ({r['error']})"
                if "error" in r
                else f"{r['step_s']:.2f} s, {r['peak_memory_gib']} GiB"
            )
            for r in result["stages"]
        )
        + f" (batch {cfg.train_batch}, {memory})"
    )
    failed = [r for r in result["stages"] if "error" in r]
    if failed:
        result.update(status="failed", error=f"{len(failed)} of {len(TRAIN_VARIANTS)} stages failed")
    return result


def fsdp_step(cfg, report: Report) -> dict:
    """`hume bench train-throughput --device=<device> --distributed=fsdp --smoke --paper_model=`:
    one sharded step of each stage of the tiny model through `hume train`'s own loop."""
    from hume.bench import train_throughput as bench

    got = bench.run(bench.Config(device=cfg.device, distributed="fsdp", smoke=True, paper_model=""))
    got["summary"] = "; ".join(
        f"{r['stage']} {r['step_s']:.2f} s/step"
        + (f", peak {r['peak_device_mb']:.0f} MB on the GPU" if r["peak_device_mb"] is not None else "")
        for r in got["stages"]
    )
    return got


# name -> (function, what it measures, time budget in seconds on a GPU)
STEPS: dict[str, tuple[Callable[..., dict], str, float]] = {
    "think-eager": (think_eager, "think N = {candidates} and refine, {dtype}, eager", 60),
    "think-fast": (think_fast, "think N = {candidates} and refine, {dtype}, fast (compile switch)", 110),
    "s2-batching": (s2_batching, "one System 2 serving {clients} clients, {dtype}", 90),
    "train-step": (train_step, "one step per stage (System 2 full and LoRA, System 1 + value head)", 90),
    "fsdp-step": (fsdp_step, "train-throughput --distributed=fsdp --smoke (tiny, sharded)", 40),
    "s1-cuda-graphs": (
        s1_cuda_graphs,
        "System 1's refine, eager vs CUDA graphs, and its node's tick, {dtype}",
        70,
    ),
}
