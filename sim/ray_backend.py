"""`backend=ray`: the evaluator's episode units as Ray tasks, on a private Ray or a cluster.

The plan, the seeds, the episode runner (sim.evaluator.Worker), the log and the report are the
local backend's; only where a unit runs differs. Each unit is one task, retried up to
`ray.max_retries` times when its worker process dies or it raises. A worker process keeps its
Worker (simulator and policy) between the tasks of one run, as a local worker process does.
Results come back to the driver, which alone appends to episodes.jsonl, so a unit is written once
however often it ran; a video comes back as bytes, since a cluster worker's disk is not ours.
A worker films into a scratch folder of its own, removed when its Worker is replaced and when the
process exits; after the run the driver removes any the run left on its host (a killed worker's).
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import shutil
import tempfile
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hume.config import ConfigError
from sim.evaluator import Unit, Worker, start_worker
from sim.ray_session import ray_session

log = logging.getLogger(__name__)


class EpisodesFailed(RuntimeError):
    """Episodes that failed on every retry; the others are logged, so a rerun runs only these."""


SCRATCH_PREFIX = "hume-eval-worker-"
# This worker process's Worker and its scratch folder, for the run named by the id beside them.
_worker: tuple[str, Worker, Path] | None = None


def _scratch(run_id: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{run_id}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # a Ray worker exiting normally
    return folder


def remove_scratch(run_id: str) -> None:
    """The scratch folders of the run `run_id` on this host, a killed worker's included."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}{run_id}-*"):
        shutil.rmtree(folder, ignore_errors=True)


def _episode(run_id: str, cfg, policy_factory, unit: Unit) -> tuple[dict, bytes | None]:
    """One unit in a Ray worker process: the row for episodes.jsonl and its video, if filmed."""
    global _worker
    if _worker is None or _worker[0] != run_id:
        if _worker is not None:
            _worker[1].close()
            shutil.rmtree(_worker[2], ignore_errors=True)
        scratch = _scratch(run_id)
        threads = max(1, int(cfg.ray.cpus_per_worker))
        _worker = (run_id, start_worker(cfg, scratch, policy_factory, threads), scratch)
    worker = _worker[1]
    row = worker.run(unit)
    video = None
    if "video" in row:
        path = worker.out / row["video"]
        video = path.read_bytes()
        path.unlink()
    return row, video


def task_resources(cfg) -> dict[str, float]:
    """What one episode task holds: CPUs, and GPUs when the policy runs on CUDA."""
    need = {"CPU": cfg.ray.cpus_per_worker}
    if cfg.policy.device == "cuda" and cfg.ray.gpus_per_worker > 0:
        need["GPU"] = cfg.ray.gpus_per_worker
    return need


def check_resources(need: dict[str, float], have: dict[str, float]) -> None:
    """Fail at once instead of waiting forever on a task no node can hold."""
    for name, amount in need.items():
        if have.get(name, 0) < amount:
            raise ConfigError(
                f"each episode task needs {amount:g} {name} but the Ray cluster has "
                f"{have.get(name, 0):g}: lower ray.{'cpus' if name == 'CPU' else 'gpus'}_per_worker "
                "or add nodes with that resource"
            )


def _absolute(cfg):
    """Paths as the workers must see them: a worker's current folder is not the driver's."""
    policy = cfg.policy
    policy = dataclasses.replace(
        policy,
        checkpoint=str(Path(policy.checkpoint).resolve()),
        dataset=str(Path(policy.dataset).resolve()) if policy.dataset else "",
    )
    return dataclasses.replace(cfg, policy=policy)


def run_units(cfg, out: Path, units: list[Unit], policy_factory) -> Iterator[dict]:
    """Rows of the finished units, in completion order; at most `num_workers` tasks in flight,
    submitted in plan order so that a worker mostly stays on one task's simulator."""

    run_id = uuid.uuid4().hex
    try:
        yield from _run_units(cfg, out, units, policy_factory, run_id)
    finally:
        remove_scratch(run_id)


def _run_units(cfg, out: Path, units: list[Unit], policy_factory, run_id: str) -> Iterator[dict]:
    import ray

    with ray_session(cfg, out):
        need = task_resources(cfg)
        check_resources(need, ray.cluster_resources())
        episode = ray.remote(_episode).options(
            num_cpus=need["CPU"],
            num_gpus=need.get("GPU", 0),
            max_retries=cfg.ray.max_retries,
            retry_exceptions=True,
        )
        cfg_ref, factory_ref = ray.put(_absolute(cfg)), ray.put(policy_factory)
        queue, failed = deque(units), []
        pending: dict[Any, Unit] = {}  # each running episode's ray reference -> its unit
        try:
            while queue or pending:
                while queue and len(pending) < cfg.num_workers:
                    unit = queue.popleft()
                    pending[episode.remote(run_id, cfg_ref, factory_ref, unit)] = unit
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                unit = pending.pop(ref)
                try:
                    row, video = ray.get(ref)
                except ray.exceptions.RayError as e:
                    log.error("task %d episode %d failed on every retry: %s", unit.task_id, unit.episode, e)
                    failed.append(unit)
                    continue
                if video is not None:
                    (out / row["video"]).parent.mkdir(parents=True, exist_ok=True)
                    (out / row["video"]).write_bytes(video)
                yield row
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
    if failed:
        names = ", ".join(f"task {u.task_id} episode {u.episode}" for u in failed)
        raise EpisodesFailed(
            f"{len(failed)} episode(s) failed on every retry ({names}); the worker logs say why. "
            "The finished ones are logged: run the same command again to retry only these."
        )
