"""The robot side of a deployment: the robot adapter in a process of its own (the driver), with a
command watchdog. System 1 drives it through `RobotLink`, which has the adapter interface (base.py).

Why a process of its own: a robot's controller outlives whatever commands it. System 1 may hang
(a stuck thread, a stopped process) or die (SIGKILL, a crash) mid-motion, and only something that
survives it can stop the robot, as a real robot's driver does. So the driver holds the robot by
itself when, while the robot is in motion (a command sent, the episode not over), no command has
come for `robot.watchdog_s` (`silence`), and at once when System 1's end of the link closes
(`link lost`): it sends the adapter the hold action (zero arm motion, the gripper as last
commanded; or the adapter's own `hold()`, when it has one). The driver then exits on a lost link,
and waits for the next command after a silence: control resumes with it. Each such hold is counted,
logged, and written to `robot.json` in the run folder (the watchdog's record: System 1 may be gone
by then); System 1 learns of it with its next observation and ramps its next action from rest.

    python -m deploy.robots.driver FD     (FD: the driver's end of a socket pair; RobotLink starts it)

The link is a Unix socket pair: length-prefixed msgpack frames, numpy arrays as raw bytes with
dtype and shape. Nothing is unpickled.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import draccus
import msgpack
import numpy as np

from hume.policy.hold import hold_action
from hume.runtime.config import RobotConfig

log = logging.getLogger(__name__)

# How long System 1 waits for the driver to start (a simulator's build included) and to stop.
START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 30.0
_LENGTH = struct.Struct("!I")
# The attributes of an adapter that System 1 reports per episode (deploy/robots/libero.py has them).
EPISODE_INFO = ("task_id", "init_state")
# Holds of the watchdog (System 1 silent or gone); "stop" is System 1 stopping mid-motion in order.
WATCHDOG_REASONS = ("silence", "link lost")


def _pack_array(obj):
    if isinstance(obj, np.ndarray | np.generic):
        a = np.ascontiguousarray(obj)
        return {"__nd__": [a.dtype.str, list(a.shape)], "b": a.tobytes()}
    raise TypeError(f"cannot send {type(obj).__name__} to or from the robot driver")


def _unpack_array(obj: dict):
    if "__nd__" in obj:
        dtype, shape = obj["__nd__"]
        return np.frombuffer(obj["b"], dtype=np.dtype(dtype)).reshape(shape).copy()
    return obj


def send(sock: socket.socket, msg: dict) -> None:
    data = msgpack.packb(msg, default=_pack_array, use_bin_type=True)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _read(sock: socket.socket, n: int) -> bytes | None:
    parts = []
    while n:
        part = sock.recv(min(n, 1 << 20))
        if not part:
            return None
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def receive(sock: socket.socket) -> dict | None:
    """The next frame; None when the other end has closed."""
    head = _read(sock, _LENGTH.size)
    data = None if head is None else _read(sock, _LENGTH.unpack(head)[0])
    return None if data is None else msgpack.unpackb(data, object_hook=_unpack_array, raw=False)


class Driver:
    """The robot side: an adapter, its command watchdog, and its record (robot.json)."""

    def __init__(self, robot, watchdog_s: float, output: Path | None):
        self.robot, self.watchdog_s, self.output = robot, watchdog_s, output
        self.commands = 0
        self.holds: list[dict] = []
        self.gripper: float | None = None
        self.action_dim: int | None = None
        # When the last command was carried out while the robot is in motion; None: at rest (after
        # a reset, a hold, or the episode's end), when silence is no danger.
        self.moving_since: float | None = None
        self._save()

    def _save(self) -> None:
        if self.output is None:
            return
        record = {
            "watchdog_s": self.watchdog_s,
            "commands": self.commands,
            "watchdog_holds": self.watchdog_holds,
            "holds": self.holds,
        }
        self.output.mkdir(parents=True, exist_ok=True)
        tmp = self.output / "robot.json.part"
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, self.output / "robot.json")

    @property
    def watchdog_holds(self) -> int:
        return sum(h["reason"] in WATCHDOG_REASONS for h in self.holds)

    def hold(self, reason: str) -> None:
        """Stop the robot by itself: the adapter's hold(), else the hold action."""
        # Only while in motion, which only a command (that set the gripper and width) starts.
        assert self.moving_since is not None and self.gripper is not None and self.action_dim is not None
        silent_s = time.monotonic() - self.moving_since
        self.moving_since = None
        done: dict = {}  # what the adapter's hold() says it did (e.g. LIBERO: how far the arm still went)
        try:
            if hasattr(self.robot, "hold"):
                done = self.robot.hold() or {}
            else:
                self.robot.act(hold_action(self.gripper, self.action_dim))
        except Exception:
            log.exception("the robot driver could not hold the robot (%s)", reason)
            raise
        self.holds.append(
            {"reason": reason, "silent_s": round(silent_s, 3), "after_command": self.commands, **done}
        )
        log.log(
            logging.WARNING if reason in WATCHDOG_REASONS else logging.INFO,
            "the robot driver held the robot by itself after command %d (%s, %.2f s after it)",
            self.commands,
            reason,
            silent_s,
        )
        self._save()

    def handle(self, msg: dict) -> dict:
        op = msg["op"]
        if op == "observe":
            return {"obs": self.robot.observe(), "watchdog_holds": self.watchdog_holds}
        if op == "act":
            action = np.asarray(msg["action"], np.float32).reshape(-1)
            self.robot.act(action)
            self.commands += 1
            self.gripper, self.action_dim = float(action[-1]), len(action)
            # After the episode's end no command follows until the next reset: no watchdog then.
            self.moving_since = None if self.robot.done else time.monotonic()
        elif op == "reset":
            self.robot.reset(msg["episode"])
            self.moving_since = None
        elif op == "close":
            if self.moving_since is not None:  # System 1 stops mid-motion: stop the robot first
                self.hold("stop")
            self.robot.close()
            self._save()
            return {}
        else:
            raise ValueError(f"unknown robot driver command {op!r}")
        info = {k: getattr(self.robot, k) for k in EPISODE_INFO if hasattr(self.robot, k)}
        info = {k: v.item() if isinstance(v, np.generic) else v for k, v in info.items()}  # for JSON
        return {"done": bool(self.robot.done), "success": bool(self.robot.success), "info": info}

    def serve(self, sock: socket.socket) -> None:
        """Answer System 1 until it closes the link or is gone; hold the robot on silence."""
        while True:
            timeout = None
            if self.moving_since is not None:
                timeout = max(0.0, self.moving_since + self.watchdog_s - time.monotonic())
            if not select.select([sock], [], [], timeout)[0]:
                self.hold("silence")
                continue
            try:
                msg = receive(sock)
            except OSError:
                msg = None
            if msg is None:  # System 1 is gone (exited, killed): nobody will command the robot
                return self._lost()
            try:
                reply = self.handle(msg)
            except Exception as e:  # System 1 gets the error: the adapter failed, not the link
                log.exception("robot adapter: %s failed", msg.get("op"))
                reply = {"error": f"{type(e).__name__}: {e}"}
            try:
                send(sock, reply)
            except OSError:  # System 1 died while the robot carried out its command (a slow step)
                return self._lost()
            if msg["op"] == "close":
                return

    def _lost(self) -> None:
        """System 1 is gone: hold the robot if it was moving, close it, and keep the record."""
        if self.moving_since is not None:
            self.hold("link lost")
        self.robot.close()
        self._save()


class RobotLink:
    """The robot adapter interface (base.py) for System 1, over the driver process it starts.

    `done`, `success` and the episode's `task_id`/`init_state` (when the adapter has them) are
    those of the last reply; `watchdog_holds` is how many times the driver held the robot by itself.
    """

    def __init__(self, cfg: RobotConfig, seed: int = 0, output: Path | None = None):
        ours, theirs = socket.socketpair()
        self.sock = ours
        self.done = self.success = False
        self.watchdog_holds = 0
        self._envelope: dict | None = None
        start = {
            "robot": draccus.encode(cfg),
            "seed": seed,
            "output": str(Path(output).resolve()) if output is not None else None,
            "log_level": logging.getLevelName(logging.getLogger().getEffectiveLevel()),
        }
        try:
            # Its own session: a Ctrl-C at a terminal reaches System 1, which stops the driver in
            # order (holding the robot first if it was moving); the driver outlives System 1 by
            # the length of a hold.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "deploy.robots.driver", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                start_new_session=True,
            )
        finally:
            theirs.close()
        log.info("robot driver (pid %d): watchdog %.2f s", self.proc.pid, cfg.watchdog_s)
        send(self.sock, start)
        self.sock.settimeout(START_TIMEOUT_S)
        hello = self._reply()
        self.sock.settimeout(None)
        self._envelope = hello["envelope"]

    def _reply(self) -> dict:
        try:
            reply = receive(self.sock)
        except TimeoutError:
            reply = None
        if reply is None:
            raise RuntimeError(f"the robot driver (pid {self.proc.pid}) is gone (see its log lines above)")
        if "error" in reply:
            raise RuntimeError(f"robot adapter: {reply['error']}")
        return reply

    def _call(self, op: str, **fields) -> dict:
        send(self.sock, {"op": op, **fields})
        reply = self._reply()
        if "done" in reply:
            self.done, self.success = reply["done"], reply["success"]
            for key, value in reply["info"].items():
                setattr(self, key, value)
        return reply

    def action_envelope(self) -> dict:
        """The adapter's own limits; {} when it declares none (robot.envelope must give them)."""
        return self._envelope or {}

    def reset(self, episode: int) -> None:
        self._call("reset", episode=episode)

    def observe(self) -> dict:
        reply = self._call("observe")
        self.watchdog_holds = reply["watchdog_holds"]
        return reply["obs"]

    def act(self, action: np.ndarray) -> None:
        self._call("act", action=np.asarray(action, np.float32))

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._call("close")
            except (OSError, RuntimeError) as e:
                log.warning("robot driver: %s", e)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.error("the robot driver did not stop within %.0f s: killing it", STOP_TIMEOUT_S)
                self.proc.kill()
                self.proc.wait()
        self.sock.close()


def main(fd: int) -> int:
    from deploy.robots.base import make_robot
    from hume.logging_utils import setup_logging

    sock = socket.socket(fileno=fd)
    start = receive(sock)
    if start is None:
        return 1
    setup_logging(start["log_level"])
    cfg = draccus.decode(RobotConfig, start["robot"])
    output = Path(start["output"]) if start["output"] else None
    try:
        robot = make_robot(cfg, seed=start["seed"])
    except Exception as e:
        log.exception("robot driver: the robot adapter could not start")
        send(sock, {"error": f"{type(e).__name__}: {e}"})
        return 1
    driver = Driver(robot, cfg.watchdog_s, output)
    envelope = robot.action_envelope() if hasattr(robot, "action_envelope") else None
    send(sock, {"envelope": envelope, "pid": os.getpid()})
    driver.serve(sock)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
