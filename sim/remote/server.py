"""The env server: one simulator in its own process (and Python environment), serving requests.

    python -m sim.remote.server --sim metaworld --endpoint ipc:///tmp/x/env.sock [--options JSON]

It binds a ROUTER socket and answers each request of sim/remote/protocol.py in order, one
simulator, one client at a time. A client that disappears costs nothing: the server keeps no
per-client state beyond the simulator's, and it exits when its parent process is gone or after
`--idle-timeout` seconds without a request, so a crashed evaluator leaves no simulator behind.

A simulator plugs in as a class with the members of `Simulator` below (sim/remote/metaworld_sim.py
is one); `--sim` names it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import time
from typing import Protocol

import numpy as np
import zmq

from hume.runtime.protocol import MessageError
from hume.runtime.transport import check_endpoint
from sim.remote import protocol as p

log = logging.getLogger(__name__)

SIMULATORS = {
    "metaworld": "sim.remote.metaworld_sim:MetaWorldSim",
    "robosuite": "sim.remote.robosuite_sim:RobosuiteSim",
}


class Simulator(Protocol):
    spec: dict  # what `hello` answers: tasks, action/state widths, cameras (docs/protocol.md)

    def reset(self, task: int, start: int, seed: int, state: np.ndarray | None) -> dict: ...

    def step(self, action: np.ndarray) -> dict: ...

    def get_state(self) -> np.ndarray: ...

    def set_state(self, state: np.ndarray) -> dict: ...

    def expert_action(self) -> np.ndarray: ...

    def close(self) -> None: ...


# Observation replies: these keys of a simulator's result go in the header, arrays in frames.
_HEADER_KEYS = ("task", "step", "success", "instruction", "start_distance", "nearest_start")


def _observation(result: dict) -> tuple[dict, dict]:
    fields = {k: result[k] for k in _HEADER_KEYS if k in result}
    arrays = {k: v for k, v in result.items() if k.startswith("observation.")}
    return fields, arrays


def handle(sim: Simulator, msg) -> tuple[str, dict, dict]:
    """One request -> (reply type, fields, arrays)."""
    if msg.type == p.HELLO:
        return p.SPEC, {"spec": sim.spec}, {}
    if msg.type == p.RESET:
        f = msg.fields
        return p.OBSERVATION, *_observation(
            sim.reset(f["task"], f["start"], f["seed"], msg.arrays.get(p.STATE_ARRAY))
        )
    if msg.type == p.STEP:
        return p.OBSERVATION, *_observation(sim.step(np.array(msg.arrays[p.ACTION_ARRAY])))
    if msg.type == p.GET_STATE:
        return p.STATE, {}, {p.STATE_ARRAY: np.asarray(sim.get_state(), np.float64)}
    if msg.type == p.SET_STATE:
        return p.OBSERVATION, *_observation(sim.set_state(np.array(msg.arrays[p.STATE_ARRAY])))
    if msg.type == p.EXPERT_ACTION:
        return p.ACTION, {}, {p.ACTION_ARRAY: np.asarray(sim.expert_action(), np.float32)}
    raise MessageError("bad_request", f"{msg.type!r} is a reply, not a request")


def serve(sim: Simulator, endpoint: str, idle_timeout_s: float = 600.0) -> None:
    """Answer requests on `endpoint` until a `close` request, the parent's exit or the idle timeout."""
    check_endpoint(endpoint, secure=False)
    ctx: zmq.Context = zmq.Context.instance()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 500)
    sock.bind(endpoint)
    session = secrets.token_hex(8)
    parent = os.getppid()
    last = time.monotonic()
    log.info("env server on %s", endpoint)
    try:
        while True:
            if not sock.poll(200):
                if os.getppid() != parent or time.monotonic() - last > idle_timeout_s:
                    log.info("env server: client gone, exiting")
                    return
                continue
            identity, *frames = sock.recv_multipart(copy=False)
            last = time.monotonic()
            try:
                msg = p.decode(frames)
            except MessageError as e:
                # No seq to answer with: a malformed request gets an error the client can log.
                sock.send_multipart([identity, *p.encode(p.ERROR, session, 0, p.error_fields(e.reason, e))])
                continue
            if msg.type == p.CLOSE:
                sock.send_multipart([identity, *p.encode(p.CLOSED, session, msg.seq)], copy=False)
                return
            try:
                kind, fields, arrays = handle(sim, msg)
                reply = p.encode(kind, session, msg.seq, fields, arrays)
            except MessageError as e:
                reply = p.encode(p.ERROR, session, msg.seq, p.error_fields(e.reason, e))
            except Exception as e:  # the simulator's own failure goes back to the client, named
                log.exception("env server: %s failed", msg.type)
                reply = p.encode(
                    p.ERROR, session, msg.seq, p.error_fields("sim_error", f"{type(e).__name__}: {e}")
                )
            sock.send_multipart([identity, *reply], copy=False)
    finally:
        sim.close()
        sock.close()


def load_simulator(name: str, options: dict) -> Simulator:
    import importlib

    if name not in SIMULATORS and ":" not in name:
        raise SystemExit(
            f"unknown simulator {name!r}; known: {', '.join(SIMULATORS)} or package.module:Class"
        )
    module, _, cls = SIMULATORS.get(name, name).partition(":")
    return getattr(importlib.import_module(module), cls)(**options)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sim", required=True, help="metaworld, robosuite, or package.module:Class")
    parser.add_argument("--endpoint", required=True, help="ipc://PATH or tcp://127.0.0.1:PORT")
    parser.add_argument("--options", default="{}", help="JSON keyword arguments of the simulator")
    parser.add_argument("--idle-timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s env-server %(levelname)s %(message)s")
    serve(load_simulator(args.sim, json.loads(args.options)), args.endpoint, args.idle_timeout)


if __name__ == "__main__":
    main()
