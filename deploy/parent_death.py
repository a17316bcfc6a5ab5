"""A node started by `hume deploy` stops when the launcher dies (Linux PR_SET_PDEATHSIG).

The node sets this itself, first thing, rather than the launcher in a `preexec_fn` between fork
and exec (unsafe in a process with threads, as the launcher is). The launcher names its pid in
DIE_WITH_ENV; a node whose parent is already another process by the time it asks (the launcher
died in between) stops at once, as the signal would never come.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal

DIE_WITH_ENV = "HUME_DIE_WITH_PARENT"
PR_SET_PDEATHSIG = 1

log = logging.getLogger(__name__)


def die_with_parent() -> None:
    """In a node: SIGTERM when the process named by DIE_WITH_ENV (its parent) is gone."""
    parent = os.environ.pop(DIE_WITH_ENV, None)
    if parent is None:
        return
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return  # not Linux: the launcher still stops its nodes on Ctrl-C and on errors
    if prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        log.warning("PR_SET_PDEATHSIG failed (errno %d): this node outlives its launcher", ctypes.get_errno())
    if os.getppid() != int(parent):
        os.kill(os.getpid(), signal.SIGTERM)
