"""The two nodes for a long run under attack: does anything grow, stall or fall over?

The System-2 and System-1 nodes run as `hume serve` processes on this host (System 1 drives the
kinematic robot for `ticks` control ticks) while a hostile sender (hume/bench/hostile.py) sends
`hostile_messages` messages that must all be dropped: half into System 2's observation socket,
half into System 1's chunk stream (through a forwarder between System 2's chunk socket and
System 1, which any peer on the chunk path could be), from the moment System 2 reports System 1
connected. The resident memory (VmRSS) of both nodes is sampled every `rss_every_s` from then
on; the result reports its growth from the end of warm-up (the first tenth of the run) to the
end, the counters of both nodes and the tick latency.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hume.config import ConfigError

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
STARTUP_S = 300.0


@dataclass(frozen=True)
class Config:
    checkpoint: str = "checkpoints/default"
    # Control ticks System 1 runs (one episode of the kinematic robot).
    ticks: int = 10_000
    control_hz: float = 20.0
    # Messages the hostile sender spreads evenly over the run, half to each node.
    hostile_messages: int = 100_000
    rss_every_s: float = 1.0
    # A short run (300 ticks, 2000 hostile messages) to check the harness.
    smoke: bool = False
    json: bool = False
    output: str = ""

    def validate(self) -> None:
        if self.ticks < 100 or self.control_hz <= 0 or self.hostile_messages < 0 or self.rss_every_s <= 0:
            raise ConfigError("ticks >= 100, control_hz > 0, hostile_messages >= 0, rss_every_s > 0")
        if not Path(self.checkpoint).is_dir():
            raise ConfigError(f"checkpoint folder {self.checkpoint} not found")

    def effective(self) -> Config:
        return dataclasses.replace(self, ticks=300, hostile_messages=2000) if self.smoke else self


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(x.split()[1]) / 1024 for x in f if x.startswith("VmRSS"))
    except (OSError, StopIteration):
        return None


def _forward(ctx, upstream: str, hostile: str, downstream: str) -> None:
    """System 2's chunks (and the hostile sender's) on to System 1, until ctx is terminated."""
    import zmq

    xsub, xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
    for sock in (xsub, xpub):
        sock.linger = 0
    xsub.connect(upstream)
    xsub.bind(hostile)
    xpub.bind(downstream)
    try:
        zmq.proxy(xsub, xpub)
    except zmq.ContextTerminated:
        pass
    finally:
        xsub.close()
        xpub.close()


class Hostile(threading.Thread):
    """Sends the hostile messages at an even rate; `sent` counts them per target."""

    def __init__(self, ctx, system2: str, system1: str, model_id: str, count: int, seconds: float):
        import zmq

        super().__init__(daemon=True)
        from hume.bench import hostile

        self.zmq = zmq
        self.socks = {name: ctx.socket(zmq.PUB) for name in ("system2", "system1")}
        for name, endpoint in (("system2", system2), ("system1", system1)):
            self.socks[name].sndhwm = 0  # queue rather than drop: every message is counted as sent
            self.socks[name].linger = 0
            self.socks[name].connect(endpoint)
        self.streams = {"system2": hostile.to_system2(), "system1": hostile.to_system1(model_id)}
        self.count, self.seconds = count, seconds
        self.sent = {"system2": 0, "system1": 0}
        self.halt = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        for i, name in zip(range(self.count), itertools.cycle(self.socks)):
            if self.halt.is_set():
                break
            delay = t0 + self.seconds * i / max(self.count, 1) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.socks[name].send_multipart(next(self.streams[name]))
            self.sent[name] += 1
        for sock in self.socks.values():
            sock.close()


def _serve(node: str, run: Path, log_file: Path, *overrides: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hume.cli.main", "serve", node, f"--output={run}", *overrides]
    return subprocess.Popen(cmd, stdout=log_file.open("w"), stderr=subprocess.STDOUT, cwd=ROOT)


def _wait_heartbeat(inbox, proc: subprocess.Popen, what: str) -> dict:
    from hume.runtime import protocol

    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        for msg in inbox.drain(timeout_ms=200):
            if msg.type == protocol.HEARTBEAT and msg.fields["state"] == "ready":
                return msg.fields
    raise RuntimeError(f"no ready heartbeat from {what} within {STARTUP_S:.0f} s")


def _memory(samples: list[tuple[float, float | None]], warm_s: float) -> dict:
    values = [(t, mb) for t, mb in samples if mb is not None]
    if not values:
        return {}
    after = [mb for t, mb in values if t >= warm_s] or [values[-1][1]]
    return {
        "start_mb": round(values[0][1], 1),
        "after_warmup_mb": round(after[0], 1),
        "end_mb": round(values[-1][1], 1),
        "max_mb": round(max(mb for _, mb in values), 1),
        "growth_after_warmup_mb": round(values[-1][1] - after[0], 1),
        "samples": len(values),
    }


def run(cfg: Config) -> dict:
    import zmq

    from deploy.metrics import compute_metrics
    from hume.runtime.transport import Inbox, Transport

    cfg = cfg.effective()
    seconds = cfg.ticks / cfg.control_hz
    with tempfile.TemporaryDirectory(prefix="hume-soak-") as tmp:
        run = Path(cfg.output or tmp) / "soak"
        run.mkdir(parents=True, exist_ok=True)
        eps = {name: f"ipc://{tmp}/{name}" for name in ("obs", "s2_chunks", "hostile_chunks", "chunks")}
        common = [f"--checkpoint={cfg.checkpoint}", "--torch_threads=1", "--video=false"]
        common += [f"--transport.observations={eps['obs']}", "--transport.heartbeat_s=0.5"]
        ctx = zmq.Context()
        forwarder = threading.Thread(
            target=_forward, args=(ctx, eps["s2_chunks"], eps["hostile_chunks"], eps["chunks"]), daemon=True
        )
        forwarder.start()
        watch = Transport()
        inbox = Inbox(watch.socket(zmq.SUB, eps["chunks"], bind=False), watch.max_message_bytes)
        procs: dict[str, subprocess.Popen] = {}
        samples: dict[str, list] = {"system1": [], "system2": []}
        try:
            procs["system2"] = _serve(
                "system2", run, run / "system2.log", *common, f"--transport.chunks={eps['s2_chunks']}"
            )
            model_id = _wait_heartbeat(inbox, procs["system2"], "System 2")["model_id"]
            procs["system1"] = _serve(
                "system1",
                run,
                run / "system1.log",
                *common,
                f"--transport.chunks={eps['chunks']}",
                "--robot.kind=kinematic",
                "--robot.image_size=128",
                f"--robot.max_steps={cfg.ticks}",
                f"--control.control_hz={cfg.control_hz}",
            )
            hostile = Hostile(ctx, eps["obs"], eps["hostile_chunks"], model_id, cfg.hostile_messages, seconds)
            t0: float | None = None
            next_sample = 0.0  # set with t0
            while procs["system1"].poll() is None:
                for msg in inbox.drain(timeout_ms=100):
                    connected = msg.type == "heartbeat" and msg.fields["stats"].get("system1_connected") == 1
                    if t0 is None and connected:
                        t0 = next_sample = time.monotonic()
                        hostile.start()
                now = time.monotonic()
                if t0 is not None and now >= next_sample:
                    for name, proc in procs.items():
                        samples[name].append((now - t0, _rss_mb(proc.pid)))
                    next_sample = now + cfg.rss_every_s
                if procs["system2"].poll() is not None:
                    raise RuntimeError(f"System 2 died (code {procs['system2'].returncode}) during the soak")
            wall = time.monotonic() - (t0 or time.monotonic())
            hostile.halt.set()
            system2_alive = procs["system2"].poll() is None
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.terminate()
            codes = {name: proc.wait(60) for name, proc in procs.items()}
            watch.close()
            ctx.term()
        metrics = compute_metrics(run)
        summaries = {n: json.loads((run / f"{n}.json").read_text()) for n in ("system1", "system2")}
    warm = 0.1 * wall
    return {
        "benchmark": "soak",
        "ticks": metrics["ticks"],
        "control_hz": cfg.control_hz,
        "wall_s": round(wall, 1),
        "hostile_sent": hostile.sent,
        "exit_codes": codes,
        "system2_alive_at_end": system2_alive,
        "rss": {name: _memory(s, warm) for name, s in samples.items()},
        "tick_ms": metrics["tick_ms"],
        "deadline_misses_per_1000_ticks": metrics["deadline_misses_per_1000_ticks"],
        "chunks_received": metrics["chunks_received"],
        "holds": metrics["holds"],
        "system2_errors": metrics["system2_errors"],
        "envelope": {k: v for k, v in (metrics["envelope"] or {}).items() if isinstance(v, int)},
        "counters": {
            name: {
                k: v
                for k, v in s.items()
                if k in ("received", "accepted", "dropped") or k.startswith("dropped_")
            }
            for name, s in summaries.items()
        },
    }


def table(result: dict) -> str:
    rows = [
        f"soak: {result['ticks']} ticks at {result['control_hz']:.0f} Hz in {result['wall_s']:.0f} s, "
        f"hostile messages sent {result['hostile_sent']}, exit codes {result['exit_codes']}"
    ]
    for name, mem in result["rss"].items():
        if mem:
            rows.append(
                f"  {name}: RSS {mem['after_warmup_mb']:.1f} MB after warm-up -> {mem['end_mb']:.1f} MB "
                f"(growth {mem['growth_after_warmup_mb']:+.1f} MB, max {mem['max_mb']:.1f} MB)"
            )
    for name, c in result["counters"].items():
        rows.append(f"  {name}: received {c['received']}, accepted {c['accepted']}, dropped {c['dropped']}")
    t = result["tick_ms"]
    rows.append(
        f"  tick p50 {t['p50']} ms, p99 {t['p99']} ms; {result['deadline_misses_per_1000_ticks']} misses "
        f"per 1000 ticks; {result['chunks_received']} chunks received, {result['holds']} holds"
    )
    return "\n".join(rows)
