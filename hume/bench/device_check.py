"""Everything that needs a GPU, in one run of at most 8 minutes: `scripts/device_check.sh`.

A GPU may be lent for minutes only, so one command measures all the GPU figures the project lacks
and leaves them as JSON (`device-check.json`) and a markdown table headed with the device's name
(`device_check.md`) in `output`: the paper-size policy's think (N = 1, 5, 10) and refine, eager and
fast, in bf16; one System 2 serving 1, 8, 32 clients; one training step per stage (full and LoRA)
with peak memory; one sharded (FSDP) step; the System-1 tick with and without CUDA graphs
(hume/bench/device_steps.py has each step).

Each step runs in its own process (its own session, so its children go with it) under its own time
budget; the whole run stops at `budget_s`. A step that fails, runs out of time or lacks a switch
is a row of the table saying so, and the next step runs. `smoke` runs the same steps at the tiny
size on the CPU in float32 (seconds each; its figures mean nothing): the test suite runs it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import platform
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hume.config import ConfigError

log = logging.getLogger(__name__)

TABLE_FILE = "device_check.md"
RESULT_FILE = "device-check.json"
# A step is not started with less time than this left in the run.
MIN_STEP_S = 10.0


@dataclass(frozen=True)
class Config:
    # configs/model/<size>.yaml, random weights (no weights can be downloaded): full = the paper's.
    size: str = "full"
    device: str = "cuda"
    # The inference dtype (the policy's `dtype` switch) and the training steps' autocast.
    dtype: str = "bfloat16"
    # Numbers of candidates to time think with; untimed and timed calls per figure.
    candidates: list[int] = field(default_factory=lambda: [1, 5, 10])
    warmup: int = 2
    repeats: int = 10
    # s2-batching: client counts, and timed seconds per count and node.
    clients: list[int] = field(default_factory=lambda: [1, 8, 32])
    batching_seconds: float = 4.0
    # Training steps: frames per step (the paper's per-GPU batch), activation checkpointing, LoRA rank.
    train_batch: int = 32
    activation_checkpointing: bool = True
    lora_rank: int = 16
    # System-1 ticks timed per variant (at 20 Hz).
    ticks: int = 100
    # Only these steps (names of hume/bench/device_steps.py's STEPS); empty = all, in order.
    steps: list[str] = field(default_factory=list)
    # The whole run's wall-clock limit (the start-up before it takes seconds), and every step's
    # own limit instead of its budget in device_steps.STEPS (0: those budgets).
    budget_s: float = 460.0
    step_budget_s: float = 0.0
    # The same steps at the tiny size on the CPU in float32, short; its figures mean nothing.
    smoke: bool = False
    json: bool = False
    output: str = "outputs/device_check"

    def validate(self) -> None:
        from hume.bench.device_steps import MODELS, STEPS

        if not (MODELS / f"{self.size}.yaml").is_file():
            raise ConfigError(f"size: no configs/model/{self.size}.yaml")
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"dtype must be float32 or bfloat16, got {self.dtype!r}")
        unknown = [s for s in self.steps if s not in STEPS]
        if unknown:
            raise ConfigError(f"unknown steps {unknown}; the steps are {list(STEPS)}")
        if not self.candidates or min(self.candidates) < 1 or not self.clients or min(self.clients) < 1:
            raise ConfigError("candidates and clients must be numbers >= 1")
        if self.warmup < 1 or self.repeats < 1 or self.train_batch < 1 or self.ticks < 10:
            raise ConfigError("warmup, repeats and train_batch must be >= 1, ticks >= 10")
        if self.budget_s <= 0 or self.step_budget_s < 0:
            raise ConfigError("budget_s must be > 0 and step_budget_s >= 0")
        if not self.output:
            raise ConfigError("output must name a folder")

    def effective(self) -> Config:
        if not self.smoke:
            return self
        return dataclasses.replace(
            self,
            size="tiny",
            device="cpu",
            dtype="float32",
            warmup=1,
            repeats=2,
            clients=[1, 2],
            batching_seconds=2.0,
            train_batch=2,
            ticks=40,
        )


def step_budget(cfg: Config, gpu_budget: float) -> float:
    """A step's time limit: step_budget_s if set, else its GPU budget, or on the CPU smoke run a
    generous fixed one (the tiny steps take seconds, but a loaded machine must not time them out)."""
    if cfg.step_budget_s:
        return cfg.step_budget_s
    return 240.0 if cfg.smoke else gpu_budget


def _child(name: str, cfg: Config, result_path: str, log_path: str) -> None:
    """One step in a process of its own: its own session (a timeout kills its children too), its
    output in `log_path`, its figures in `result_path` as they come."""
    from hume.bench.device_steps import STEPS

    os.setsid()
    with open(log_path, "ab") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True
    )

    def report(partial: dict) -> None:
        tmp = Path(result_path + ".tmp")
        tmp.write_text(json.dumps(partial))
        tmp.replace(result_path)

    try:
        got = STEPS[name][0](cfg, report)
        got.setdefault("status", "ok")
    except BaseException as e:
        traceback.print_exc()
        got = {"status": "failed", "error": f"{type(e).__name__}: {e}"[:300]}
    report(got)
    sys.stdout.flush()
    sys.stderr.flush()


def _kill_session(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_step(ctx, name: str, cfg: Config, budget: float, out: Path) -> dict:
    """Run step `name` in its own process for at most `budget` seconds; its row."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result_path = logs / f"{name}.json"
    result_path.unlink(missing_ok=True)
    log_path = logs / f"{name}.log"
    log_path.unlink(missing_ok=True)
    start = time.monotonic()
    proc = ctx.Process(target=_child, args=(name, cfg, str(result_path), str(log_path)))
    proc.start()
    proc.join(budget)
    timed_out = proc.is_alive()
    if timed_out:
        # The step and whatever it started (nodes, training processes) go together.
        _kill_session(proc.pid)
        proc.join()
    seconds = round(time.monotonic() - start, 1)
    got = json.loads(result_path.read_text()) if result_path.is_file() else {}
    if timed_out:
        partial = " (its figures so far are in the JSON)" if got else ""
        got = {**got, "status": "timed out", "error": f"stopped at its budget of {budget:.0f} s{partial}"}
    elif proc.exitcode != 0 or "status" not in got:
        got = {
            **got,
            "status": "failed",
            "error": got.get("error", f"the process exited with {proc.exitcode}"),
        }
    row = {
        "step": name,
        "status": got.pop("status"),
        "seconds": seconds,
        "log": str(log_path),
        "pid": proc.pid,
    }
    for key in ("reason", "error", "summary"):
        if key in got:
            row[key] = got.pop(key)
    return {**row, "result": got}


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return "no CUDA device"
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def run(cfg: Config) -> dict:
    import torch

    from hume.bench.device_steps import STEPS
    from sim.provenance import code_version

    cfg.validate()
    cfg = cfg.effective()
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result: dict[str, Any] = {
        "benchmark": "device-check",
        "device": device_name(cfg.device),
        "smoke": cfg.smoke,
        "size": cfg.size,
        "dtype": cfg.dtype,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "code_version": code_version(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "config": dataclasses.asdict(cfg),
        "steps": [],
    }
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        result["steps"] = [
            {"step": name, "status": "skipped", "error": "no CUDA device", "seconds": 0.0}
            for name in cfg.steps or STEPS
        ]
        return result
    # Step processes fork from a server that imported torch but never touched CUDA (a process that
    # has cannot fork a working CUDA child), and start in a fraction of a second.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "hume.bench.device_steps"])
    for name in cfg.steps or list(STEPS):
        _, what, gpu_budget = STEPS[name]
        left = cfg.budget_s - (time.monotonic() - started)
        budget = min(step_budget(cfg, gpu_budget), left)
        if left < MIN_STEP_S:
            row = {"step": name, "status": "skipped", "error": "the run's time was spent", "seconds": 0.0}
        else:
            log.info("step %s (at most %.0f s)", name, budget)
            row = run_step(ctx, name, cfg, budget, out)
        row["what"] = what.format(
            candidates="/".join(map(str, cfg.candidates)),
            clients="/".join(map(str, cfg.clients)),
            dtype=cfg.dtype,
        )
        log.info("step %s: %s", name, row["status"])
        result["steps"].append(row)
        result["seconds"] = round(time.monotonic() - started, 1)
        (out / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
        (out / TABLE_FILE).write_text(table(result) + "\n")
    return result


def _comparison(steps: dict) -> str:
    """Fast against eager, when both ran."""
    eager, fast = steps.get("think-eager", {}), steps.get("think-fast", {})
    if eager.get("status") != "ok" or fast.get("status") != "ok":
        return ""
    eager, fast = eager["result"], fast["result"]
    ratios = [
        f"think N={e['n']} {e['p50_ms'] / f['p50_ms']:.2f}x"
        for e, f in zip(eager["think"], fast["think"], strict=True)
    ]
    refine = eager["refine"]["p50_ms"] / fast["refine"]["p50_ms"]
    return f"Fast against eager (p50 eager / fast): {', '.join(ratios)}, refine {refine:.2f}x."


def table(result: dict) -> str:
    smoke = " — smoke run: tiny sizes on the CPU, the figures mean nothing" if result["smoke"] else ""
    lines = [
        f"### Device check: {result['device']}{smoke}",
        "",
        f"{result['date']}, code {result['code_version']}, torch {result['torch']}"
        f"{', CUDA ' + result['cuda'] if result['cuda'] else ''}; model size `{result['size']}` "
        f"(random weights), {result['dtype']}; `scripts/device_check.sh`"
        f"{' --smoke' if result['smoke'] else ''}.",
        "",
        "| step | what | status | result | s |",
        "|---|---|---|---|---|",
    ]
    for row in result["steps"]:
        status = row["status"]
        if status != "ok":
            status = f"{status}: {row.get('reason') or row.get('error', '')}".replace("|", "/")
        cells = (
            f"`{row['step']}`",
            row.get("what", ""),
            status,
            row.get("summary", ""),
            f"{row['seconds']:.0f}",
        )
        lines.append(f"| {' | '.join(cells)} |")
    comparison = _comparison({row["step"]: row for row in result["steps"]})
    if comparison:
        lines += ["", comparison]
    return "\n".join(lines)
