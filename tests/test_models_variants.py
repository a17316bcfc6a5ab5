"""The switches that reproduce the authors' networks, each on a small hand-checkable case."""

import dataclasses
from pathlib import Path

import torch
from transformers.models.gemma.modeling_gemma import GemmaDecoderLayer

from hume.config import parse_config
from hume.models import flow
from hume.models.configuration_hume import HumeConfig
from hume.models.configuration_system1 import System1Config
from hume.models.configuration_value_query_head import ValueQueryHeadConfig
from hume.models.gemma_stack import gemma_config
from hume.models.joint_attention import joint_layer
from hume.models.system1 import System1
from hume.models.value_query_head import ValueQueryHead
from hume.policy.hume_policy import build_networks, candidate_schedule

ROOT = Path(__file__).resolve().parents[1]


def test_residual_from_norm_adds_the_normalised_hidden_state():
    torch.manual_seed(0)
    layer = GemmaDecoderLayer(
        gemma_config(width=16, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=8, intermediate_size=32), 0
    ).eval()
    with torch.no_grad():
        layer.input_layernorm.weight.normal_()
    x = torch.randn(1, 3, 16)
    cos, sin = torch.ones(1, 3, 8), torch.zeros(1, 3, 8)  # position 0 everywhere: no rotation
    mask = torch.ones(1, 3, 3, dtype=torch.bool)
    with torch.no_grad():
        (standard,), _ = joint_layer([layer], [x], cos, sin, mask)
        (normed,), _ = joint_layer([layer], [x], cos, sin, mask, residual_from_norm=True)
        # By hand: attention output o, then h = r + o, out = h + mlp(norm2(h)), r = x or norm1(x).
        n = layer.input_layernorm(x)
        q = layer.self_attn.q_proj(n).view(1, 3, 2, 8).transpose(1, 2)
        k = layer.self_attn.k_proj(n).view(1, 3, 1, 8).transpose(1, 2)
        v = layer.self_attn.v_proj(n).view(1, 3, 1, 8).transpose(1, 2)
        att = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, -1) @ v
        o = layer.self_attn.o_proj(att.transpose(1, 2).flatten(2))
        for residual, got in ((x, standard), (n, normed)):
            h = residual + o
            torch.testing.assert_close(got, h + layer.mlp(layer.post_attention_layernorm(h)))


def small_head(**switches) -> ValueQueryHead:
    sizes = dict(
        width=16,
        num_layers=1,
        num_heads=2,
        head_dim=8,
        intermediate_size=32,
        action_steps=2,
        critic_hidden=(8,),
        actor_hidden=(8,),
    )
    cfg = ValueQueryHeadConfig(**(sizes | switches))
    torch.manual_seed(0)
    return ValueQueryHead(cfg, prefix_dim=16, action_dim=3).eval()


def test_bidirectional_query_sees_and_is_seen_at_the_position_after_the_valid_tokens():
    head = small_head(width=None, query_attention="bidirectional")
    assert not hasattr(head, "input_proj")
    embs = torch.randn(1, 5, 16)
    mask = torch.tensor([[True, True, True, False, False]])
    seen = {}
    head.encoder.rotary.register_forward_hook(lambda m, args, out: seen.update(positions=args[1]))
    with torch.no_grad():
        feature = head.state_feature(embs, mask)
        # Padding changes nothing; the query's position is the number of valid tokens (3).
        moved = embs.clone()
        moved[:, 3:] = 9.0
        torch.testing.assert_close(head.state_feature(moved, mask), feature)
    assert seen["positions"].tolist() == [[0, 1, 2, 2, 2, 3]]
    # The prefix sees the query: with a causal query the prefix tokens' outputs ignore it.
    causal = small_head(width=None, query_attention="causal")
    causal.load_state_dict(head.state_dict())
    with torch.no_grad():
        assert not torch.allclose(causal.state_feature(embs, mask), feature, atol=1e-4)


def test_without_a_width_the_head_reads_the_prefix_at_its_own_width():
    head = small_head(width=None)
    assert not hasattr(head, "input_proj") and head.query.shape == (16,)
    projected = small_head(width=24)
    assert projected.input_proj.weight.shape == (24, 16) and projected.query.shape == (24,)


def test_silu_critics():
    head = small_head(critic_activation="silu")
    assert isinstance(head.critics[0][1], torch.nn.SiLU) and isinstance(head.actor.net[1], torch.nn.SiLU)
    x = torch.randn(4, 16 + 2 * 3)
    c = head.critics[0]
    torch.testing.assert_close(c(x), c[2](torch.nn.functional.silu(c[0](x))))


CHUNK = 16  # H, System 2's chunk: the stamp token is offset / H


def small_system1(**switches) -> System1:
    cfg = System1Config(
        vision_hidden_size=16,
        vision_num_layers=1,
        vision_num_heads=2,
        patch_size=16,
        vision_pos_grid=32,
        width=16,
        num_layers=2,
        num_heads=2,
        head_dim=8,
        intermediate_size=32,
        state_history=3,
        **switches,
    )
    torch.manual_seed(0)
    return System1(
        cfg, cameras=("agentview", "wrist"), chunk_size=CHUNK, horizon=4, state_dim=8, action_dim=8
    ).eval()


def test_system1_history_mask_and_raw_stamp():
    authors = small_system1(stamp_projection=False, camera_embedding=False, history_mask="causal")
    assert not hasattr(authors, "stamp_proj") and not hasattr(authors, "camera_embedding")
    images = {c: torch.rand(1, 3, 32, 32) * 2 - 1 for c in ("agentview", "wrist")}
    history = torch.randn(1, 3, 8)
    offset = torch.tensor([4.0])
    with torch.no_grad():
        kv = authors.encode_observation(images, history, offset).kv
        # Causal history: the oldest state's second-layer keys do not depend on the newer states.
        newer = history.clone()
        newer[:, 1:] += 1.0
        kv2 = authors.encode_observation(images, newer, offset).kv
        n_img = 2 * 5  # two cameras, 4 patches + CLS
        torch.testing.assert_close(kv2[1][0][:, :, : n_img + 1], kv[1][0][:, :, : n_img + 1])
        assert not torch.allclose(kv2[1][0][:, :, n_img + 1 :], kv[1][0][:, :, n_img + 1 :])
    shared = small_system1()
    with torch.no_grad():
        kv = shared.encode_observation(images, history, offset).kv
        kv2 = shared.encode_observation(images, newer, offset).kv
        assert not torch.allclose(kv2[1][0][:, :, n_img], kv[1][0][:, :, n_img]), "shared: all see all"
    # The raw stamp token is the sinusoid of offset / H itself.
    tokens = {}
    authors.trunk.register_forward_pre_hook(lambda m, args: tokens.update(x=args[0]))
    with torch.no_grad():
        authors.encode_observation(images, history, offset)
    expected = flow.sinusoidal_embedding(offset / CHUNK, 16)
    torch.testing.assert_close(tokens["x"][0, -1], expected[0])


def test_authors_candidate_schedule():
    cfg = HumeConfig(candidate_schedule="hume", theta2=0.0, num_candidates=5)
    plan = candidate_schedule(cfg, 5, 0.0)
    torch.testing.assert_close(plan["t0"], torch.tensor([0.90, 0.92, 0.94, 0.96, 0.98]))
    torch.testing.assert_close(plan["temperature"], torch.tensor([1.0, 1.2, 1.4, 1.6, 1.8]))
    assert plan["steps"].tolist() == [9, 9, 9, 10, 10] and torch.all(plan["dt"] == -0.1)
    ours = candidate_schedule(HumeConfig(), 5, 0.1)
    assert ours["t0"][0] == 1.0 and ours["steps"].unique().tolist() == [9]
    torch.testing.assert_close(ours["t0"] + ours["dt"] * ours["steps"], torch.full((5,), 0.1))


def test_full_config_scores_the_robots_real_action_dims():
    """configs/model/full.yaml once padded the value head's actions to 32: its critic read 320
    action inputs, 25 of 32 dims never seen in data, and its target entropy was -320."""
    config = parse_config(HumeConfig, ["--config", str(ROOT / "configs/model/full.yaml")])
    with torch.device("meta"):
        head = build_networks(config, only=("value_head",))["value_head"]
    k = config.value_head.action_steps
    assert head.critics[0][0].in_features == config.system2.vlm_width + k * config.action_dim == 2048 + 70
    assert head.target_entropy == -70.0
    assert dataclasses.fields(config.value_head) and not hasattr(config.value_head, "action_dim")
