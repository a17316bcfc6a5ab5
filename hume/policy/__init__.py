"""The policy layer: networks + normalisation + transforms + the synchronous System-2/System-1 schedule."""

from hume.policy.chunk import Chunk
from hume.policy.hume_policy import HumePolicy

__all__ = ["Chunk", "HumePolicy"]
