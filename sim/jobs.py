"""Resumable runs of many LIBERO episodes, as `hume collect` and `hume eval` make them.

A run is a plan of units (task, episode), each with its own start and seed, so its outcome does
not depend on which worker ran it or in what order. The main process alone appends each finished
unit to an append-only log (`hume.data.format.append_jsonl`); a run started again skips the units
its log holds, so an interrupted run continues where it stopped and counts nothing twice. Workers
are separate processes, each keeping one simulator and one policy for its lifetime.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import random
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np


@dataclass(frozen=True)
class Unit:
    """One episode of a plan."""

    task_id: int
    episode: int  # k-th episode of its task
    init_state: int | None  # the official initial state; None for a sampled start
    seed: int  # seeds the policy or expert (and a sampled start): `episode_seed`


def episode_seed(seed: int, task_id: int, episode: int) -> int:
    """A unit's seed from the run's: the same whatever else the plan holds."""
    digest = hashlib.sha256(f"{seed}/{task_id}/{episode}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def seed_everything(seed: int) -> None:
    """Seed every global RNG a policy may draw from before a unit runs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


class TaskEnv:
    """A worker's simulator: the current task's env (sim/suites.py), kept while that task's units
    follow one another (building one takes seconds) and rebuilt when the task changes; an env
    server (Meta-World) is kept for the whole run and switches tasks in place."""

    def __init__(self, suite: str, **options):
        self.suite = suite
        self.options = options  # sim.suites.make_env's keyword arguments
        self.env = None

    def get(self, task_id: int):
        from sim.suites import make_env

        if (
            self.env is not None
            and self.env.task.task_id != task_id
            and getattr(self.env, "serves_all_tasks", False)
        ):
            self.env.select_task(task_id)  # an env server holds every task of its suite
        if self.env is None or self.env.task.task_id != task_id:
            self.close()
            self.env = make_env(self.suite, task_id, **self.options)
        return self.env

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


U = TypeVar("U", bound=Unit)
U_contra = TypeVar("U_contra", bound=Unit, contravariant=True)


class Worker(Protocol[U_contra]):
    """Runs units of one kind (a plan's own Unit subclass, e.g. sim.collect's)."""

    def run(self, unit: U_contra) -> dict: ...  # one unit's result, for the main process to log

    def close(self) -> None: ...


W = TypeVar("W", bound=Worker)


def start_worker(make_worker: Callable[[], W], threads: int, uses_torch: bool) -> W:
    """A worker for a worker process, torch limited to `threads` (the processes share the cores)."""
    if uses_torch or "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
    return make_worker()


# This worker process's worker (a pool's initialiser builds it, its tasks run units on it).
_worker: Worker | None = None


def _init_worker(make_worker: Callable[[], Worker], threads: int, uses_torch: bool) -> None:
    global _worker
    _worker = start_worker(make_worker, threads, uses_torch)


def _run_unit(unit: Unit) -> dict:
    assert _worker is not None
    return _worker.run(unit)


def run_units(
    make_worker: Callable[[], Worker[U]], units: Sequence[U], workers: int, uses_torch: bool
) -> Iterator[dict]:
    """`worker.run(unit)` of every unit, in completion order: in this process when one worker will
    do, else in `workers` spawned processes, each with its own `make_worker()` (which must pickle)
    and torch limited to an equal share of the cores."""
    if not units:
        return
    workers = min(workers, len(units))
    if workers <= 1:
        worker = make_worker()
        try:
            for unit in units:
                yield worker.run(unit)
        finally:
            worker.close()
        return
    # spawn, not fork: a forked EGL context or torch thread pool is not safe to reuse.
    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    with (
        _exit_on_sigterm(),
        ctx.Pool(workers, initializer=_init_worker, initargs=(make_worker, threads, uses_torch)) as pool,
    ):
        yield from pool.imap_unordered(_run_unit, units)


@contextlib.contextmanager
def _exit_on_sigterm() -> Iterator[None]:
    """SIGTERM (`kill`, a scheduler stopping the job) unwinds the main process like Ctrl-C, so the
    pool terminates its workers: killed by the default action they would run on, orphaned, and
    record episodes beside the run that resumes the job. Only where nothing else handles SIGTERM."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL
    ):
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
