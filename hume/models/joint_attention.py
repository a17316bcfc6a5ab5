"""Joint attention over several transformer stacks, layer by layer (the pi0 / Hume design).

Each stack (the VLM and the action expert) owns its tokens and its weights. In every layer each
stack normalises and projects its own tokens to Q/K/V; attention then runs once over the
concatenation of all tokens under a block mask; each stack applies its own output projection,
residual, norm and MLP to its own slice. Keys/values of a prefix computed this way can be cached
and later joined by suffix tokens of another stack: that is how System 2 encodes the image +
language prefix once and reuses it for every Euler step and every candidate.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint
from transformers.models.gemma.modeling_gemma import GemmaDecoderLayer, apply_rotary_pos_emb


def block_mask(blocks: Tensor, query_blocks: Tensor | None = None) -> Tensor:
    """Token i may attend to token j iff block[j] <= block[i]: bidirectional within a block,
    causal across blocks. `blocks` [..., T] (keys); `query_blocks` [..., Tq] (defaults to the keys).
    Returns a bool mask [..., Tq, T]."""
    q = blocks if query_blocks is None else query_blocks
    return blocks[..., None, :] <= q[..., :, None]


def block_attention_mask(pad_mask: Tensor, block_start: Tensor) -> Tensor:
    """[B, T] valid tokens, [B, T] (or [T]) block starts -> [B, T, T] bool "query i may see key j".

    Tokens are grouped in consecutive blocks (a new block begins where block_start is True), seen
    as `block_mask` sees them. Padding is seen by nobody; a padding query sees only itself so
    that no row of the mask is empty (an empty softmax row would turn into NaN and leak).
    """
    mask = block_mask(torch.cumsum(block_start.to(torch.int64).expand_as(pad_mask), dim=1))
    mask = mask & pad_mask[:, None, :] & pad_mask[:, :, None]
    eye = torch.eye(pad_mask.shape[1], dtype=torch.bool, device=pad_mask.device)
    return mask | (eye & ~pad_mask[:, :, None])


def project(layer: GemmaDecoderLayer, h: Tensor) -> tuple[Tensor, ...]:
    """A stack's half of a joint layer before attention: queries, keys, values [B, T, heads *
    head_dim] (no rotary yet) and the normalised tokens [B, T, D]."""
    attn = layer.self_attn
    x = layer.input_layernorm(h)
    return attn.q_proj(x), attn.k_proj(x), attn.v_proj(x), x


def finish(layer: GemmaDecoderLayer, residual: Tensor, attended: Tensor) -> Tensor:
    """A stack's half after attention: output projection of its slice of the attention output
    [B, T, heads * head_dim], residual, norm and MLP."""
    h = residual + layer.self_attn.o_proj(attended)
    return h + layer.mlp(layer.post_attention_layernorm(h))


class JointDecoderLayer(GemmaDecoderLayer):
    """transformers' Gemma layer (same weights and names) with the two halves of `joint_layer` as
    methods, so that a sharded run (hume/train/fsdp.py) gathers the layer's weights around each."""

    def project(self, h: Tensor) -> tuple[Tensor, ...]:
        return project(self, h)

    def finish(self, residual: Tensor, attended: Tensor) -> Tensor:
        return finish(self, residual, attended)


def _method(layer: GemmaDecoderLayer, name: str, function):
    """The layer's own method (possibly wrapped by FSDP), or the plain function for a plain layer."""
    if isinstance(layer, JointDecoderLayer):
        return getattr(layer, name)
    return lambda *args: function(layer, *args)


def joint_layer(
    layers: Sequence[GemmaDecoderLayer],
    hiddens: Sequence[Tensor | None],
    cos: Tensor,
    sin: Tensor,
    mask: Tensor,
    past_kv: tuple[Tensor, Tensor] | None = None,
    residual_from_norm: bool = False,
) -> tuple[list[Tensor | None], tuple[Tensor, Tensor]]:
    """One joint-attention layer.

    layers[s] is stack s's Gemma decoder layer (only its submodules are used); hiddens[s] its tokens
    [B, T_s, D_s] or None when the stack has no tokens in this pass. cos/sin [B, T, head_dim] are the
    rotary tables of the T = sum(T_s) new tokens. past_kv (keys, values [B, kv_heads, P, head_dim],
    rotary already applied) are prepended to the new keys/values; mask is [B, T, P + T].
    residual_from_norm: the first residual adds the normalised hidden state instead of the raw one
    (the authors' value-query head and System 1 were trained so).
    Returns the new hiddens and the (keys, values) of the new tokens, for caching.
    """
    queries, keys, values, residuals = [], [], [], []
    for layer, h in zip(layers, hiddens, strict=True):
        if h is None:
            continue
        q, k, v, x = _method(layer, "project", project)(h)
        shape = (*h.shape[:-1], -1, layer.self_attn.head_dim)
        queries.append(q.view(shape).transpose(1, 2))
        keys.append(k.view(shape).transpose(1, 2))
        values.append(v.view(shape).transpose(1, 2))
        residuals.append(x if residual_from_norm else h)
    q, k = apply_rotary_pos_emb(torch.cat(queries, 2), torch.cat(keys, 2), cos, sin)
    v = torch.cat(values, 2)
    new_kv = (k, v)
    if past_kv is not None:
        k, v = torch.cat([past_kv[0], k], 2), torch.cat([past_kv[1], v], 2)
    # Gemma scales scores by head_dim ** -0.5, which is SDPA's default; GQA shares the KV heads
    # (decided from the config, a plain bool, so that a traced graph keeps it).
    attn_config = layers[0].self_attn.config
    gqa = attn_config.num_attention_heads != attn_config.num_key_value_heads
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None], enable_gqa=gqa)
    out = out.transpose(1, 2).flatten(2)

    new_hiddens: list[Tensor | None] = []
    start = 0
    residual = iter(residuals)
    for layer, h in zip(layers, hiddens, strict=True):
        if h is None:
            new_hiddens.append(None)
            continue
        n = h.shape[1]
        new_hiddens.append(_method(layer, "finish", finish)(next(residual), out[:, start : start + n]))
        start += n
    return new_hiddens, new_kv


def run_joint_layer(checkpointed: bool, *args, **kwargs) -> tuple[list[Tensor | None], tuple[Tensor, Tensor]]:
    """`joint_layer`, with activation checkpointing when `checkpointed` and gradients are on: the
    layer keeps only its inputs for the backward pass and recomputes the rest there (less memory
    for one more forward of the layer)."""
    if checkpointed and torch.is_grad_enabled():
        return checkpoint(joint_layer, *args, use_reentrant=False, **kwargs)
    return joint_layer(*args, **kwargs)
