"""The Ray an evaluation runs on: a private one started on this machine for the run, or a running
cluster (`ray.address`), with Ray's surprising defaults replaced by explicit choices.

Ray default                                   what we do instead
--------------------------------------------  -------------------------------------------------
`ray.init()` joins a cluster named by          `address="local"`: a new private Ray, unless
RAY_ADDRESS or started here by `ray start`     `ray.address` names a cluster
a new Ray turns token auth on and writes       the private Ray gets a random token of this process
~/.ray/auth_token                              in the environment only (RAY_AUTH_TOKEN):
                                               authenticated, nothing written to the home folder;
                                               RAY_AUTH_MODE=disabled or a token the user set wins
session files in /tmp/ray (all users, runs)    `ray.temp_dir`, by default DIR/ray
a dashboard web server                         none
every worker's output echoed to the terminal   not echoed; worker logs stay in the session folder
usage statistics reported to Anyscale          off (RAY_USAGE_STATS_ENABLED=0)
object store of 30% of the memory              `ray.object_store_mb` (default 256)
workers import what their node has installed   cluster workers get this checkout's hume/ and
                                               sim/ (runtime_env py_modules): the code that runs
                                               is the code the provenance names
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# A unix socket path holds at most 107 bytes; Ray puts its sockets at
# TEMP_DIR/session_<date>_<time>_<micros>_<pid>/sockets/plasma_store (64 bytes after TEMP_DIR).
SOCKET_PATH_MAX = 107
SESSION_SUFFIX = len("/session_2026-01-01_00-00-00_000000_1234567/sockets/plasma_store")
# One per driver process: Ray caches the token it read, so every private Ray of this process
# must be started with the same one.
_TOKEN = secrets.token_hex(32)


def temp_dir(cfg, out: Path) -> Path:
    """`ray.temp_dir`, else DIR/ray when Ray's socket paths fit under it, else a short folder in
    the system temp dir named after DIR (the same one when the run is resumed)."""
    if cfg.ray.temp_dir:
        return Path(cfg.ray.temp_dir).resolve()
    preferred = out.resolve() / "ray"
    if len(str(preferred)) + SESSION_SUFFIX <= SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"hume-ray-{digest}"


def runtime_env(joining: bool) -> dict:
    """What every worker gets: headless rendering and, on a cluster, this checkout's packages."""
    env: dict[str, Any] = {
        "env_vars": {
            "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
            "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", os.environ.get("MUJOCO_GL", "egl")),
        }
    }
    if joining:
        import hume
        import sim

        env["py_modules"] = [m.__path__[0] for m in (hume, sim)]
    return env


def _settings(joining: bool) -> dict[str, str]:
    """Environment variables Ray reads in this process (and a private Ray's processes inherit)."""
    env = {"RAY_USAGE_STATS_ENABLED": os.environ.get("RAY_USAGE_STATS_ENABLED", "0")}
    own_token = not ({"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & os.environ.keys())
    if not joining and os.environ.get("RAY_AUTH_MODE", "token") == "token" and own_token:
        # RAY_AUTH_MODE stays as it is: unset, Ray turns token auth on itself, in this process too
        # (set here, the children would use it while this process kept the mode it read at import).
        env["RAY_AUTH_TOKEN"] = _TOKEN
    return env


@contextlib.contextmanager
def _environ(changes: dict[str, str]) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _start_private(cfg, out: Path) -> None:
    import ray

    folder = temp_dir(cfg, out)
    folder.mkdir(parents=True, exist_ok=True)
    num_cpus = cfg.ray.num_cpus or cfg.num_workers * cfg.ray.cpus_per_worker
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        object_store_memory=cfg.ray.object_store_mb * 2**20,
        runtime_env=runtime_env(joining=False),
        _temp_dir=str(folder),
    )
    log.info("started a private Ray (%g CPUs); its worker logs: %s/session_latest/logs", num_cpus, folder)


def _join(cfg) -> None:
    import ray

    ray.init(
        address=cfg.ray.address,
        log_to_driver=False,
        logging_level=logging.WARNING,
        runtime_env=runtime_env(joining=True),
    )
    log.info("joined the Ray cluster at %s: %s", cfg.ray.address, ray.cluster_resources())


@contextlib.contextmanager
def ray_session(cfg, out: Path) -> Iterator[None]:
    """Ray connected for the block, and disconnected (a private one stopped) after it. Inside an
    outer session, e.g. several evaluations on one Ray, the outer one is used as it is."""
    import ray

    if ray.is_initialized():
        yield
        return
    joining = bool(cfg.ray.address)
    with _environ(_settings(joining)):
        if joining:
            _join(cfg)
        else:
            _start_private(cfg, out)
        try:
            yield
        finally:
            ray.shutdown()
