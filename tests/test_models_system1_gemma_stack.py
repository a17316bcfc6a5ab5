"""The Gemma stack behind System 1 and the value-query head: transformers' layers, our masks/cache."""

import pytest
import torch
from transformers import GemmaModel

from hume.models.gemma_stack import GemmaStack, gemma_config
from hume.models.joint_attention import block_mask


def stack():
    torch.manual_seed(0)
    cfg = gemma_config(width=32, num_layers=2, num_heads=4, num_kv_heads=1, head_dim=8, intermediate_size=64)
    return cfg, GemmaStack(cfg).eval()


@torch.no_grad()
def test_causal_mask_matches_transformers_gemma():
    cfg, s = stack()
    ref = GemmaModel(cfg).eval()
    ref.layers.load_state_dict(s.layers.state_dict())
    ref.norm.load_state_dict(s.norm.state_dict())
    x = torch.randn(2, 7, 32)
    pos = torch.arange(7)[None].expand(2, -1)
    out, _ = s(x, pos, block_mask(torch.arange(7))[None].expand(2, -1, -1))
    torch.testing.assert_close(out, ref(inputs_embeds=x).last_hidden_state, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_cached_prefix_equals_one_pass_with_block_mask():
    _, s = stack()
    blocks = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2])
    x = torch.randn(2, 9, 32)
    pos = torch.arange(9)[None].expand(2, -1)
    mask = block_mask(blocks)[None].expand(2, -1, -1)
    full, _ = s(x, pos, mask)
    head, kv = s(x[:, :6], pos[:, :6], mask[:, :6, :6])
    tail, _ = s(x[:, 6:], pos[:, 6:], mask[:, 6:], prefix=kv)
    torch.testing.assert_close(torch.cat([head, tail], 1), full, rtol=1e-5, atol=1e-6)
    # Bidirectional inside a block: the first token sees the fourth.
    y = x.clone()
    y[:, 3] += 1.0
    changed, _ = s(y, pos, mask)
    assert not torch.allclose(changed[:, 0], full[:, 0])
    # Causal across blocks: later blocks never change earlier ones.
    z = x.clone()
    z[:, 7] += 1.0
    later, _ = s(z, pos, mask)
    torch.testing.assert_close(later[:, :6], full[:, :6])
    assert not torch.allclose(later[:, 6], full[:, 6])


def test_block_mask():
    m = block_mask(torch.tensor([0, 0, 1, 2]))
    assert m.tolist() == [
        [True, True, False, False],
        [True, True, False, False],
        [True, True, True, False],
        [True, True, True, True],
    ]


def test_a_token_embedding_needs_a_pad_token():
    cfg, _ = stack()  # an embeddings-fed stack's config: no vocabulary, no pad token
    with pytest.raises(ValueError, match="pad_token_id"):
        GemmaStack(cfg, with_embedding=True)
