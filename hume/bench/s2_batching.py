"""One System 2 serving many System-1 clients: thinks/s batched vs one observation at a time.

For 1, 2, 4, 8 clients, the real System-2 node (hume/runtime/system2_node.py) around the same
policy answers clients that each publish an observation every control tick (`control_hz`), as
System-1 nodes do. Two nodes run in child processes, one batching (`serving.max_batch`) and one
answering one observation at a time (max_batch 1); for each client count they take turns, in
`rounds` windows each (so that a change in the machine's load falls on both), in one run. A
"think" here is one client's observation answered with its chunk; thinks/s counts them over the
node's windows. Each node's own record of its thinks (how many observations each batch held)
comes with the result (`nodes`), so a run shows that the batching node batched. The model is the
tiny one on CPU by default (`size=full`, `device=cuda` for the paper's sizes on a GPU).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hume.config import ConfigError

log = logging.getLogger(__name__)

MODELS = Path(__file__).resolve().parents[2] / "configs" / "model"


@dataclass(frozen=True)
class Config:
    # Numbers of clients to measure.
    clients: tuple[int, ...] = (1, 2, 4, 8)
    # The batching node's serving.max_batch (the other node uses 1).
    max_batch: int = 8
    # Timed seconds per client count and node, in `rounds` turns, after each client got `warmup` chunks.
    seconds: float = 10.0
    rounds: int = 3
    warmup: int = 2
    # How often each client sends an observation.
    control_hz: float = 20.0
    # configs/model/<size>.yaml with random weights: tiny (CPU) or full (the paper's sizes, GPU).
    size: str = "tiny"
    # torch device and dtype of the model, e.g. cuda and bfloat16.
    device: str = "cpu"
    dtype: str = "float32"
    # torch threads of each node (1 keeps the two nodes from competing for a 2-core machine).
    threads: int = 1
    seed: int = 0
    # A seconds-long run (1 and 2 clients, 1 s each) to check the harness; its figures mean nothing.
    smoke: bool = False
    # Print the result as one JSON object on the last stdout line.
    json: bool = False
    # Folder for the result (s2-batching.json); empty = no file.
    output: str = ""

    def validate(self) -> None:
        if not (MODELS / f"{self.size}.yaml").is_file():
            raise ConfigError(f"size: no configs/model/{self.size}.yaml")
        if not self.clients or min(self.clients) < 1 or self.max_batch < 1:
            raise ConfigError("clients and max_batch must be >= 1")
        if self.seconds <= 0 or self.warmup < 1 or self.rounds < 1 or self.control_hz <= 0:
            raise ConfigError("seconds and control_hz must be > 0, warmup and rounds >= 1")


def serve(
    cfg: Config, max_batch: int, obs_endpoint: str, chunk_endpoint: str, output: str, ready, stop
) -> None:
    """A System-2 node around the benchmark's policy (run in a child process); it writes its
    summary (system2.json) into `output` when it stops."""
    import torch

    from hume.bench import echo, full_model
    from hume.runtime.config import DeployConfig, ServingConfig, TransportConfig
    from hume.runtime.system2_node import System2Node

    torch.set_num_threads(cfg.threads)
    model = full_model.Config(
        model=str(MODELS / f"{cfg.size}.yaml"), device=cfg.device, dtype=cfg.dtype, seed=cfg.seed
    )
    deploy = DeployConfig(
        transport=TransportConfig(observations=obs_endpoint, chunks=chunk_endpoint),
        serving=ServingConfig(max_batch=max_batch),
    )
    node = System2Node(deploy, full_model.build(model), "s2-batching", Path(output))
    echo.run_node(node, ready, stop)


class Clients:
    """k clients on raw sockets, each sending an observation every control tick and counting the
    chunks that answer it."""

    def __init__(self, ctx, obs_endpoint: str, chunk_endpoint: str, k: int, tag: str, obs: dict, hz: float):
        import zmq

        from hume.runtime import protocol

        self.protocol, self.obs = protocol, obs
        # Each client's session is the hash of its secret (docs/protocol.md).
        secrets = [f"s2-batching-{tag}-{i:04d}" for i in range(k)]
        self.secrets = {protocol.session_of(secret): secret for secret in secrets}
        self.sessions = list(self.secrets)
        self.pubs = {s: ctx.socket(zmq.PUB) for s in self.sessions}
        for sock in self.pubs.values():
            sock.linger = 0
            sock.connect(obs_endpoint)
        self.sub = ctx.socket(zmq.SUB)
        self.sub.linger = 0
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(chunk_endpoint)
        self.seq = dict.fromkeys(self.sessions, 0)
        self.period = 1.0 / hz
        self.answered = dict.fromkeys(self.sessions, 0)

    def send(self, session: str) -> None:
        arrays = {k: v for k, v in self.obs.items() if k != "task"}
        tick = self.seq[session]
        fields = {"episode": 0, "step": tick, "tick": tick, "task": self.obs["task"]}
        fields[self.protocol.SECRET_KEY] = self.secrets[session]
        frames = self.protocol.encode(self.protocol.OBSERVATION, session, tick, fields, arrays)
        self.pubs[session].send_multipart(frames)
        self.seq[session] += 1

    def run(self, until) -> None:
        """Send and count until `until(self)` is true; chunks of an earlier turn are not counted."""
        while self.sub.poll(0):
            self.sub.recv_multipart()
        next_tick = time.monotonic()
        while not until(self):
            if time.monotonic() >= next_tick:
                for s in self.sessions:
                    self.send(s)
                next_tick += self.period
            if self.sub.poll(max(0.0, next_tick - time.monotonic()) * 1e3):
                msg = self.protocol.decode(self.sub.recv_multipart())
                session = msg.fields.get("client")
                if msg.type == self.protocol.CHUNK and session in self.answered:
                    self.answered[session] += 1

    def close(self) -> None:
        for sock in (*self.pubs.values(), self.sub):
            sock.close()


def measure(cfg: Config, nodes: dict[str, tuple[str, str]], k: int, obs: dict, ctx) -> dict:
    """Thinks/s and chunks per client of each node for k clients, the nodes taking turns."""
    clients = {
        name: Clients(ctx, *ends, k, f"{name}-{k}", obs, cfg.control_hz) for name, ends in nodes.items()
    }
    counted = {name: [0] * k for name in nodes}
    elapsed = dict.fromkeys(nodes, 0.0)
    try:
        for group in clients.values():
            group.run(lambda c: min(c.answered.values()) >= cfg.warmup)
        for _ in range(cfg.rounds):
            for name, group in clients.items():
                before = dict(group.answered)
                start = time.monotonic()
                group.run(lambda c, start=start: time.monotonic() - start >= cfg.seconds / cfg.rounds)
                elapsed[name] += time.monotonic() - start
                for i, s in enumerate(group.sessions):
                    counted[name][i] += group.answered[s] - before[s]
    finally:
        for group in clients.values():
            group.close()
    return {
        name: {"thinks_per_s": sum(counted[name]) / elapsed[name], "per_client": counted[name]}
        for name in nodes
    }


def run(cfg: Config) -> dict:
    import multiprocessing

    import zmq

    from hume.bench import echo, full_model
    from hume.config import parse_config
    from hume.models.configuration_hume import HumeConfig

    cfg.validate()
    if cfg.smoke:
        cfg = dataclasses.replace(cfg, clients=(1, 2), seconds=1.0, rounds=1, warmup=1)
    model = parse_config(HumeConfig, ["--config", str(MODELS / f"{cfg.size}.yaml")])
    obs = full_model.observation(model, np.random.default_rng(cfg.seed))
    ctx = zmq.Context()
    rows = []
    names = {"batched": cfg.max_batch, "one_at_a_time": 1}
    with tempfile.TemporaryDirectory() as tmp:
        with ExitStack() as stack:
            stack.callback(ctx.destroy, 0)
            nodes = {}
            for name, max_batch in names.items():
                nodes[name] = (f"ipc://{tmp}/{name}-obs", f"ipc://{tmp}/{name}-chunks")
                fork = multiprocessing.get_context("fork")
                echo.start(stack, fork, serve, cfg, max_batch, *nodes[name], f"{tmp}/{name}")
            for k in cfg.clients:
                row: dict[str, Any] = {"clients": k}
                for name, got in measure(cfg, nodes, k, obs, ctx).items():
                    row[f"{name}_thinks_per_s"] = round(got["thinks_per_s"], 3)
                    row[f"{name}_per_client"] = got["per_client"]
                    log.info("%d clients, %s: %.2f thinks/s", k, name, got["thinks_per_s"])
                one = row["one_at_a_time_thinks_per_s"]
                # None: the one-at-a-time node answered nothing in its windows (too short for a think).
                row["speedup"] = round(row["batched_thinks_per_s"] / one, 3) if one else None
                rows.append(row)
        # The nodes have stopped and written their summaries (warm-up and every count included);
        # one killed for not stopping in time wrote none.
        summaries = {}
        for name in names:
            file = Path(tmp, name, "system2.json")
            if file.is_file():
                summaries[name] = json.loads(file.read_text())
            else:
                log.warning("the %s node did not stop cleanly: no record of its batches", name)
    return {
        "benchmark": "s2-batching",
        "size": cfg.size,
        "device": cfg.device,
        "dtype": cfg.dtype,
        "threads": cfg.threads,
        "max_batch": cfg.max_batch,
        "seconds": cfg.seconds,
        "rounds": cfg.rounds,
        "control_hz": cfg.control_hz,
        "num_candidates": model.num_candidates,
        "results": rows,
        "nodes": {
            name: {
                "max_batch": names[name],
                "chunks_sent": summary["chunks_sent"],
                "batch_size_mean": round(summary["batch_size_mean"], 3),
                "batch_size_max": summary["batch_size_max"],
            }
            for name, summary in summaries.items()
        },
    }


def table(result: dict) -> str:
    header = f"{'clients':>7} {'batched/s':>10} {'one-by-one/s':>13} {'speedup':>8}"
    rows = [
        f"{r['clients']:>7} {r['batched_thinks_per_s']:>10.2f} {r['one_at_a_time_thinks_per_s']:>13.2f} "
        f"{'n/a' if r['speedup'] is None else format(r['speedup'], '.2f') + 'x':>8}"
        for r in result["results"]
    ]
    nodes = [
        f"{name}: {n['batch_size_mean']:.2f} observations per think on average, at most {n['batch_size_max']}"
        for name, n in result["nodes"].items()
    ]
    return "\n".join([f"s2-batching ({result['size']}, {result['device']})", header, *rows, *nodes])
