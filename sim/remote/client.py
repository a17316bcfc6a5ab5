"""Our side of the env server: start a simulator in its own Python environment and drive it.

`RemoteSim` starts `python -m sim.remote.server` with the simulator's interpreter (e.g.
`.venv-metaworld/bin/python`), on an ipc socket in a private folder, and sends requests one at a
time (a DEALER socket: a dead server is a timeout, never a hang). `RemoteEnv` is one task of it
with the LiberoEnv interface the evaluator, `hume collect` and the robot adapter use, plus
`get_state()` / `set_state()` (the full simulator state, for branching) and `expert_action()`.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zmq

from hume.constants import TASK_KEY
from hume.runtime.protocol import Message, MessageError
from sim.remote import protocol as p

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
# Seconds a reply may take: the first reset builds the task's simulator and its 50 starts.
REPLY_TIMEOUT_S = 120.0


class RemoteError(RuntimeError):
    """The env server failed, answered with an error, or did not answer; the message says which."""


def interpreter(venv: str, override_var: str) -> str:
    """The Python of a simulator's own environment: $override_var, else REPO/venv/bin/python."""
    path = os.environ.get(override_var) or str(REPO / venv / "bin" / "python")
    if not os.access(path, os.X_OK):
        raise RemoteError(
            f"the simulator's Python environment is missing: {path} (create it with "
            f"`bash scripts/setup.sh`, which builds {venv}/, or set {override_var})"
        )
    return path


class RemoteSim:
    """One env-server process and the connection to it."""

    def __init__(self, python: str, sim: str, options: dict, timeout_s: float = REPLY_TIMEOUT_S):
        self._dir = tempfile.mkdtemp(prefix="hume-env-")  # mode 0700: only this user may connect
        self.endpoint = f"ipc://{self._dir}/env.sock"
        self.timeout_s = timeout_s
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        cmd = [python, "-m", "sim.remote.server", "--sim", sim, "--endpoint", self.endpoint,
               "--options", json.dumps(options)]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        # The server's log, kept for error messages (and passed on at debug level).
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.session = secrets.token_hex(8)
        self.seq = 0
        self.sock: zmq.Socket | None = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.endpoint)
        try:
            self.spec: dict = self.request(p.HELLO).fields["spec"]
        except BaseException:
            self.close()  # a server that cannot start its simulator leaves nothing behind
            raise

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None  # started with stderr=PIPE
        for line in self.proc.stderr:
            text = line.decode(errors="replace").rstrip()
            self._stderr.append(text)
            log.debug("env server: %s", text)

    def request(self, type_: str, fields: dict | None = None, arrays: dict | None = None) -> Message:
        """Send one request and wait for its reply (the one with this request's seq)."""
        if self.sock is None:
            raise RemoteError("the env server is closed")
        self.seq += 1
        self.sock.send_multipart(p.encode(type_, self.session, self.seq, fields, arrays), copy=False)
        waited = 0.0
        while True:
            if self.sock.poll(500):
                try:
                    reply = p.decode(self.sock.recv_multipart(copy=False))
                except MessageError as e:
                    raise RemoteError(f"env server sent a bad reply to {type_}: {e}") from None
                if reply.seq != self.seq:
                    continue  # the late answer to a request that timed out
                if reply.type == p.ERROR:
                    raise RemoteError(f"env server: {type_} failed: {reply.fields['detail']}")
                return reply
            waited += 0.5
            if self.proc.poll() is not None:
                raise RemoteError(f"env server exited (code {self.proc.returncode}):\n{self.log_tail()}")
            if waited >= self.timeout_s:
                raise RemoteError(
                    f"env server gave no answer to {type_} in {self.timeout_s:.0f} s:\n{self.log_tail()}"
                )

    def log_tail(self) -> str:
        return "\n".join(self._stderr)

    def close(self) -> None:
        if self.sock is None:
            return
        if self.proc.poll() is None:
            try:
                self.timeout_s = 5.0
                self.request(p.CLOSE)
                self.proc.wait(timeout=10)
            except (RemoteError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.sock.close()
        self.sock = None
        shutil.rmtree(self._dir, ignore_errors=True)


@dataclass(frozen=True)
class RemoteTask:
    suite: str
    task_id: int
    name: str
    instruction: str


class RemoteEnv:
    """One task of a simulator served by an env server, with the LiberoEnv interface.

    `reset(i)` starts from the task's i-th evaluation start, `reset_sampled(seed)` from a start
    drawn with `seed` (held out), `reset_to(state)` from a saved state. `select_task` moves to
    another task of the same server (the simulator is not restarted)."""

    serves_all_tasks = True

    def __init__(self, sim: RemoteSim, suite: str, task_id: int, max_steps: int | None = None):
        self.remote = sim
        self.suite = suite
        self.spec = sim.spec
        self._max_steps = max_steps
        self.steps = 0
        self.success = False
        self.start_state: np.ndarray | None = None
        self.start_info: dict = {}
        self._obs: dict = {}
        self.select_task(task_id)

    def select_task(self, task_id: int) -> None:
        tasks = self.spec["tasks"]
        if not 0 <= task_id < len(tasks):
            raise ValueError(f"task id {task_id} out of range for {self.suite}: 0..{len(tasks) - 1}")
        name, instruction = tasks[task_id]
        self.task = RemoteTask(self.suite, task_id, name, instruction)
        # A simulator may limit each task's episodes on its own (robosuite: Lift 200 steps, ...).
        task_limit = self.spec.get("task_max_steps", [self.spec["max_steps"]] * len(tasks))[task_id]
        self.max_steps = min(self._max_steps or task_limit, task_limit)

    @property
    def instruction(self) -> str:
        return self.task.instruction

    @property
    def num_init_states(self) -> int:
        return int(self.spec["num_starts"])

    @property
    def action_limits(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.spec["action_low"], np.float64), np.asarray(
            self.spec["action_high"], np.float64
        )

    def _take(self, reply: Message) -> dict:
        f = reply.fields
        self.success = f["success"]
        self.steps = f["step"]
        self._obs = {**{k: np.array(v) for k, v in reply.arrays.items()}, TASK_KEY: f["instruction"]}
        return self._obs

    def _reset(self, start: int, seed: int, state: np.ndarray | None = None) -> dict:
        fields = {"task": self.task.task_id, "start": start, "seed": seed}
        arrays = {p.STATE_ARRAY: np.asarray(state, np.float64)} if state is not None else None
        reply = self.remote.request(p.RESET, fields, arrays)
        self.start_info = {
            k: reply.fields[k] for k in ("start_distance", "nearest_start") if k in reply.fields
        }
        obs = self._take(reply)
        self.start_state = self.get_state()
        return obs

    def reset(self, init_state: int = 0) -> dict:
        return self._reset(init_state % self.num_init_states, 0)

    def reset_sampled(self, seed: int) -> dict:
        return self._reset(-1, seed % 2**62)

    def reset_to(self, state: np.ndarray, seed: int = 0) -> dict:
        return self._reset(0, 0, state)

    def nearest_official(self) -> tuple[int, float]:
        """The evaluation start nearest the current episode's sampled start, and how far it is."""
        return self.start_info["nearest_start"], self.start_info["start_distance"]

    def step(self, action: np.ndarray, render: bool = True) -> tuple[dict, bool]:
        """One action; the served simulator renders every step (`render` is LiberoEnv's switch,
        accepted so that one episode loop drives both)."""
        action = np.asarray(action, np.float32).reshape(-1)
        if action.shape != (self.spec["action_dim"],):
            raise ValueError(f"{self.suite} takes {self.spec['action_dim']}-dim actions, got {action.shape}")
        obs = self._take(self.remote.request(p.STEP, arrays={p.ACTION_ARRAY: action}))
        return obs, self.success

    def observation(self) -> dict:
        return self._obs

    @property
    def truncated(self) -> bool:
        return self.steps >= self.max_steps

    def get_state(self) -> np.ndarray:
        """The full simulator state (float64, opaque): `set_state` of it continues from here."""
        return np.array(self.remote.request(p.GET_STATE).arrays[p.STATE_ARRAY])

    def set_state(self, state: np.ndarray) -> dict:
        """Restore a state `get_state` returned (of any task of this server); returns its observation."""
        reply = self.remote.request(p.SET_STATE, arrays={p.STATE_ARRAY: np.asarray(state, np.float64)})
        self.select_task(reply.fields["task"])
        return self._take(reply)

    def expert_action(self) -> np.ndarray:
        """The simulator's scripted expert's action for the current state."""
        return np.array(self.remote.request(p.EXPERT_ACTION).arrays[p.ACTION_ARRAY])

    def close(self) -> None:
        self.remote.close()

    def __enter__(self) -> RemoteEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
