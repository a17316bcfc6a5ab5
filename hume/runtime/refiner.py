"""System 1's refinement ahead of the control tick: one worker thread, one request at a time.

The control tick hands the worker the request the control schedule made (hume/policy/schedule.py)
with the observation and state history it reads, and goes on without waiting; a later tick picks
the answer up with `poll()` and lands it through the schedule, which aligns it by tick. So the
network never runs between "observation in hand" and "action out".

A thread, not a process: the observation and chunk are handed over without copying or
serialising, and torch releases the GIL inside its kernels. The tick thread takes the GIL back
within the interpreter's switch interval, which the node shortens (SWITCH_INTERVAL_S) so that
the worker's Python between kernels delays a tick by well under a millisecond.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from hume.policy.schedule import RefineRequest

log = logging.getLogger(__name__)

# How long the worker may hold the GIL while the tick thread waits for it (CPython's default is 5 ms).
SWITCH_INTERVAL_S = 0.0005


@dataclass(frozen=True)
class Answer:
    request: RefineRequest
    actions: np.ndarray | None  # robot actions [h, action_dim]; None: the refinement failed
    ms: float  # wall time of the refinement
    error: str = ""


class Refiner:
    def __init__(self, policy, action_dim: int):
        self.policy, self.action_dim = policy, action_dim
        self._cv = threading.Condition()
        self._job: tuple[dict, RefineRequest, np.ndarray] | None = None
        self._answer: Answer | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="system1-refiner", daemon=True)
        self._thread.start()

    def refine(self, obs: dict, request: RefineRequest, history: np.ndarray) -> Answer:
        """One refinement on the calling thread, checked: finite, [h, action_dim]."""
        t0 = time.monotonic()
        try:
            actions = self.policy.refine(
                obs, request.chunk, request.start, history, continues=request.continues
            )
            actions = np.asarray(actions, dtype=np.float32).reshape(-1, self.action_dim)
            if not np.isfinite(actions).all():
                raise ValueError("non-finite actions")
        except Exception as e:  # the tick continues its plan rather than act on, or die of, a failure
            return Answer(request, None, (time.monotonic() - t0) * 1e3, f"{type(e).__name__}: {e}")
        return Answer(request, actions, (time.monotonic() - t0) * 1e3)

    @property
    def busy(self) -> bool:
        with self._cv:
            return self._job is not None

    def submit(self, obs: dict, request: RefineRequest, history: np.ndarray) -> None:
        """Start refining `request` (the schedule has at most one in flight); returns at once."""
        with self._cv:
            if self._job is not None:
                raise RuntimeError("a refinement is already in flight")
            self._job = (obs, request, history)
            self._cv.notify()

    def poll(self) -> Answer | None:
        """The answer of the last request, once, when it is done; None before."""
        with self._cv:
            answer, self._answer = self._answer, None
            return answer

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._job is None and not self._closed:
                    self._cv.wait()
                if self._closed or self._job is None:
                    return
                obs, request, history = self._job
            answer = self.refine(obs, request, history)
            with self._cv:
                self._answer, self._job = answer, None

    def close(self, timeout_s: float = 5.0) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout_s)
