"""Tiny random π0 checkpoint folders laid out exactly as openpi and LeRobot save them, and a float32
π0 written from their math on transformers' own modules, to check a conversion against.

Layouts (see hume/convert/pi0.py):
- "openpi": openpi's JAX->PyTorch converter output (transformers 4.53.2 module names, whole model in
  bfloat16, `config.json`, `assets/physical-intelligence/libero/norm_stats.json`, no tokenizer).
- "lerobot_old": LeRobot's first pi0 (transformers < 4.52 names, PaliGemma and the expert layers in
  bfloat16, normalisation buffers in the weights, no tokenizer).
- "lerobot_new": LeRobot's pi0 under transformers 5 (no `vision_model.` level, the token embedding and
  an untied head both saved, bfloat16 except the vision path and the norms, statistics and the
  tokenizer saved by the processor pipelines; here the actions use quantile normalisation).
Weights are written with `safetensors.torch.save_model` on a module tree with their names, as both
projects do, so tied tensors are stored once under the alphabetically first name.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file, save_model
from torch import nn
from transformers import GemmaConfig, GemmaModel, GemmaTokenizer, SiglipVisionConfig, SiglipVisionModel

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER_DIR = ROOT / "hume" / "tokenizer"
LAYOUTS = ("openpi", "lerobot_old", "lerobot_new")

# Tiny sizes (full π0 in the comments). SigLIP's head count is π0's fixed 16 (so400m).
SIGLIP = dict(width=32, layers=2, mlp=64, patch=14, image=56, heads=16)  # 1152, 27, 4304, 14, 224
VLM = dict(width=64, layers=2, heads=2, head_dim=16, mlp=128, vocab=1024)  # Gemma 2B: 2048, 18, 8, 256
EXPERT = dict(width=32, mlp=64)  # Gemma 300M: 1024, 4096 (layers/heads/head_dim as the VLM's)
MAX_DIM = 32  # π0 pads state and actions to 32
CHUNK = 10  # π0: 50
STATE_DIM, ACTION_DIM = 8, 7  # LIBERO
TOKEN_LEN = 48
NEG = -2.3819763e38  # openpi's additive mask value

PI0 = "paligemma_with_expert."


@dataclass
class Pi0Checkpoint:
    """What a writer produced: the folder, the tensors as stored (canonical names, see `_canonical`),
    the raw statistics and how the source normalises with them."""

    path: Path
    layout: str
    tensors: dict[str, torch.Tensor]
    stats: dict[str, dict[str, np.ndarray]]  # "state"/"action" -> stat -> values
    modes: dict[str, str]  # "state"/"action" -> MEAN_STD | QUANTILES
    eps: float
    cameras: tuple[str, ...]  # the source's image names, in π0's order (masked ones included)
    masked: tuple[bool, ...]  # which of them π0 sees masked


# ----- random tensors under canonical names -------------------------------------------------------
def _canonical(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """π0's tensors under short names: vision.*, projector.*, vlm.*, expert.*, expert_head, proj.*."""
    s, v, e = SIGLIP, VLM, EXPERT
    out: dict[str, torch.Tensor] = {}

    def normal(shape, std):
        return torch.randn(shape, generator=gen) * std

    def linear(name, n_in, n_out, bias=True):
        out[f"{name}.weight"] = normal((n_out, n_in), n_in**-0.5)
        if bias:
            out[f"{name}.bias"] = normal((n_out,), 0.02)

    def layer_norm(name, dim):
        out[f"{name}.weight"] = 1.0 + normal((dim,), 0.1)
        out[f"{name}.bias"] = normal((dim,), 0.1)

    w, grid = s["width"], s["image"] // s["patch"]
    out["vision.embeddings.patch_embedding.weight"] = normal((w, 3, s["patch"], s["patch"]), 0.05)
    out["vision.embeddings.patch_embedding.bias"] = normal((w,), 0.02)
    out["vision.embeddings.position_embedding.weight"] = normal((grid * grid, w), 0.1)
    for i in range(s["layers"]):
        p = f"vision.encoder.layers.{i}."
        layer_norm(p + "layer_norm1", w)
        for name in ("k_proj", "v_proj", "q_proj", "out_proj"):
            linear(p + "self_attn." + name, w, w)
        layer_norm(p + "layer_norm2", w)
        linear(p + "mlp.fc1", w, s["mlp"])
        linear(p + "mlp.fc2", s["mlp"], w)
    layer_norm("vision.post_layernorm", w)
    linear("projector", w, v["width"])

    def gemma(prefix, width, mlp):
        for i in range(v["layers"]):
            p = f"{prefix}.layers.{i}."
            linear(p + "self_attn.q_proj", width, v["heads"] * v["head_dim"], bias=False)
            linear(p + "self_attn.k_proj", width, v["head_dim"], bias=False)
            linear(p + "self_attn.v_proj", width, v["head_dim"], bias=False)
            linear(p + "self_attn.o_proj", v["heads"] * v["head_dim"], width, bias=False)
            linear(p + "mlp.gate_proj", width, mlp, bias=False)
            linear(p + "mlp.up_proj", width, mlp, bias=False)
            linear(p + "mlp.down_proj", mlp, width, bias=False)
            out[p + "input_layernorm.weight"] = normal((width,), 0.1)
            out[p + "post_attention_layernorm.weight"] = normal((width,), 0.1)
        out[f"{prefix}.norm.weight"] = normal((width,), 0.1)

    out["vlm.embed_tokens.weight"] = normal((v["vocab"], v["width"]), v["width"] ** -0.5)
    gemma("vlm", v["width"], v["mlp"])
    gemma("expert", e["width"], e["mlp"])
    out["expert_head"] = normal((v["vocab"], e["width"]), 0.02)  # never trained in π0
    linear("proj.state_proj", MAX_DIM, e["width"])
    linear("proj.action_in_proj", MAX_DIM, e["width"])
    linear("proj.action_out_proj", e["width"], MAX_DIM)
    linear("proj.action_time_mlp_in", 2 * e["width"], e["width"])
    linear("proj.action_time_mlp_out", e["width"], e["width"])
    return out


def _names(layout: str) -> dict[str, str]:
    """Canonical prefix -> the layout's full prefix."""
    root = "" if layout == "openpi" else "model."
    base = root + PI0
    if layout == "lerobot_old":
        vision, language = "paligemma.vision_tower.vision_model.", "paligemma.language_model.model."
        projector, head = "paligemma.multi_modal_projector.linear.", "paligemma.language_model.lm_head.weight"
    else:
        vision = "paligemma.model.vision_tower." + ("vision_model." if layout == "openpi" else "")
        language, projector = (
            "paligemma.model.language_model.",
            "paligemma.model.multi_modal_projector.linear.",
        )
        head = "paligemma.lm_head.weight"
    return {
        "vision.": base + vision,
        "projector.": base + projector,
        "vlm.": base + language,
        "expert.": base + "gemma_expert.model.",
        "expert_head": base + "gemma_expert.lm_head.weight",
        "proj.": root,
        "vlm_head": base + head,
    }


def _full_name(canonical: str, names: dict[str, str]) -> str:
    for short, full in names.items():
        if short.endswith(".") and canonical.startswith(short):
            return full + canonical[len(short) :]
        if canonical == short:
            return full
    raise KeyError(canonical)


def _dtype(layout: str, full: str) -> torch.dtype:
    """The dtype each project leaves a parameter in."""
    if layout == "openpi":  # the JAX->PyTorch converter casts the whole model (precision bfloat16)
        return torch.bfloat16
    if layout == "lerobot_old":  # to_bfloat16_like_physical_intelligence
        keep_bf16 = (
            "language_model.model.layers",
            "gemma_expert.model.layers",
            "vision_tower",
            "multi_modal",
        )
        return torch.bfloat16 if ".paligemma." in full or any(k in full for k in keep_bf16) else torch.float32
    # LeRobot's to_bfloat16_for_selected_params (dtype "bfloat16"): the expert/VLM in bf16 except these.
    if not full.startswith("model." + PI0):
        return torch.float32
    keep_f32 = (
        "vision_tower",
        "multi_modal_projector",
        "input_layernorm",
        "post_attention_layernorm",
        "model.norm",
    )
    return torch.float32 if any(k in full for k in keep_f32) else torch.bfloat16


def _module(params: dict[str, torch.Tensor], aliases: dict[str, str]) -> nn.Module:
    """A module tree holding `params` under their dotted names; each alias shares its target's tensor."""
    root = nn.Module()

    def place(name: str, param: nn.Parameter) -> None:
        *path, leaf = name.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        module.register_parameter(leaf, param)

    made = {}
    for name, tensor in params.items():
        made[name] = nn.Parameter(tensor, requires_grad=False)
        place(name, made[name])
    for alias, target in aliases.items():
        place(alias, made[target])
    return root


# ----- statistics and configs ---------------------------------------------------------------------
def _stats(gen: torch.Generator) -> dict[str, dict[str, np.ndarray]]:
    def vec(n, lo, hi):
        return (lo + (hi - lo) * torch.rand(n, generator=gen)).numpy().astype(np.float32)

    out = {}
    for name, dim in (("state", STATE_DIM), ("action", ACTION_DIM)):
        mean, std = vec(dim, -0.5, 0.5), vec(dim, 0.2, 1.5)
        out[name] = {
            "mean": mean,
            "std": std,
            "min": mean - 3 * std,
            "max": mean + 3 * std,
            "q01": mean - 2.3 * std,
            "q99": mean + 2.1 * std,
        }
    return out


def _features(cameras: tuple[str, ...]) -> tuple[dict, dict]:
    inputs = {f"observation.images.{c}": {"type": "VISUAL", "shape": [3, 256, 256]} for c in cameras}
    inputs["observation.state"] = {"type": "STATE", "shape": [STATE_DIM]}
    return inputs, {"action": {"type": "ACTION", "shape": [ACTION_DIM]}}


def _lerobot_old_config(cameras: tuple[str, ...]) -> dict:
    inputs, outputs = _features(cameras)
    return {
        "type": "pi0",
        "n_obs_steps": 1,
        "normalization_mapping": {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"},
        "input_features": inputs,
        "output_features": outputs,
        "device": "cpu",
        "use_amp": False,
        "chunk_size": CHUNK,
        "n_action_steps": CHUNK,
        "max_state_dim": MAX_DIM,
        "max_action_dim": MAX_DIM,
        "resize_imgs_with_padding": [SIGLIP["image"], SIGLIP["image"]],
        "empty_cameras": 0,
        "adapt_to_pi_aloha": False,
        "use_delta_joint_actions_aloha": False,
        "tokenizer_max_length": TOKEN_LEN,
        "proj_width": EXPERT["width"],
        "num_steps": 10,
        "use_cache": True,
        "attention_implementation": "eager",
        "freeze_vision_encoder": True,
        "train_expert_only": False,
        "train_state_proj": True,
        "optimizer_lr": 2.5e-05,
        "optimizer_betas": [0.9, 0.95],
        "optimizer_eps": 1e-08,
        "optimizer_weight_decay": 1e-10,
        "scheduler_warmup_steps": 1000,
        "scheduler_decay_steps": 30000,
        "scheduler_decay_lr": 2.5e-06,
    }


def _lerobot_new_config(cameras: tuple[str, ...]) -> dict:
    inputs, outputs = _features(cameras)
    # validate_features adds the blank camera to the saved features
    inputs["observation.images.empty_camera_0"] = {"type": "VISUAL", "shape": [3, 56, 56]}
    return {
        "type": "pi0",
        "n_obs_steps": 1,
        "input_features": inputs,
        "output_features": outputs,
        "device": "cpu",
        "use_amp": False,
        "paligemma_variant": "gemma_2b",
        "action_expert_variant": "gemma_300m",
        "dtype": "bfloat16",
        "chunk_size": CHUNK,
        "n_action_steps": 5,
        "max_state_dim": MAX_DIM,
        "max_action_dim": MAX_DIM,
        "num_inference_steps": 10,
        "time_sampling_beta_alpha": 1.5,
        "time_sampling_beta_beta": 1.0,
        "time_sampling_scale": 0.999,
        "time_sampling_offset": 0.001,
        "min_period": 0.004,
        "max_period": 4.0,
        "use_relative_actions": False,
        "relative_exclude_joints": ["gripper"],
        "action_feature_names": None,
        "rtc_config": None,
        "image_resolution": [SIGLIP["image"], SIGLIP["image"]],
        "empty_cameras": 1,
        "normalization_mapping": {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "QUANTILES"},
        "gradient_checkpointing": False,
        "compile_model": False,
        "compile_mode": "max-autotune",
        "freeze_vision_encoder": False,
        "train_expert_only": False,
        "tokenizer_max_length": TOKEN_LEN,
    }


def _write_processors(path: Path, config: dict, stats: dict) -> None:
    """LeRobot's processor pipelines: the JSON of each and the (un)normalizer's statistics."""
    flat = {}
    for name, feature in (("state", "observation.state"), ("action", "action")):
        for stat, values in stats[name].items():
            flat[f"{feature}.{stat}"] = torch.from_numpy(values)
        flat[f"{feature}.count"] = torch.tensor([1000])
    features = {**config["input_features"], **config["output_features"]}
    normalizer = {"eps": 1e-08, "features": features, "norm_map": config["normalization_mapping"]}
    pre = "policy_preprocessor_step_6_normalizer_processor.safetensors"
    post = "policy_postprocessor_step_0_unnormalizer_processor.safetensors"
    save_file(flat, str(path / pre))
    save_file(flat, str(path / post))
    steps = [
        {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
        {"registry_name": "to_batch_processor", "config": {}},
        {"registry_name": "pi0_new_line_processor", "config": {}},
        {
            "registry_name": "tokenizer_processor",
            "config": {
                "max_length": TOKEN_LEN,
                "task_key": "task",
                "padding_side": "right",
                "padding": "max_length",
                "truncation": True,
                "tokenizer_name": "tokenizer",
            },
            "artifacts": {"tokenizer_name": "tokenizer"},
        },
        {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}},
        {"registry_name": "relative_actions_processor", "config": {"enabled": False}},
        {"registry_name": "normalizer_processor", "config": normalizer, "state_file": pre},
    ]
    (path / "policy_preprocessor.json").write_text(
        json.dumps({"name": "policy_preprocessor", "steps": steps})
    )
    post_steps = [
        {"registry_name": "unnormalizer_processor", "config": normalizer, "state_file": post},
        {"registry_name": "absolute_actions_processor", "config": {"enabled": False}},
        {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}},
    ]
    (path / "policy_postprocessor.json").write_text(
        json.dumps({"name": "policy_postprocessor", "steps": post_steps})
    )


def write_pi0(path: Path, layout: str, seed: int = 0) -> Pi0Checkpoint:
    """A tiny π0 checkpoint folder of `layout`; returns what a reference needs."""
    if layout not in LAYOUTS:
        raise ValueError(layout)
    path.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    canonical = _canonical(gen)
    stats = _stats(gen)
    names = _names(layout)
    params, aliases = {}, {}
    for name, tensor in canonical.items():
        full = _full_name(name, names)
        params[full] = tensor.to(_dtype(layout, full))
    embed = _full_name("vlm.embed_tokens.weight", names)
    if layout == "lerobot_new":
        # transformers 5 + LeRobot's PiGemma wrappers leave the head untied: both are saved, and differ
        params[names["vlm_head"]] = (
            torch.randn(canonical["vlm.embed_tokens.weight"].shape, generator=gen) * 0.02
        ).to(torch.bfloat16)
    else:
        aliases[names["vlm_head"]] = embed  # tied: save_model keeps the alphabetically first name, the head

    if layout == "lerobot_old":
        for module, feature, name in (
            ("normalize_inputs", "observation_state", "state"),
            ("normalize_targets", "action", "action"),
            ("unnormalize_outputs", "action", "action"),
        ):
            for stat in ("mean", "std"):
                params[f"{module}.buffer_{feature}.{stat}"] = torch.from_numpy(stats[name][stat].copy())
    save_model(_module(params, aliases), str(path / "model.safetensors"))

    if layout == "openpi":
        cameras, masked = ("base_0_rgb", "left_wrist_0_rgb", "right_wrist_0_rgb"), (False, False, True)
        config = {
            "action_dim": MAX_DIM,
            "action_horizon": CHUNK,
            "paligemma_variant": "gemma_2b",
            "action_expert_variant": "gemma_300m",
            "precision": "bfloat16",
        }
        assets = path / "assets" / "physical-intelligence" / "libero"
        assets.mkdir(parents=True)
        norm = {
            key: {s: stats[name][s].tolist() for s in ("mean", "std", "q01", "q99")}
            for key, name in (("state", "state"), ("actions", "action"))
        }
        (assets / "norm_stats.json").write_text(json.dumps({"norm_stats": norm}, indent=2))
        modes, eps = {"state": "MEAN_STD", "action": "MEAN_STD"}, 1e-6
    elif layout == "lerobot_old":
        cameras, masked = ("image", "wrist_image"), (False, False)
        config = _lerobot_old_config(cameras)
        modes, eps = {"state": "MEAN_STD", "action": "MEAN_STD"}, 1e-8
    else:
        cameras, masked = ("image", "image2", "empty_camera_0"), (False, False, True)
        config = _lerobot_new_config(cameras[:2])
        _write_processors(path, config, stats)
        GemmaTokenizer.from_pretrained(str(TOKENIZER_DIR)).save_pretrained(str(path / "tokenizer"))
        modes, eps = {"state": "MEAN_STD", "action": "QUANTILES"}, 1e-8
    (path / "config.json").write_text(json.dumps(config, indent=2))

    stored = {name: params[_full_name(name, names)] for name in canonical}
    return Pi0Checkpoint(path, layout, stored, stats, modes, eps, cameras, masked)


# ----- π0's math, on transformers' modules, in float32 --------------------------------------------
def _gemma(width: int, mlp: int) -> GemmaModel:
    config = GemmaConfig(
        vocab_size=VLM["vocab"],
        hidden_size=width,
        intermediate_size=mlp,
        num_hidden_layers=VLM["layers"],
        num_attention_heads=VLM["heads"],
        num_key_value_heads=1,
        head_dim=VLM["head_dim"],
        hidden_activation="gelu_pytorch_tanh",
    )
    config._attn_implementation = "eager"  # openpi's denoising path uses eager attention
    return GemmaModel(config).eval()


def _sub(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v.float() for k, v in tensors.items() if k.startswith(prefix)}


def _att_2d(pad: torch.Tensor, ar: torch.Tensor) -> torch.Tensor:
    """big_vision's mask: a token sees valid tokens whose cumulative ar count is <= its own."""
    cum = torch.cumsum(ar, 1)
    return (cum[:, None, :] <= cum[:, :, None]) & pad[:, None, :] & pad[:, :, None]


class Pi0Reference:
    """openpi's `sample_actions` (prefix through the VLM with a KV cache, then 10 Euler steps of the
    expert over a copy of that cache), on transformers' SiglipVisionModel and GemmaModel."""

    def __init__(self, ckpt: Pi0Checkpoint):
        t = ckpt.tensors
        s = SIGLIP
        self.ckpt = ckpt
        self.vision = SiglipVisionModel(
            SiglipVisionConfig(
                hidden_size=s["width"],
                intermediate_size=s["mlp"],
                num_hidden_layers=s["layers"],
                num_attention_heads=s["heads"],
                image_size=s["image"],
                patch_size=s["patch"],
                vision_use_head=False,
            )
        ).eval()
        self.vision.load_state_dict(_sub(t, "vision."))
        self.vlm = _gemma(VLM["width"], VLM["mlp"])
        self.vlm.load_state_dict(_sub(t, "vlm."))
        self.expert = _gemma(EXPERT["width"], EXPERT["mlp"])
        missing = self.expert.load_state_dict(_sub(t, "expert."), strict=False).missing_keys
        assert missing == ["embed_tokens.weight"], missing
        self.p = {k: v.float() for k, v in t.items()}

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.p[f"{name}.weight"], self.p[f"{name}.bias"])

    def normalize_state(self, state: np.ndarray) -> np.ndarray:
        st = self.ckpt.stats["state"]
        return (state - st["mean"]) / (st["std"] + self.ckpt.eps)

    def unnormalize_actions(self, actions: np.ndarray) -> np.ndarray:
        st, mode = self.ckpt.stats["action"], self.ckpt.modes["action"]
        if mode == "QUANTILES":
            return (actions + 1.0) / 2.0 * (st["q99"] - st["q01"]) + st["q01"]
        return actions * (st["std"] + self.ckpt.eps) + st["mean"]

    @torch.no_grad()
    def sample(
        self, images: list[np.ndarray], tokens: list[int], state: np.ndarray, noise: np.ndarray
    ) -> np.ndarray:
        """images: uint8 [H, W, 3] per slot of ckpt.cameras (a masked slot's image is ignored);
        tokens: the prompt's ids; state: normalised, unpadded; noise [CHUNK, 32] -> actions [CHUNK, 32]."""
        embs, pads = [], []
        for image, masked in zip(images, self.ckpt.masked, strict=True):
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0 * 2.0 - 1.0
            patches = self._linear("projector", self.vision(pixel_values=x).last_hidden_state)
            embs.append(patches)
            pads.append(torch.full(patches.shape[:2], not masked))
        ids = torch.zeros(1, TOKEN_LEN, dtype=torch.long)
        ids[0, : len(tokens)] = torch.tensor(tokens)
        embs.append(F.embedding(ids, self.p["vlm.embed_tokens.weight"]) * math.sqrt(VLM["width"]))
        pads.append(torch.arange(TOKEN_LEN)[None] < len(tokens))
        prefix, prefix_pad = torch.cat(embs, 1), torch.cat(pads, 1)
        mask = _att_2d(prefix_pad, torch.zeros_like(prefix_pad, dtype=torch.long))
        out = self.vlm(
            inputs_embeds=prefix,
            attention_mask=torch.where(mask, 0.0, NEG)[:, None],
            position_ids=torch.cumsum(prefix_pad.long(), 1) - 1,
            use_cache=True,
        )
        cache = out.cache

        state_t = F.pad(torch.from_numpy(state.astype(np.float32))[None], (0, MAX_DIM - len(state)))
        x = torch.from_numpy(noise.astype(np.float32))[None]
        dt = torch.tensor(-0.1)
        time = torch.tensor(1.0)
        while time >= -dt / 2:
            v = self._velocity(cache, prefix_pad, state_t, x, time[None])
            x = x + dt * v
            time = time + dt
        return x[0].numpy()

    def _velocity(self, cache, prefix_pad, state, x, time):
        width = EXPERT["width"]
        frac = torch.linspace(0.0, 1.0, width // 2, dtype=torch.float64)
        period = 4e-3 * (4.0 / 4e-3) ** frac
        angle = (1.0 / period * 2 * math.pi)[None] * time.double()[:, None]
        time_emb = torch.cat([angle.sin(), angle.cos()], 1).float()
        action = self._linear("proj.action_in_proj", x)
        mixed = torch.cat([action, time_emb[:, None].expand_as(action)], 2)
        action = self._linear(
            "proj.action_time_mlp_out", F.silu(self._linear("proj.action_time_mlp_in", mixed))
        )
        suffix = torch.cat([self._linear("proj.state_proj", state)[:, None], action], 1)
        n = suffix.shape[1]
        pad = torch.ones(1, n, dtype=torch.bool)
        ar = torch.tensor([[1, 1] + [0] * (CHUNK - 1)])
        full = torch.cat([prefix_pad[:, None, :].expand(1, n, -1), _att_2d(pad, ar)], 2)
        positions = prefix_pad.sum(1, keepdim=True) + torch.cumsum(pad.long(), 1) - 1
        out = self.expert(
            inputs_embeds=suffix,
            attention_mask=torch.where(full, 0.0, NEG)[:, None],
            position_ids=positions,
            cache=copy.deepcopy(cache),
            use_cache=False,
        )
        return self._linear("proj.action_out_proj", out.last_hidden_state[:, -CHUNK:])
