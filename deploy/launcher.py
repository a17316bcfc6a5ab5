"""`hume deploy`: both nodes as separate OS processes on this host, N episodes, metrics.json.

Order: start System 2, wait for its ready heartbeat; start System 1 (it owns the robot and runs
the episodes); the handshake is complete when System 2 reports System 1 connected. When System
1 exits, System 2 gets SIGTERM. A System 2 that dies mid-run is restarted (at most
`system2_restarts` times) while System 1 holds the robot. On Ctrl-C or any error both are
stopped (SIGTERM, then SIGKILL) and metrics.json and latency.png are still written from what
System 1 recorded; each child also gets SIGTERM if the launcher itself dies (Linux
PR_SET_PDEATHSIG, which each node asks for as it starts: deploy/parent_death.py): no orphans.
The private folder of the ipc:// sockets is removed by a janitor process (deploy/janitor.py)
when the launcher is gone, SIGKILL included.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import draccus
import zmq

from deploy.parent_death import DIE_WITH_ENV
from hume.config import check_checkpoint
from hume.runtime import protocol
from hume.runtime.config import DeployConfig, TransportConfig
from hume.runtime.transport import Inbox, Transport

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0


class DeploymentError(RuntimeError):
    """A node failed to start or exited with an error; the message points at its log."""


@dataclass(frozen=True)
class DeploymentResult:
    episodes: list[dict]  # per episode: episode, success, steps (+ task_id, init_state for LIBERO)
    metrics: dict  # the content of metrics.json
    output: Path


class Node:
    """One node process, its log file, and how to stop it."""

    def __init__(self, name: str, config: Path, output: Path, log_level: str, append: bool = False):
        self.name = name
        self.log_path = output / f"{name}.log"
        cmd = [sys.executable, "-m", "hume.cli.main", "--log-level", log_level, "serve", name]
        cmd += ["--config", str(config), "--output", str(output)]
        self._log = self.log_path.open("a" if append else "w")
        # The node asks for SIGTERM on our death itself (deploy/parent_death.py): no preexec_fn
        # here, as this process has threads.
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, DIE_WITH_ENV: str(os.getpid())},
        )
        log.info("started %s (pid %d), log: %s", name, self.proc.pid, self.log_path)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise DeploymentError(f"{self.name} exited with code {self.proc.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(f"  | {line}" for line in text) + f"\n  (full log: {self.log_path})"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: killing it", self.name, STOP_GRACE_S)
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def _node_config(cfg: DeployConfig, run: Path, transport: TransportConfig) -> Path:
    """The config a node reads: cfg with the endpoints of `transport`, written into run/."""
    path = run / "deploy_config.yaml"
    with path.open("w") as f:
        draccus.dump(dataclasses.replace(cfg, transport=transport, output=str(run)), f)
    return path


class Watcher:
    """Listens to System 2's heartbeats, the way any other subscriber would."""

    def __init__(self, cfg: DeployConfig, chunks_endpoint: str):
        self.transport = Transport(cfg.transport.keys_dir, cfg.transport.max_message_bytes)
        self.inbox = Inbox(
            self.transport.socket(zmq.SUB, chunks_endpoint, bind=False), cfg.transport.max_message_bytes
        )

    def wait_for(self, condition, nodes: list[Node], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for node in nodes:
                node.check_alive()
            for msg in self.inbox.drain(timeout_ms=200):
                if msg.type == protocol.HEARTBEAT and condition(msg.fields):
                    return
        raise DeploymentError(f"timed out after {timeout_s:.0f} s waiting for {what}:\n{nodes[-1].tail()}")

    def close(self) -> None:
        self.transport.close()


def _start_janitor(folder: str) -> subprocess.Popen:
    """deploy/janitor.py for `folder`: it removes it once the pipe to this process closes."""
    return subprocess.Popen(
        [sys.executable, "-m", "deploy.janitor", folder],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        cwd=Path(__file__).resolve().parents[1],
    )


class PolicyServer:
    """A System-2 node on private ipc:// endpoints (unless cfg names others), ready when built.

    One deployment has its own; evaluation workers share one, each System 1 a client of it
    (system2_node.py batches their observations). A node that dies is restarted by `revive` at
    most `cfg.system2_restarts` times; clients hold their robots meanwhile and resume by themselves.
    """

    def __init__(self, cfg: DeployConfig, run: Path, log_level: str):
        run.mkdir(parents=True, exist_ok=True)
        self._ipc = tempfile.TemporaryDirectory(prefix="hume-")
        self._janitor = _start_janitor(self._ipc.name)
        t = cfg.transport
        self.transport = dataclasses.replace(
            t,
            observations=t.observations or f"ipc://{self._ipc.name}/observations",
            chunks=t.chunks or f"ipc://{self._ipc.name}/chunks",
        )
        self.config = _node_config(cfg, run, self.transport)
        self.cfg = draccus.load(DeployConfig, self.config.open())
        self.run, self.log_level = run, log_level
        self.restarts = 0
        self._lock = threading.Lock()
        self.clients: set[Node] = set()  # System-1 nodes running against it; stopped with it
        self.watcher = Watcher(self.cfg, self.transport.endpoints()[1])
        self.node: Node | None = None
        try:
            self._start(append=False)
        except BaseException:
            self.close()
            raise

    def _start(self, append: bool) -> None:
        self.node = Node("system2", self.config, self.run, self.log_level, append=append)
        self.watcher.wait_for(
            lambda f: f["state"] == "ready", [self.node], self.cfg.startup_timeout_s, "System 2 to be ready"
        )
        log.info("System 2 ready")

    def revive(self) -> None:
        """Restart the node if it has died (thread-safe: workers share the server)."""
        with self._lock:
            self.watcher.inbox.drain(timeout_ms=0)  # keep the subscription's queue empty
            node = self.system2
            if node.proc.poll() is None:
                return
            if self.restarts >= self.cfg.system2_restarts:
                node.check_alive()
            self.restarts += 1
            code = node.proc.returncode
            log.error(
                "System 2 exited with code %s: restart %d of %d",
                code,
                self.restarts,
                self.cfg.system2_restarts,
            )
            node.stop()
            self._start(append=True)

    @property
    def system2(self) -> Node:
        """The System-2 node: __init__ starts one or raises."""
        if self.node is None:
            raise RuntimeError("this PolicyServer's System 2 was never started")
        return self.node

    def close(self) -> None:
        for client in list(self.clients):
            client.stop()
        if self.node is not None:
            self.node.stop()
        self.watcher.close()
        if self._janitor.stdin is not None:  # a pipe (_start_janitor): always there
            self._janitor.stdin.close()  # the janitor removes the socket folder (again: harmless) and exits
        self._janitor.wait()
        self._ipc.cleanup()

    def __enter__(self) -> PolicyServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_deployment(
    cfg: DeployConfig, log_level: str = "INFO", server: PolicyServer | None = None
) -> DeploymentResult:
    """Run `cfg.episodes` episodes with System 1 and System 2 as separate processes; write cfg.output/.

    System 2 is this deployment's own, or `server` when one is shared with other System-1 nodes
    (its summary is then in the server's folder, not in cfg.output). Interrupted (Ctrl-C:
    KeyboardInterrupt), it stops its nodes, writes metrics.json and latency.png from what System 1
    recorded (marked "interrupted"), and raises again.
    """
    check_checkpoint(cfg.checkpoint)
    run = Path(cfg.output)
    run.mkdir(parents=True, exist_ok=True)
    for stale in ("system1.json", "system2.json", "robot.json", "ticks.csv", "metrics.json", "latency.png"):
        (run / stale).unlink(missing_ok=True)
    t_start = time.monotonic()
    interrupted = False
    try:
        if server is None:
            with PolicyServer(cfg, run, log_level) as own:
                _run_system1(cfg, run, own, log_level, own_server=True)
        else:
            _run_system1(cfg, run, server, log_level, own_server=False)
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted: nodes stopped")
    except DeploymentError as e:
        # A System 1 that died (SIGKILL included) streamed its records until then: report them.
        if (run / "system1.json").is_file() and (run / "ticks.csv").is_file():
            _write_metrics(run, time.monotonic() - t_start, interrupted=True, error=str(e).splitlines()[0])
        raise
    if interrupted and not (run / "system1.json").is_file():
        raise KeyboardInterrupt  # System 1 never ran: nothing to report
    metrics = _write_metrics(run, time.monotonic() - t_start, interrupted)
    if interrupted:
        raise KeyboardInterrupt
    return DeploymentResult(metrics["episode_results"], metrics, run)


def _run_system1(
    cfg: DeployConfig, run: Path, server: PolicyServer, log_level: str, own_server: bool
) -> None:
    """Start System 1 as a client of `server`; wait for it to finish its episodes, reviving System 2."""
    config = _node_config(cfg, run, server.transport) if not own_server else server.config
    system1 = Node("system1", config, run, log_level)
    server.clients.add(system1)
    try:
        if own_server:
            # Only a server of its own says whether this System 1 connected: a shared one hears
            # other clients too. A client that never connects ends at its first_chunk_timeout_s.
            server.watcher.wait_for(
                lambda f: f["stats"].get("system1_connected") == 1,
                [server.system2, system1],
                cfg.startup_timeout_s,
                "System 1 to connect",
            )
            log.info("both nodes ready: running %d episode(s)", cfg.episodes)
        while system1.proc.poll() is None:
            server.revive()
            time.sleep(0.5)
        if system1.proc.returncode != 0:
            raise DeploymentError(f"system1 exited with code {system1.proc.returncode}:\n{system1.tail()}")
    finally:
        server.clients.discard(system1)
        system1.stop()


def _write_metrics(run: Path, wall_s: float, interrupted: bool, error: str = "") -> dict:
    from deploy.metrics import compute_metrics, plot

    metrics = compute_metrics(run)
    metrics["wall_s"] = round(wall_s, 2)
    metrics["interrupted"] = interrupted
    if error:
        metrics["error"] = error
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot(run, run / "latency.png")
    log.info(
        "%d/%d successes; tick p50 %.2f ms p99 %.2f ms; %d holds; loop at %s Hz of %s Hz "
        "(%d overruns: %d of them the policy's share) -> %s",
        metrics["successes"],
        metrics["episodes"],
        metrics["tick_ms"]["p50"] or 0,
        metrics["tick_ms"]["p99"] or 0,
        metrics["holds"],
        metrics["achieved_rate_hz"],
        metrics["control_hz"],
        metrics["overruns"],
        metrics["policy_overruns"],
        run / "metrics.json",
    )
    return metrics
