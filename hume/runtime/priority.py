"""CPU priority for the two nodes on a shared host: the control loop must win.

System 1 runs the policy's share of each tick (observation in hand -> action out) under
SCHED_FIFO, and goes back to normal scheduling for the rest (the robot's or simulator's step, the
sleep to the next tick), so a busy simulator never holds a core at real-time priority. A
SCHED_FIFO thread runs before every normal one on its core: System 2's think, another user's job.
Linux lets a thread do this with CAP_SYS_NICE (root, or a container given it) or an RLIMIT_RTPRIO
(`ulimit -r`, /etc/security/limits.conf) at least the priority; elsewhere System 1 logs once and
runs at normal priority. The kernel keeps 5% of each second for normal threads
(/proc/sys/kernel/sched_rt_runtime_us), so a runaway real-time section cannot lock the host.

Only the calling thread changes: with `torch_threads` above 1, torch's worker threads stay normal.

System 2 lowers its own priority (`os.nice`) at start, which any process may do.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def lower_priority(nice: int) -> None:
    """Add `nice` to this process's niceness (System 2 yields the CPU to System 1)."""
    if nice > 0 and hasattr(os, "nice"):
        log.info("System 2 at niceness %d", os.nice(nice))


class RealtimeSection:
    """`enter()` puts the calling thread under SCHED_FIFO at `priority`, `leave()` back to normal.

    Disabled (both no-ops) when `priority` is 0, off Linux, or when the first switch is refused.
    """

    def __init__(self, priority: int):
        self.priority = priority
        self.enabled = priority > 0 and hasattr(os, "sched_setscheduler")
        self._fifo = self._other = None
        if not self.enabled:
            return
        self._fifo = os.sched_param(priority)
        self._other = os.sched_param(0)
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, self._fifo)
        except OSError as e:
            self.enabled = False
            log.warning(
                "real-time scheduling is not permitted here (%s): System 1's ticks run at normal "
                "priority (grant CAP_SYS_NICE or `ulimit -r %d`, see docs/deployment.md)",
                e.strerror,
                priority,
            )
            return
        self.leave()
        log.info("System 1's ticks run under SCHED_FIFO priority %d", priority)

    def enter(self) -> None:
        if self.enabled and self._fifo is not None:
            os.sched_setscheduler(0, os.SCHED_FIFO, self._fifo)

    def leave(self) -> None:
        if self.enabled and self._other is not None:
            os.sched_setscheduler(0, os.SCHED_OTHER, self._other)
