"""Log lines for events a peer can repeat at will (rejected chunks, unusable observations, clamped
actions): the first one at once, then at most one line per `every_s` per kind, saying how many
were left out. A flood of bad messages costs a few lines, not one per message; the counters in
the node's summary keep the exact numbers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        max_kinds: int = 64,
    ):
        self.logger, self.every_s, self.clock, self.max_kinds = logger, every_s, clock, max_kinds
        self._next: dict[str, float] = {}  # kind -> when its next line may be written
        self._skipped: dict[str, int] = {}

    def __call__(self, level: int, kind: str, msg: str, *args) -> bool:
        """Log `msg % args` under `kind` unless one was logged less than `every_s` ago; True if logged."""
        now = self.clock()
        if now < self._next.get(kind, float("-inf")):
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return False
        skipped = self._skipped.pop(kind, 0)
        if len(self._next) >= self.max_kinds and kind not in self._next:
            self._next.clear()  # kinds come from our own code, but never let them grow without end
        self._next[kind] = now + self.every_s
        if skipped:
            msg += f" (and {skipped} more like it in the last {self.every_s:.0f} s)"
        self.logger.log(level, msg, *args)
        return True

    def flush(self, level: int = logging.INFO) -> None:
        """Say how many lines were left out since the last one of each kind (at shutdown)."""
        for kind, skipped in sorted(self._skipped.items()):
            self.logger.log(level, "%d more %s events were not logged one by one", skipped, kind)
        self._skipped.clear()
