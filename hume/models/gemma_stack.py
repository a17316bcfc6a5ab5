"""A Gemma decoder stack run with an explicit attention mask and an optional cached prefix.

The layers are transformers' own Gemma modules (so their weights load and save as Gemma's); only
the loop over them is ours, because System 1, the value-query head and System 2 need block masks
and a prefix whose keys/values are computed once and reused by every later query. Each layer is
`joint_layer` of hume/models/joint_attention.py with a single stack; System 2's training pass runs
the layers of its two stacks jointly instead.
"""

from __future__ import annotations

from torch import Tensor, nn
from transformers import GemmaConfig
from transformers.models.gemma.modeling_gemma import (
    GemmaRMSNorm,
    GemmaRotaryEmbedding,
    GemmaTextScaledWordEmbedding,
)

from hume.models.joint_attention import JointDecoderLayer, run_joint_layer

KVCache = list[tuple[Tensor, Tensor]]  # per layer: keys, values [B, kv_heads, T, head_dim]


def gemma_config(
    *, width: int, num_layers: int, num_heads: int, num_kv_heads: int, head_dim: int, intermediate_size: int
) -> GemmaConfig:
    """A GemmaConfig for a stack fed with embeddings (no vocabulary of its own)."""
    return GemmaConfig(
        vocab_size=1,
        hidden_size=width,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=head_dim,
        hidden_act="gelu_pytorch_tanh",
        pad_token_id=None,
        bos_token_id=None,
        eos_token_id=None,
    )


class GemmaStack(nn.Module):
    def __init__(self, config: GemmaConfig, residual_from_norm: bool = False, with_embedding: bool = False):
        """residual_from_norm: see `joint_layer` (the authors' value head and System 1 need it).
        with_embedding: the stack also owns a token embedding (System 2's VLM reads text)."""
        super().__init__()
        self.config = config
        self.residual_from_norm = residual_from_norm
        if with_embedding:
            if config.pad_token_id is None:
                raise ValueError("a stack with a token embedding needs config.pad_token_id (its padding row)")
            self.embed_tokens = GemmaTextScaledWordEmbedding(
                config.vocab_size,
                config.hidden_size,
                config.pad_token_id,
                embed_scale=config.hidden_size**0.5,
            )
        self.layers = nn.ModuleList(JointDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = GemmaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary = GemmaRotaryEmbedding(config)
        # Training switch (hume train's activation_checkpointing): recompute each layer in backward.
        self.activation_checkpointing = False

    def forward(
        self, x: Tensor, positions: Tensor, mask: Tensor, prefix: KVCache | None = None
    ) -> tuple[Tensor, KVCache]:
        """x [B, T, D] at `positions` [B, T]; mask bool [B, T, P + T] over (prefix, x) keys.

        Returns the normed output [B, T, D] and this call's keys/values per layer, which a later
        call can pass as `prefix` (the prefix never needs to see the later tokens).
        """
        cos, sin = self.rotary(x, positions)
        kv: KVCache = []
        hidden: list[Tensor | None] = [x]
        for i, layer in enumerate(self.layers):
            # A single stack is joint attention with one participant.
            hidden, layer_kv = run_joint_layer(
                self.activation_checkpointing and self.training,
                [layer],
                hidden,
                cos,
                sin,
                mask,
                past_kv=None if prefix is None else prefix[i],
                residual_from_norm=self.residual_from_norm,
            )
            kv.append(layer_kv)
        (out,) = hidden
        assert out is not None  # the stack has inputs, so it has outputs
        return self.norm(out), kv
