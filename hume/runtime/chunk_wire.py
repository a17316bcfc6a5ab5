"""A policy's Chunk <-> the fields and arrays of a chunk message (the selected chunk, the values of
all candidates, the chosen index)."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from hume.runtime import protocol


def chunk_to_wire(chunk) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    arrays = {
        "actions": np.asarray(chunk.actions, dtype=np.float32),
        "values": np.asarray(chunk.values, dtype=np.float32).reshape(-1),
    }
    return {"chosen": int(chunk.chosen)}, arrays


def chunk_class(policy) -> type:
    """The Chunk type of a policy: the `Chunk` defined beside its class."""
    return sys.modules[type(policy).__module__].Chunk


def chunk_from_wire(msg: protocol.Message, chunk_cls: type):
    return chunk_cls(actions=msg.arrays["actions"], values=msg.arrays["values"], chosen=msg.fields["chosen"])
