"""A network's sizes read off its tensors' shapes (what a source's config does not state, or
states wrongly, the tensors do)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hume.models.checkpoint_tensors import CheckpointError, SourceTensors


def layer_count(source: SourceTensors, prefix: str) -> int:
    """How many layers `prefix`0., `prefix`1., ... there are (they must be contiguous)."""
    found = {int(m.group(1)) for k in source.keys() if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    if not found or found != set(range(max(found) + 1)):
        raise CheckpointError(f"{source.directory}: no contiguous layers under {prefix!r}")
    return max(found) + 1


@dataclass(frozen=True)
class GemmaSizes:
    width: int
    depth: int
    num_heads: int
    head_dim: int
    mlp_dim: int


def gemma_sizes(source: SourceTensors, prefix: str) -> GemmaSizes:
    """The sizes of the Gemma stack whose layers are `prefix`layers.N. Every Gemma of π0 and of the
    authors' Hume has one KV head, so the key projection's rows are head_dim and the query
    projection's rows heads x head_dim."""
    q_key = f"{prefix}layers.0.self_attn.q_proj.weight"
    q, k = source.shape(q_key), source.shape(f"{prefix}layers.0.self_attn.k_proj.weight")
    if q[0] % k[0]:
        raise CheckpointError(
            f"{source.where(q_key)}: query rows {q[0]} are not a multiple of key rows {k[0]} (a Gemma with "
            "one KV head)"
        )
    return GemmaSizes(
        width=q[1],
        depth=layer_count(source, prefix + "layers."),
        num_heads=q[0] // k[0],
        head_dim=k[0],
        mlp_dim=source.shape(f"{prefix}layers.0.mlp.gate_proj.weight")[0],
    )
