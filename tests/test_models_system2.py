"""System 2: block mask, joint attention against transformers' Gemma layer, prefix cache, best-of-N
(against the naive baseline of hume bench best-of-n)."""

import dataclasses

import pytest
import torch
from transformers.models.gemma.modeling_gemma import GemmaDecoderLayer, GemmaRotaryEmbedding

from hume.bench.best_of_n import sample_naive
from hume.models.configuration_system2 import System2Config
from hume.models.joint_attention import block_attention_mask, joint_layer
from hume.models.system2 import System2, gemma_config

B, C, L, H, A, S = 2, 2, 12, 6, 32, 32
SMALL = System2Config(
    vision_width=32,
    vision_depth=1,
    vision_heads=2,
    vision_mlp_dim=64,
    patch_size=8,
    vlm_width=48,
    vlm_depth=2,
    vlm_mlp_dim=96,
    vocab_size=64,
    num_heads=2,
    num_kv_heads=1,
    head_dim=16,
    expert_width=32,
    expert_mlp_dim=64,
    max_token_len=L,
    num_steps=4,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return System2(SMALL, image_size=32, chunk_size=H, action_dim=A, state_dim=S).eval()


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(1)
    images = torch.rand((B, C, 3, 32, 32), generator=g) * 2 - 1
    image_masks = torch.tensor([[True, True], [True, False]])  # second sample lacks its wrist camera
    tokens = torch.randint(4, 64, (B, L), generator=g)
    token_masks = torch.arange(L)[None] < torch.tensor([[5], [9]])
    state = torch.randn((B, S), generator=g)
    return images, image_masks, tokens, token_masks, state


def test_block_mask_semantics():
    # prefix of 3 (last one padding) | state | 2 actions
    pad = torch.tensor([[True, True, False, True, True, True]])
    start = torch.tensor([False, False, False, True, True, False])
    m = block_attention_mask(pad, start)[0]
    prefix, state, actions = [0, 1], 3, [4, 5]
    for i in prefix:
        assert m[i, prefix].all() and not m[i, [state, *actions]].any(), "prefix must never see the suffix"
    assert m[state, prefix + [state]].all() and not m[state, actions].any(), "state is its own block"
    for i in actions:
        assert m[i, prefix + [state] + actions].all(), "actions see everything before them and each other"
    assert not m[:, 2][[0, 1, 3, 4, 5]].any(), "padding is seen by nobody"
    assert m[2].tolist() == [False, False, True, False, False, False], "a padding query sees only itself"


def test_joint_layer_matches_transformers_gemma_layer():
    """One stack through joint_layer == transformers' own GemmaDecoderLayer.forward."""
    torch.manual_seed(0)
    cfg = gemma_config(SMALL, 48, 96)
    cfg._attn_implementation = "eager"
    layer = GemmaDecoderLayer(cfg, 0).eval()
    with torch.no_grad():
        for p in layer.parameters():  # RMSNorm weights start at 0; make them matter
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 7, 48)
    pos = torch.arange(7)[None].expand(2, -1)
    cos, sin = GemmaRotaryEmbedding(cfg)(x, pos)
    pad = torch.ones(2, 7, dtype=torch.bool)
    start = torch.tensor([False, False, False, True, False, True, False])
    mask = block_attention_mask(pad, start)
    additive = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)[:, None]
    with torch.no_grad():
        ref = layer(x, attention_mask=additive, position_embeddings=(cos, sin))
        (ours,), _ = joint_layer([layer], [x], cos, sin, mask)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_prefix_embedding_shapes(model, inputs):
    images, image_masks, tokens, token_masks, _ = inputs
    embs, mask = model.embed_prefix(images, image_masks, tokens, token_masks)
    n = model.tokens_per_image
    assert n == (32 // 8) ** 2
    assert embs.shape == (B, C * n + L, SMALL.vlm_width)
    assert mask[1, n : 2 * n].sum() == 0 and mask[1, :n].all(), "a missing camera's tokens are padding"
    assert mask[:, C * n :].sum(1).tolist() == [5, 9]


def test_cached_prefix_velocity_equals_full_joint_forward(model, inputs):
    images, image_masks, tokens, token_masks, state = inputs
    x_t, t = torch.randn(B, H, A), torch.tensor([0.3, 0.9])
    with torch.no_grad():
        prefix = model.embed_prefix(images, image_masks, tokens, token_masks)
        cached = model.velocity(model.encode_prefix(*prefix), state, x_t, t)
        full = model.velocity_joint(*prefix, state, x_t, t)
    assert cached.shape == (B, H, A)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-4)


def test_suffix_does_not_change_prefix_but_prefix_changes_suffix(model, inputs):
    images, image_masks, tokens, token_masks, state = inputs
    x_t, t = torch.randn(B, H, A), torch.tensor([0.5, 0.5])
    with torch.no_grad():
        prefix = model.embed_prefix(images, image_masks, tokens, token_masks)
        v1 = model.velocity_joint(*prefix, state, x_t, t)
        other_tokens = tokens.clone()
        other_tokens[:, 0] = (tokens[:, 0] + 1) % 64
        v2 = model.velocity_joint(
            *model.embed_prefix(images, image_masks, other_tokens, token_masks), state, x_t, t
        )
        # Changing only padded instruction tokens changes nothing.
        padded = tokens.clone()
        padded[~token_masks] = 7
        v3 = model.velocity_joint(
            *model.embed_prefix(images, image_masks, padded, token_masks), state, x_t, t
        )
    assert not torch.allclose(v1, v2, atol=1e-4), "the actions must attend to the instruction"
    torch.testing.assert_close(v1, v3, atol=1e-5, rtol=1e-4)


def test_batched_best_of_n_equals_separate_runs_and_naive(model, inputs):
    images, image_masks, tokens, token_masks, state = inputs
    n = 4
    g = torch.Generator().manual_seed(3)
    noise = torch.randn((B, n, H, A), generator=g)
    t0 = torch.tensor([1.0, 0.97, 0.93, 0.9]).expand(B, n)
    dt = torch.tensor([-0.3, -0.29, -0.31, -0.1]).expand(B, n)
    steps = torch.tensor([3, 3, 3, 2]).expand(B, n)  # candidates may take different step counts
    temperature = torch.tensor([1.0, 0.9, 1.1, 1.0]).expand(B, n)
    with torch.no_grad():
        cache = model.encode_prefix(*model.embed_prefix(images, image_masks, tokens, token_masks))
        batched = model.sample(cache, state, noise, t0, dt, steps, temperature)
        separate = torch.cat(
            [
                model.sample(
                    model.encode_prefix(*model.embed_prefix(images, image_masks, tokens, token_masks)),
                    state,
                    noise[:, i : i + 1],
                    t0[:, i : i + 1],
                    dt[:, i : i + 1],
                    steps[:, i : i + 1],
                    temperature[:, i : i + 1],
                )
                for i in range(n)
            ],
            1,
        )
        naive = sample_naive(
            model, images, image_masks, tokens, token_masks, state, noise, t0, dt, steps, temperature
        )
    assert batched.shape == (B, n, H, A)
    torch.testing.assert_close(batched, separate, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batched, naive, atol=1e-5, rtol=1e-4)
    # Candidates differ, and a per-candidate schedule is honoured (not just the noise).
    assert not torch.allclose(batched[:, 0], batched[:, 1])


def test_sampling_matches_hand_written_euler_loop(model, inputs):
    images, image_masks, tokens, token_masks, state = inputs
    noise = torch.randn(B, 1, H, A)
    with torch.no_grad():
        cache = model.encode_prefix(*model.embed_prefix(images, image_masks, tokens, token_masks))
        ones = torch.ones(B, 1)
        got = model.sample(cache, state, noise, ones, -0.5 * ones, 2 * ones.long(), ones)[:, 0]
        x = noise[:, 0]
        for t in (1.0, 0.5):
            x = x - 0.5 * model.velocity(cache, state, x, torch.full((B,), t))
        # A candidate with 1 step of a 2-step batch stops after its first step.
        mixed = model.sample(
            cache,
            state,
            noise.expand(B, 2, H, A),
            ones.expand(B, 2),
            -0.5 * ones.expand(B, 2),
            torch.tensor([[1, 2]]).expand(B, 2),
            ones.expand(B, 2),
        )
        first = noise[:, 0] - 0.5 * model.velocity(cache, state, noise[:, 0], torch.full((B,), 1.0))
    torch.testing.assert_close(got, x, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mixed[:, 0], first, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mixed[:, 1], x, atol=1e-5, rtol=1e-4)


def test_pinned_padded_dims_follow_their_training_path_to_the_zero_padding(model, inputs):
    """pin_padded_actions: the padded dims stay on x_t = t * noise (what training showed the network
    for a zero padding) instead of following their untrained velocity."""
    images, image_masks, tokens, token_masks, state = inputs
    pinned = System2(SMALL, image_size=32, chunk_size=H, action_dim=A, state_dim=S, robot_action_dim=7).eval()
    pinned.load_state_dict(model.state_dict())
    noise = torch.randn(B, 1, H, A, generator=torch.Generator().manual_seed(5))
    ones = torch.ones(B, 1)
    with torch.no_grad():
        cache = model.encode_prefix(*model.embed_prefix(images, image_masks, tokens, token_masks))
        half = (cache, state, noise, ones, -0.25 * ones, 2 * ones.long(), ones)  # from t = 1 to 0.5
        full = (cache, state, noise, ones, -0.25 * ones, 4 * ones.long(), ones)  # to t = 0
        torch.testing.assert_close(pinned.sample(*half)[..., 7:], 0.5 * noise[..., 7:])
        torch.testing.assert_close(
            pinned.sample(*full)[..., 7:], torch.zeros_like(noise[..., 7:]), atol=1e-6, rtol=0
        )
        free, held = model.sample(*full), pinned.sample(*full)
    assert free[..., 7:].abs().max() > 0.1, "unpinned, they follow the network's velocity"
    # The real dims differ too: the padded dims feed back through action_in_proj.
    assert not torch.allclose(held[..., :7], free[..., :7], atol=1e-4)


def test_training_loss_and_gradients(model, inputs):
    images, image_masks, tokens, token_masks, state = inputs
    torch.manual_seed(0)
    model.train()
    actions = torch.randn(B, H, A)
    noise, t = torch.randn(B, H, A), torch.tensor([0.2, 0.8])
    batch = dict(
        images=images,
        image_masks=image_masks,
        tokens=tokens,
        token_masks=token_masks,
        state=state,
        actions=actions,
        noise=noise,
        time=t,
    )
    try:
        loss = model(batch)
        assert loss.ndim == 0 and torch.isfinite(loss)
        loss.backward()
        grads = {name: p.grad for name, p in model.named_parameters()}
        for part in ("vision_tower.", "vlm.layers.0.", "expert.layers.1.", "state_proj", "action_out_proj"):
            assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.startswith(part)), (
                part
            )
        # The loss is the MSE of the velocity against u = noise - actions, on the dims and steps asked for.
        with torch.no_grad():
            prefix = model.embed_prefix(images, image_masks, tokens, token_masks)
            v = model.velocity_joint(
                *prefix, state, t[:, None, None] * noise + (1 - t[:, None, None]) * actions, t
            )
            dims = torch.arange(A) < 7
            pad = torch.zeros(B, H, dtype=torch.bool)
            pad[1, 4:] = True
            pinned = System2(
                SMALL, image_size=32, chunk_size=H, action_dim=A, state_dim=S, robot_action_dim=7
            ).train()
            pinned.load_state_dict(model.state_dict())
            masked = pinned({**batch, "action_is_pad": pad})
            err = (v - (noise - actions)).pow(2)
            expected = err[..., dims][~pad].mean()
            # Unpinned (pi0 and the authors): every padded dim is trained towards the zero padding.
            unpinned = System2(
                dataclasses.replace(SMALL, pin_padded_actions=False),
                image_size=32,
                chunk_size=H,
                action_dim=A,
                state_dim=S,
                robot_action_dim=7,
            ).train()
            unpinned.load_state_dict(model.state_dict())
            everything = unpinned({**batch, "action_is_pad": pad})
        torch.testing.assert_close(masked, expected, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(everything, err[~pad].mean(), atol=1e-5, rtol=1e-4)
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
