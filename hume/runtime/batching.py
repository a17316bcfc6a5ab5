"""Which observations go into System 2's next think when it serves many System-1 clients.

Pure and clock-free (times are passed in): each client's newest observation waits here until a
think takes it; an older one of the same client is superseded (a robot only needs an answer to
what it sees now). A think takes up to `max_batch` clients, those waiting longest first, so that
no client is starved however many there are. It starts as soon as `max_batch` clients wait, or
once the first of them has waited `max_wait_s`: with 0 (the default) it never waits for more
clients than are already queued, so one client gets the latency it gets alone, and clients whose
observations arrived during a think share the next one.
"""

from __future__ import annotations

from typing import Generic, TypeVar

Item = TypeVar("Item")


class Batcher(Generic[Item]):
    def __init__(self, max_batch: int, max_wait_s: float):
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait_s >= 0, got {max_batch}, {max_wait_s}")
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        # client -> (time its oldest unanswered observation arrived, its newest observation)
        self._waiting: dict[str, tuple[float, Item]] = {}

    def add(self, client: str, item: Item, now: float) -> bool:
        """A client's observation; it replaces the one the client had waiting (True: one was
        superseded), keeping its place in the queue."""
        older = self._waiting.get(client)
        self._waiting[client] = (now if older is None else older[0], item)
        return older is not None

    def due_in(self, now: float) -> float | None:
        """Seconds until the next think should start (0: now); None while nothing waits."""
        if not self._waiting:
            return None
        if len(self._waiting) >= self.max_batch:
            return 0.0
        oldest = min(since for since, _ in self._waiting.values())
        return max(0.0, oldest + self.max_wait_s - now)

    def take(self) -> list[tuple[str, Item]]:
        """The next think's (client, observation) pairs, longest waiting first; they leave the queue."""
        order = sorted(self._waiting, key=lambda c: self._waiting[c][0])[: self.max_batch]
        return [(client, self._waiting.pop(client)[1]) for client in order]

    def __len__(self) -> int:
        return len(self._waiting)
