"""Servers that do no model work, for benchmarks that time everything but the model.

`EchoPolicy` answers `think` with one fixed chunk and `refine` with its first h actions, at once.
Behind the real System-2 node or the real openpi websocket server it leaves only messaging,
decoding and the node's own bookkeeping on the clock. Each `serve_*` runs in a child process
(multiprocessing "fork": the parent has paid for the imports) until `stop` is set; `ready` is
set once its sockets are bound.
"""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np

from hume.policy.chunk import Chunk

ACTION_DIM = 7  # the actions of a LIBERO checkpoint (what the other servers are timed with)
MODEL_ID = "echo"
CHUNK_SIZE = 16
NUM_CANDIDATES = 5
STARTUP_S = 60.0


def start(stack: ExitStack, ctx, serve, *args) -> None:
    """Run `serve(*args, ready, stop)` in a child process of `ctx` until `stack` closes (then
    `stop` is set, and the child killed if it has not ended 10 s later); waits for `ready`."""
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=serve, args=(*args, ready, stop), daemon=True)
    proc.start()

    def finish():
        stop.set()
        proc.join(10)
        if proc.is_alive():
            proc.kill()

    stack.callback(finish)
    if not ready.wait(STARTUP_S):
        raise RuntimeError(f"{serve.__name__} did not start within {STARTUP_S:.0f} s")


class EchoPolicy:
    def __init__(self, chunk_size: int = CHUNK_SIZE, horizon: int = CHUNK_SIZE // 2):
        rng = np.random.default_rng(0)
        self.chunk = Chunk(
            actions=rng.uniform(-1, 1, (chunk_size, ACTION_DIM)).astype(np.float32),
            noise_level=0.1,
            values=np.zeros(NUM_CANDIDATES, np.float32),
            index=0,
        )
        self.horizon = horizon

    def reset(self) -> None:
        pass

    def think(self, obs: dict, committed: np.ndarray | None = None, delay: int = 0) -> Chunk:
        return self.chunk

    def refine(self, obs: dict, chunk: Chunk, offset: int) -> np.ndarray:
        return chunk.actions[offset : offset + self.horizon]


def serve_system2(obs_endpoint: str, chunk_endpoint: str, chunk_size: int, ready, stop) -> None:
    """The System-2 node (hume/runtime/system2_node.py) around an EchoPolicy."""
    from hume.runtime.config import DeployConfig, TransportConfig
    from hume.runtime.system2_node import System2Node

    cfg = DeployConfig(transport=TransportConfig(observations=obs_endpoint, chunks=chunk_endpoint))
    run_node(System2Node(cfg, EchoPolicy(chunk_size), MODEL_ID), ready, stop)


def run_node(node, ready, stop) -> None:
    """Run a System-2 node in this child process until `stop` is set; `ready` once it is bound."""
    node.stop = stop
    ready.set()
    try:
        node.run()
    finally:
        node.close()


def serve_openpi(port_out, ready, stop) -> None:
    """The openpi websocket server of `hume serve openpi` around an EchoPolicy, on a free port."""
    from deploy.robots.base import LIBERO_ENVELOPE
    from hume.runtime.config import EnvelopeConfig
    from hume.runtime.envelope import resolve_declared
    from hume.runtime.openpi_server import OpenpiServer

    limits = resolve_declared(EnvelopeConfig(), LIBERO_ENVELOPE)
    server = OpenpiServer(EchoPolicy(), MODEL_ID, "127.0.0.1", 0, limits)
    port_out.value = server.port
    ready.set()
    server.run_until(stop)


def serve_bare_zmq(obs_endpoint: str, chunk_endpoint: str, reply: list[bytes], ready, stop) -> None:
    """The floor: bare pyzmq with the same sockets as the nodes, answering every message with `reply`."""
    import zmq

    ctx = zmq.Context()
    sub, pub = ctx.socket(zmq.SUB), ctx.socket(zmq.PUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.bind(obs_endpoint)
    pub.bind(chunk_endpoint)
    ready.set()
    try:
        while not stop.is_set():
            if sub.poll(100):
                sub.recv_multipart(copy=False)
                pub.send_multipart(reply, copy=False)
    finally:
        ctx.destroy(linger=0)
