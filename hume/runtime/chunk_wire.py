"""A policy's Chunk <-> the fields and arrays of a chunk message (the selected chunk, the values of
all candidates, the chosen index, the flow time System 2 stopped at, and System 2's padded action
dims when System 1 reads them)."""

from __future__ import annotations

from typing import Any

import numpy as np

from hume.policy.chunk import Chunk
from hume.runtime import protocol


def chunk_to_wire(chunk: Chunk) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    fields = {"chosen": int(chunk.index), "noise_level": float(chunk.noise_level)}
    arrays = {
        "actions": np.asarray(chunk.actions, dtype=np.float32),
        "values": np.asarray(chunk.values, dtype=np.float32).reshape(-1),
    }
    if chunk.padding is not None:
        arrays["padding"] = np.asarray(chunk.padding, dtype=np.float32)
    return fields, arrays


def chunk_from_wire(msg: protocol.Message) -> Chunk:
    return Chunk(
        actions=msg.arrays["actions"],
        noise_level=msg.fields["noise_level"],
        values=msg.arrays["values"],
        index=msg.fields["chosen"],
        padding=msg.arrays.get("padding"),
    )
