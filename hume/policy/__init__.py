"""The policy layer: networks + normalisation + transforms + the synchronous System-2/System-1 schedule.

HumePolicy and SyncLoop (the synchronous loop's episode, beside the policy) are imported on first
use: the schedule, chunk and hold action are torch-free, and code that needs only them (the
scripted-expert collection, the System-1 node's robot side) should not pay for importing torch."""

from hume.policy.chunk import Chunk

__all__ = ["Chunk", "HumePolicy", "SyncLoop"]


def __getattr__(name: str):
    if name == "HumePolicy":
        from hume.policy.hume_policy import HumePolicy

        return HumePolicy
    if name == "SyncLoop":
        from hume.policy.sync_loop import SyncLoop

        return SyncLoop
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
