"""A tiny random checkpoint folder laid out exactly as the authors' Hume training code saves one.

Their training ends in LeRobot's `PreTrainedPolicy.save_pretrained` of their `HumePolicy`:
`config.json` is a draccus dump of their `HumeConfig`, `model.safetensors` is
`safetensors.torch.save_model(policy)` under transformers 4.51's module layout, and the tokenizer is
saved next to them by transformers 4.51. This module writes the same three things with tiny sizes
and random weights, so the converter of their checkpoints and `tests/authors_reference.py` can be
checked without their (multi-GB) releases. Only torch, safetensors and transformers' tokenizer are used.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER_DIR = ROOT / "hume" / "tokenizer"

S2 = "s2_model.paligemma_with_expert."
VLM = S2 + "paligemma."
S1 = "s1_model."
VQH = "value_query_head."

# Tiny sizes (the full ones in the comments). The value-query backbone is not in config.json: their
# ValueQueryHead always builds VQHBackboneConfig() (4 layers, width 2048, 8 heads x 256, 1 KV head,
# MLP 4096), so a converter must read these from the tensor shapes.
VLM_TEXT = dict(hidden=64, layers=2, heads=2, kv_heads=1, head_dim=16, mlp=128, vocab=1024)  # Gemma 2B
SIGLIP = dict(hidden=32, layers=2, heads=2, mlp=64, patch=14)  # so400m/14: 1152, 27, 16, 4304
EXPERT = dict(hidden=32, mlp=64)  # 1024, MLP 4096; layers/heads/head_dim shared with the VLM
DINO = dict(
    hidden=32, layers=2, heads=2, mlp_ratio=2, patch=14, image_size=70
)  # dinov2-small: 384, 12, 6, 4, 518
S1_GEMMA = dict(hidden=32, layers=2, heads=2, kv_heads=1, head_dim=16, mlp=64)  # 512, 13, 8, 1, 128, 2048
VQH_GEMMA = dict(hidden=64, layers=2, heads=2, kv_heads=1, head_dim=16, mlp=96, vocab=1024)
CRITIC_HIDDEN = (32, 32)  # theirs: [256, 256], fixed in CalQlConfig
CRITIC_ENSEMBLE = 2


def _gemma_config(hidden: int, layers: int, heads: int, kv_heads: int, head_dim: int, mlp: int, vocab: int):
    # The key set of their `gemma_expert_config` / `s1_gemma_expert_config` defaults.
    return {
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 2,
        "eos_token_id": 1,
        "head_dim": head_dim,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": mlp,
        "max_position_embeddings": 8192,
        "model_type": "gemma",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv_heads,
        "pad_token_id": 0,
        "rms_norm_eps": 1e-06,
        "rope_theta": 10000.0,
        "torch_dtype": "float32",
        "transformers_version": "4.48.1",
        "use_cache": True,
        "vocab_size": vocab,
    }


def authors_config(
    *,
    vqh_chunk_size: int = 2,
    s1_his_state_size: int = 1,
    s2_chunk_size: int = 8,
    s1_chunk_size: int = 4,
    action_dim: int = 7,
    state_dim: int = 8,
    theta1: float = 1.0,
    theta2: float = 1.0,
    image_size: int = 56,
) -> dict:
    """Their HumeConfig as draccus dumps it (field order of the dataclass, "type" first)."""
    t, v, d = VLM_TEXT, SIGLIP, DINO
    num_image_tokens = (image_size // v["patch"]) ** 2
    text_config = {
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": t["hidden"],
        "intermediate_size": t["mlp"],
        "model_type": "gemma",
        "num_attention_heads": t["heads"],
        "num_hidden_layers": t["layers"],
        "num_image_tokens": num_image_tokens,
        "num_key_value_heads": t["kv_heads"],
        # Absent from their defaults (GemmaConfig's own default, 256, is Gemma 2B's); needed when tiny.
        "head_dim": t["head_dim"],
        "torch_dtype": "float32",
        "vocab_size": t["vocab"],
    }
    vision_config = {
        "hidden_size": v["hidden"],
        "intermediate_size": v["mlp"],
        "model_type": "siglip_vision_model",
        "num_attention_heads": v["heads"],
        "num_hidden_layers": v["layers"],
        "num_image_tokens": num_image_tokens,
        "image_size": image_size,
        "patch_size": v["patch"],
        "projection_dim": t["hidden"],
        "projector_hidden_act": "gelu_fast",
        "vision_use_head": False,
    }
    paligemma_config = {
        "bos_token_id": 2,
        "eos_token_id": 1,
        "hidden_size": t["hidden"],
        "ignore_index": -100,
        "image_token_index": t["vocab"],
        "model_type": "paligemma",
        "pad_token_id": 0,
        "projection_dim": t["hidden"],
        "text_config": text_config,
        "torch_dtype": "float32",
        "transformers_version": "4.48.1",
        "vision_config": vision_config,
        "vocab_size": t["vocab"],
    }
    dino_config = {
        "model_type": "dinov2",
        "attention_probs_dropout_prob": 0.0,
        "drop_path_rate": 0.0,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "hidden_size": d["hidden"],
        # Not a multiple of the 56-pixel input: their DINOv2 interpolates its position embeddings
        # (dinov2-small: 518 for 224 inputs).
        "image_size": d["image_size"],
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-06,
        "layerscale_value": 1.0,
        "mlp_ratio": d["mlp_ratio"],
        "num_attention_heads": d["heads"],
        "num_channels": 3,
        "num_hidden_layers": d["layers"],
        "patch_size": d["patch"],
        "qkv_bias": True,
        "torch_dtype": "float32",
        "use_swiglu_ffn": False,
    }
    visual = {"type": "VISUAL", "shape": [3, 256, 256]}
    return {
        "type": "hume",
        "n_obs_steps": 1,
        "normalization_mapping": {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"},
        "input_features": {
            "observation.images.image": dict(visual),
            "observation.images.wrist_image": dict(visual),
            "observation.state": {"type": "STATE", "shape": [state_dim]},
        },
        "output_features": {"action": {"type": "ACTION", "shape": [action_dim]}},
        "device": "cuda",
        "use_amp": False,
        "s1_chunk_size": s1_chunk_size,
        "s2_chunk_size": s2_chunk_size,
        "n_action_steps": s2_chunk_size,
        "max_state_dim": 32,
        "max_action_dim": 32,
        "resize_imgs_with_padding": [image_size, image_size],
        "empty_cameras": 0,
        "adapt_to_pi_aloha": False,
        "use_delta_joint_actions_aloha": False,
        "tokenizer_max_length": 48,
        "proj_width": EXPERT["hidden"],
        "num_steps": 10,
        "use_cache": True,
        "attention_implementation": "eager",
        "freeze_vision_encoder": True,
        "train_expert_only": False,
        "train_state_proj": True,
        "optimizer_lr": 5e-05,
        "optimizer_betas": [0.9, 0.95],
        "optimizer_eps": 1e-08,
        "optimizer_weight_decay": 1e-10,
        "scheduler_warmup_steps": 1000,
        "scheduler_decay_steps": 30000,
        "scheduler_decay_lr": 2.5e-06,
        "freeze_s2": True,
        "s1_his_state_size": s1_his_state_size,
        "cache_s2_actions": False,
        "theta2": theta2,
        "theta1": theta1,
        "noise_slides_eps": 0.0,
        "noise_slides_alp": 0.0,
        "s1_proj_width": S1_GEMMA["hidden"],
        "freeze_s1_vision_encoder": False,
        "s1_num_steps": 10,
        "num_pos": 3,
        "discount": 0.98,
        "actor_lr": 1e-05,
        "critic_lr": 1e-05,
        "temp_lr": 2e-05,
        "qf_lr": 0.0003,
        "next_obs_offset": vqh_chunk_size,
        "vqh_chunk_size": vqh_chunk_size,
        "paligemma_config": paligemma_config,
        "gemma_expert_config": _gemma_config(
            EXPERT["hidden"], t["layers"], t["heads"], t["kv_heads"], t["head_dim"], EXPERT["mlp"], t["vocab"]
        ),
        "s1_dino_config": dino_config,
        "s1_gemma_expert_config": _gemma_config(
            S1_GEMMA["hidden"],
            S1_GEMMA["layers"],
            S1_GEMMA["heads"],
            S1_GEMMA["kv_heads"],
            S1_GEMMA["head_dim"],
            S1_GEMMA["mlp"],
            t["vocab"],
        ),
    }


# ---- tensor layout (name, shape, how to draw it) --------------------------------------------------


def _linear(name: str, n_in: int, n_out: int, bias: bool = True) -> list:
    out = [(f"{name}.weight", (n_out, n_in), "weight")]
    return out + ([(f"{name}.bias", (n_out,), "bias")] if bias else [])


def _layer_norm(name: str, dim: int) -> list:
    return [(f"{name}.weight", (dim,), "ln_weight"), (f"{name}.bias", (dim,), "bias")]


def _gemma_layers(prefix: str, layers: int, hidden: int, heads: int, kv_heads: int, head_dim: int, mlp: int):
    # transformers' GemmaDecoderLayer: no biases; RMSNorm weights act as (1 + w).
    out = []
    for i in range(layers):
        p = f"{prefix}.layers.{i}"
        out += _linear(f"{p}.self_attn.q_proj", hidden, heads * head_dim, bias=False)
        out += _linear(f"{p}.self_attn.k_proj", hidden, kv_heads * head_dim, bias=False)
        out += _linear(f"{p}.self_attn.v_proj", hidden, kv_heads * head_dim, bias=False)
        out += _linear(f"{p}.self_attn.o_proj", heads * head_dim, hidden, bias=False)
        out += _linear(f"{p}.mlp.gate_proj", hidden, mlp, bias=False)
        out += _linear(f"{p}.mlp.up_proj", hidden, mlp, bias=False)
        out += _linear(f"{p}.mlp.down_proj", mlp, hidden, bias=False)
        out += [(f"{p}.input_layernorm.weight", (hidden,), "rms_weight")]
        out += [(f"{p}.post_attention_layernorm.weight", (hidden,), "rms_weight")]
    return out


def _siglip(prefix: str, image_size: int) -> list:
    # SiglipVisionModel (transformers 4.51), without the pooling head (vision_use_head false).
    h, p = SIGLIP["hidden"], SIGLIP["patch"]
    out = [
        (f"{prefix}.embeddings.patch_embedding.weight", (h, 3, p, p), "weight"),
        (f"{prefix}.embeddings.patch_embedding.bias", (h,), "bias"),
        (f"{prefix}.embeddings.position_embedding.weight", ((image_size // p) ** 2, h), "position"),
    ]
    for i in range(SIGLIP["layers"]):
        q = f"{prefix}.encoder.layers.{i}"
        for name in ("k_proj", "v_proj", "q_proj", "out_proj"):
            out += _linear(f"{q}.self_attn.{name}", h, h)
        out += _layer_norm(f"{q}.layer_norm1", h)
        out += _linear(f"{q}.mlp.fc1", h, SIGLIP["mlp"])
        out += _linear(f"{q}.mlp.fc2", SIGLIP["mlp"], h)
        out += _layer_norm(f"{q}.layer_norm2", h)
    return out + _layer_norm(f"{prefix}.post_layernorm", h)


def _dinov2(prefix: str) -> list:
    # Dinov2Model under transformers 4.51 (attention.attention.{query,key,value}, attention.output.dense;
    # transformers 5 renamed these).
    h, p = DINO["hidden"], DINO["patch"]
    positions = (DINO["image_size"] // p) ** 2 + 1
    out = [
        (f"{prefix}.embeddings.cls_token", (1, 1, h), "token"),
        (f"{prefix}.embeddings.mask_token", (1, h), "token"),
        (f"{prefix}.embeddings.position_embeddings", (1, positions, h), "token"),
        (f"{prefix}.embeddings.patch_embeddings.projection.weight", (h, 3, p, p), "weight"),
        (f"{prefix}.embeddings.patch_embeddings.projection.bias", (h,), "bias"),
    ]
    for i in range(DINO["layers"]):
        q = f"{prefix}.encoder.layer.{i}"
        out += _layer_norm(f"{q}.norm1", h)
        for name in ("query", "key", "value"):
            out += _linear(f"{q}.attention.attention.{name}", h, h)
        out += _linear(f"{q}.attention.output.dense", h, h)
        out += [(f"{q}.layer_scale1.lambda1", (h,), "ln_weight")]
        out += _layer_norm(f"{q}.norm2", h)
        out += _linear(f"{q}.mlp.fc1", h, h * DINO["mlp_ratio"])
        out += _linear(f"{q}.mlp.fc2", h * DINO["mlp_ratio"], h)
        out += [(f"{q}.layer_scale2.lambda1", (h,), "ln_weight")]
    return out + _layer_norm(f"{prefix}.layernorm", h)


def _flow_projections(prefix: str, width: int) -> list:
    # System2 / FastVisuoMatching: state and action projections and the action-time MLP (float32).
    return (
        _linear(f"{prefix}.state_proj", 32, width)
        + _linear(f"{prefix}.action_in_proj", 32, width)
        + _linear(f"{prefix}.action_out_proj", width, 32)
        + _linear(f"{prefix}.action_time_mlp_in", 2 * width, width)
        + _linear(f"{prefix}.action_time_mlp_out", width, width)
    )


def _mlp(prefix: str, n_in: int, hidden: tuple[int, ...]) -> list:
    # Their value_query.MLP: Linear, SiLU, Linear, SiLU (activate_final): Linears at even indices.
    out = []
    for i, n_out in enumerate(hidden):
        out += _linear(f"{prefix}.layers.{2 * i}", n_in, n_out)
        n_in = n_out
    return out


def _calql(prefix: str, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> list:
    out = []
    for critics in ("critics", "target_critics"):
        for n in range(CRITIC_ENSEMBLE):
            out += _mlp(f"{prefix}.{critics}.networks.{n}", obs_dim + act_dim, hidden)
        out += _linear(f"{prefix}.{critics}.output_layer", hidden[-1], 1)
    out += _mlp(f"{prefix}.policy.network", obs_dim, hidden)
    out += _linear(f"{prefix}.policy.mean_layer", hidden[-1], act_dim)
    out += _linear(f"{prefix}.policy.std_layer", hidden[-1], act_dim)
    return out + [(f"{prefix}.temperature.multiplier", (), "temperature")]


def _layout(cfg: dict, critic_hidden: tuple[int, ...]) -> list:
    """Every tensor of their policy's state_dict except the aliases, in module order."""
    t, g, q = VLM_TEXT, S1_GEMMA, VQH_GEMMA
    image_size = cfg["resize_imgs_with_padding"][0]
    action_dim = cfg["output_features"]["action"]["shape"][0]
    state_dim = cfg["input_features"]["observation.state"]["shape"][0]
    lm = VLM + "language_model."
    out = _siglip(VLM + "vision_tower.vision_model", image_size)
    out += _linear(VLM + "multi_modal_projector.linear", SIGLIP["hidden"], t["hidden"])
    out += [(lm + "model.embed_tokens.weight", (t["vocab"], t["hidden"]), "embedding")]
    out += _gemma_layers(
        lm + "model", t["layers"], t["hidden"], t["heads"], t["kv_heads"], t["head_dim"], t["mlp"]
    )
    out += [(lm + "model.norm.weight", (t["hidden"],), "rms_weight")]
    out += [(lm + "lm_head.weight", (t["vocab"], t["hidden"]), "tied")]
    ex = S2 + "gemma_expert.model"
    out += _gemma_layers(
        ex, t["layers"], EXPERT["hidden"], t["heads"], t["kv_heads"], t["head_dim"], EXPERT["mlp"]
    )
    out += [(f"{ex}.norm.weight", (EXPERT["hidden"],), "rms_weight")]
    out += _flow_projections("s2_model", EXPERT["hidden"])

    fv = S1 + "fast_visuo_expert."
    out += _dinov2(fv + "vision_tower")
    s1g = fv + "gemma_expert.model"
    out += _gemma_layers(s1g, g["layers"], g["hidden"], g["heads"], g["kv_heads"], g["head_dim"], g["mlp"])
    out += [(f"{s1g}.norm.weight", (g["hidden"],), "rms_weight")]
    out += _linear(fv + "multi_modal_projector", DINO["hidden"], g["hidden"])
    out += _flow_projections("s1_model", g["hidden"])

    vq = VQH + "vqh_backbone.gemma_expert."
    out += [(vq + "model.embed_tokens.weight", (q["vocab"], q["hidden"]), "embedding")]
    out += _gemma_layers(
        vq + "model", q["layers"], q["hidden"], q["heads"], q["kv_heads"], q["head_dim"], q["mlp"]
    )
    out += [(vq + "model.norm.weight", (q["hidden"],), "rms_weight")]
    out += [(vq + "lm_head.weight", (q["vocab"], q["hidden"]), "tied")]
    # CalQlConfig(obs_encoded_dim=paligemma_config.hidden_size, action_dim=vqh_chunk_size * action dim).
    out += _calql(VQH + "calql", t["hidden"], cfg["vqh_chunk_size"] * action_dim, critic_hidden)
    out += [(VQH + "query_embedding", (t["hidden"],), "query")]

    for name, dim in (
        ("normalize_inputs.buffer_observation_state", state_dim),
        ("normalize_targets.buffer_action", action_dim),
        ("unnormalize_outputs.buffer_action", action_dim),
    ):
        out += [(f"{name}.mean", (dim,), "mean"), (f"{name}.std", (dim,), "std")]
    return out


def authors_dtype(name: str) -> torch.dtype:
    """The dtype their `to_bfloat16_like_physical_intelligence` methods leave a parameter in.

    PaliGemmaWithExpertModel casts the whole PaliGemma, and (like FastVisuoExpertModel and
    VQHBackbone) every parameter whose name holds one of the selectors below; the expert's and the
    trunks' final norms, the projections, the critics and the normalisation buffers stay float32.
    The value head's query token is created as bfloat16.
    """
    selectors = ("language_model.model.layers", "gemma_expert.model.layers", "vision_tower", "multi_modal")
    if name.startswith(VLM) or any(s in name for s in selectors) or name == VQH + "query_embedding":
        return torch.bfloat16
    return torch.float32


def _draw(kind: str, shape: tuple, gen: torch.Generator) -> torch.Tensor:
    # Scales keep every activation O(1): fan-in scaled weights, norms near their (1 + w) / 1 init.
    def normal(std: float, mean: float = 0.0) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * std + mean

    if kind == "weight":
        return normal(1.0 / math.sqrt(math.prod(shape[1:])))
    if kind == "bias":
        return normal(0.02)
    if kind == "rms_weight":
        return normal(0.1)
    if kind == "ln_weight":
        return normal(0.1, 1.0)
    if kind == "embedding":  # Gemma multiplies by sqrt(width)
        return normal(1.0 / math.sqrt(shape[1]))
    if kind in ("position", "token"):
        return normal(0.5)
    if kind == "query":
        return normal(1.0)
    if kind == "temperature":  # softplus-parameterised, init 1.0
        return torch.tensor(math.log(math.e - 1.0))
    if kind == "mean":
        return normal(0.5)
    if kind == "std":
        return torch.rand(shape, generator=gen) + 0.5
    raise ValueError(kind)


def authors_state_dict(cfg: dict, *, seed: int = 0, critic_hidden: tuple[int, ...] = CRITIC_HIDDEN) -> dict:
    """Their policy's full state_dict, aliases included as the very same tensors (shared storage)."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for name, shape, kind in _layout(cfg, critic_hidden):
        if kind == "tied":  # GemmaForCausalLM ties lm_head to embed_tokens (tie_word_embeddings)
            sd[name] = sd[name.replace("lm_head.weight", "model.embed_tokens.weight")]
            continue
        sd[name] = _draw(kind, shape, gen).to(authors_dtype(name))
    # LeRobot's unnormaliser holds its own copy of the dataset statistics the normaliser holds.
    for stat in ("mean", "std"):
        sd[f"unnormalize_outputs.buffer_action.{stat}"] = sd[
            f"normalize_targets.buffer_action.{stat}"
        ].clone()
    # ValueQueryHead keeps System 2's PaliGemmaWithExpertModel as its own submodule.
    for name in [n for n in sd if n.startswith(S2)]:
        sd[VQH + "paligemma_with_expert." + name[len(S2) :]] = sd[name]
    return sd


def drop_shared(sd: dict) -> tuple[dict, dict]:
    """What safetensors' save_model writes: one name per storage (the first in sorted order), and
    metadata mapping each dropped name to the kept one."""
    groups: dict[int, list[str]] = {}
    for name, tensor in sd.items():
        groups.setdefault(tensor.untyped_storage().data_ptr(), []).append(name)
    kept, metadata = {}, {}
    for names in groups.values():
        keep, *drop = sorted(names)
        kept[keep] = sd[keep].contiguous()
        metadata.update({name: keep for name in drop})
    return kept, metadata


def write_tokenizer(directory: Path) -> None:
    """Our sentencepiece tokenizer in the file set transformers 4.51 saves for PaliGemma's.

    transformers 5 writes a tokenizer_config.json that transformers 4.51 cannot read (a list of
    extra special tokens, no tokenizer.model), so the config files are written here in 4.51's form
    around transformers 5's tokenizer.json; both versions load the folder to the same ids.
    """
    from transformers import GemmaTokenizer

    tok = GemmaTokenizer.from_pretrained(str(TOKENIZER_DIR))
    tok.backend_tokenizer.save(str(directory / "tokenizer.json"))
    shutil.copyfile(TOKENIZER_DIR / "tokenizer.model", directory / "tokenizer.model")
    added = json.loads((directory / "tokenizer.json").read_text())["added_tokens"]
    token = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {
            str(t["id"]): {"content": t["content"], **token, "special": t["special"]} for t in added
        },
        "bos_token": "<bos>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "<eos>",
        "extra_special_tokens": {},
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": "<pad>",
        "sp_model_kwargs": {},
        "spaces_between_special_tokens": False,
        "tokenizer_class": "GemmaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {
        k: {"content": f"<{k[:-6]}>", **token} for k in ("bos_token", "eos_token", "pad_token", "unk_token")
    }
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def write_authors_checkpoint(
    directory: str | Path, *, seed: int = 0, critic_hidden: tuple[int, ...] = CRITIC_HIDDEN, **config
) -> Path:
    """Write config.json, model.safetensors and the tokenizer files of a tiny authors' checkpoint
    (`config`: the keyword arguments of `authors_config`)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = authors_config(**config)
    (directory / "config.json").write_text(json.dumps(cfg, indent=4) + "\n")
    tensors, metadata = drop_shared(authors_state_dict(cfg, seed=seed, critic_hidden=tuple(critic_hidden)))
    save_file(tensors, str(directory / "model.safetensors"), metadata=metadata)
    write_tokenizer(directory)
    return directory
