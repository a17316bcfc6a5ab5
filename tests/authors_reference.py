"""The authors' Hume inference restated in float32, to check conversions of their checkpoints.

Reads a checkpoint folder as their training code saves it (config.json, model.safetensors with their
key names, their tokenizer files) and recomputes what their code does, operation by operation and in
the same order, with every bfloat16 cast of theirs made float32. Independent of the `hume` package:
torch, safetensors and a transformers tokenizer only. Names in brackets are the functions of their
`hume.models` (modeling_hume, paligemma_with_expert, value_query, fast_visuo_expert) and of
transformers 4.51 that each part mirrors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from safetensors.torch import load_file

F32 = torch.float32
VLM = "s2_model.paligemma_with_expert.paligemma."
EXPERT = "s2_model.paligemma_with_expert.gemma_expert.model"
DINO = "s1_model.fast_visuo_expert.vision_tower."
S1_TRUNK = "s1_model.fast_visuo_expert.gemma_expert.model"
VQH_TRUNK = "value_query_head.vqh_backbone.gemma_expert.model"
CRITICS = "value_query_head.calql.target_critics."
BIG_NEG = -2.3819763e38  # their eager attention's mask value
DINO_MEAN, DINO_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ---- pieces shared by all three models ------------------------------------------------------------


def resize_with_pad(img: torch.Tensor, width: int, height: int, pad_value: float = -1) -> torch.Tensor:
    """[resize_with_pad] aspect kept, bilinear without antialiasing, padded on the left and top."""
    cur_height, cur_width = img.shape[2:]
    ratio = max(cur_width / width, cur_height / height)
    resized_height, resized_width = int(cur_height / ratio), int(cur_width / ratio)
    img = F.interpolate(img, size=(resized_height, resized_width), mode="bilinear", align_corners=False)
    pad_height, pad_width = max(0, int(height - resized_height)), max(0, int(width - resized_width))
    return F.pad(img, (pad_width, 0, pad_height, 0), value=pad_value)


def sinusoid(time: torch.Tensor, dim: int) -> torch.Tensor:
    """[create_sinusoidal_pos_embedding] computed in float64 (their CPU/CUDA path), then float32."""
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float64)
    period = 4e-3 * (4.0 / 4e-3) ** fraction
    sin_input = (1.0 / period * 2 * math.pi)[None, :] * time[:, None]
    return torch.cat([torch.sin(sin_input), torch.cos(sin_input)], dim=1).to(F32)


def candidate_temperature(i: int, n: int, bounds: tuple[float, float]) -> float:
    """[HumePolicy.select_action] candidate i of n: (i / n) * (hi - lo) + lo, in this order."""
    return (i / n) * (bounds[1] - bounds[0]) + bounds[0]


def att_2d(pad: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
    """[make_att_2d_masks] a token sees valid tokens whose cumulative block index is <= its own."""
    cumsum = torch.cumsum(att, dim=1)
    return (cumsum[:, None, :] <= cumsum[:, :, None]) & (pad[:, None, :] * pad[:, :, None])


def rope(x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """[apply_rope] x [B, L, H, D], halves rotated (not interleaved), wavelength 10000."""
    d_half = x.shape[-1] // 2
    timescale = 10_000 ** ((2.0 / x.shape[-1]) * torch.arange(d_half, dtype=F32))
    radians = (positions[..., None].to(F32) / timescale[None, None, :])[..., None, :]
    sin, cos = torch.sin(radians), torch.cos(radians)
    x1, x2 = x.split(d_half, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def attention(mask, q, k, v, num_heads: int, num_kv_heads: int, head_dim: int) -> torch.Tensor:
    """[eager_attention_forward] grouped KV heads repeated, masked with -2.38e38, softmax, [B, L, H*D]."""
    batch, length = k.shape[:2]
    groups = num_heads // num_kv_heads
    k = (
        k[:, :, :, None, :]
        .expand(batch, length, num_kv_heads, groups, head_dim)
        .reshape(batch, length, -1, head_dim)
    )
    v = (
        v[:, :, :, None, :]
        .expand(batch, length, num_kv_heads, groups, head_dim)
        .reshape(batch, length, -1, head_dim)
    )
    weights = torch.matmul(q.transpose(1, 2), k.transpose(1, 2).transpose(2, 3)) * head_dim**-0.5
    probs = F.softmax(torch.where(mask[:, None, :, :], weights, BIG_NEG), dim=-1)
    out = torch.matmul(probs, v.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
    return out.reshape(batch, -1, num_heads * head_dim)


class AuthorsReference:
    """Their HumePolicy's inference on a checkpoint folder, in float32 (batch 1 in select_action)."""

    def __init__(self, directory: str | Path):
        from transformers import AutoTokenizer

        directory = Path(directory)
        self.cfg = json.loads((directory / "config.json").read_text())
        self.w = {k: v.to(F32) for k, v in load_file(str(directory / "model.safetensors")).items()}
        # safetensors' save_model kept one name of the tied pair: Gemma's input embedding is lm_head.
        self.w.setdefault(
            VLM + "language_model.model.embed_tokens.weight", self.w[VLM + "language_model.lm_head.weight"]
        )
        self.tokenizer = AutoTokenizer.from_pretrained(str(directory))
        c = self.cfg
        text = c["paligemma_config"]["text_config"]
        self.vlm_width = text["hidden_size"]
        self.heads = (text["num_attention_heads"], text["num_key_value_heads"], text.get("head_dim", 256))
        self.s2_layers = text["num_hidden_layers"]
        s1 = c["s1_gemma_expert_config"]
        self.s1_heads = (s1["num_attention_heads"], s1["num_key_value_heads"], s1["head_dim"])
        self.s1_width = s1["hidden_size"]
        # VQHBackboneConfig() is not saved; its heads follow from the shapes given one KV head (theirs).
        q_rows = self.w[f"{VQH_TRUNK}.layers.0.self_attn.q_proj.weight"].shape[0]
        vqh_head_dim = self.w[f"{VQH_TRUNK}.layers.0.self_attn.k_proj.weight"].shape[0]
        self.vqh_heads = (q_rows // vqh_head_dim, 1, vqh_head_dim)
        self.history: list[np.ndarray] = []

    # -- weights -----------------------------------------------------------------------------------

    def linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.w[name + ".weight"], self.w.get(name + ".bias"))

    def layer_norm(self, name: str, x: torch.Tensor, eps: float) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.w[name + ".weight"], self.w[name + ".bias"], eps)

    def rms_norm(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """[GemmaRMSNorm] x / rms(x) * (1 + w), eps 1e-6 (rms_norm_eps of all their Gemma configs)."""
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
        return x * (1.0 + self.w[name + ".weight"])

    def gemma_mlp(self, p: str, x: torch.Tensor) -> torch.Tensor:
        """[GemmaMLP] down(gelu_tanh(gate(x)) * up(x))."""
        gate = F.gelu(self.linear(p + ".mlp.gate_proj", x), approximate="tanh")
        return self.linear(p + ".mlp.down_proj", gate * self.linear(p + ".mlp.up_proj", x))

    def qkv(self, p: str, x: torch.Tensor, head_dim: int):
        shape = (*x.shape[:-1], -1, head_dim)
        return [self.linear(f"{p}.self_attn.{n}_proj", x).view(shape) for n in "qkv"]

    # -- encoders ----------------------------------------------------------------------------------

    def siglip(self, img: torch.Tensor) -> torch.Tensor:
        """[SiglipVisionModel] conv patches + learnt positions, pre-LN blocks, post LayerNorm."""
        vc = self.cfg["paligemma_config"]["vision_config"]
        p, heads = VLM + "vision_tower.vision_model.", vc["num_attention_heads"]
        eps = vc.get("layer_norm_eps", 1e-6)
        x = F.conv2d(
            img,
            self.w[p + "embeddings.patch_embedding.weight"],
            self.w[p + "embeddings.patch_embedding.bias"],
            stride=vc["patch_size"],
        )
        x = x.flatten(2).transpose(1, 2) + self.w[p + "embeddings.position_embedding.weight"][None]
        for i in range(vc["num_hidden_layers"]):
            q = f"{p}encoder.layers.{i}."
            h = self.layer_norm(q + "layer_norm1", x, eps)
            x = x + self.linear(
                q + "self_attn.out_proj", self.mha(q + "self_attn.", h, heads, ("q_proj", "k_proj", "v_proj"))
            )
            h = self.layer_norm(q + "layer_norm2", x, eps)
            x = x + self.linear(q + "mlp.fc2", F.gelu(self.linear(q + "mlp.fc1", h), approximate="tanh"))
        return self.layer_norm(p + "post_layernorm", x, eps)

    def mha(self, p: str, x: torch.Tensor, heads: int, names: tuple[str, str, str]) -> torch.Tensor:
        """Plain bidirectional multi-head attention of SigLIP / DINOv2 (softmax over scaled scores)."""
        b, n, d = x.shape
        q, k, v = [self.linear(p + name, x).view(b, n, heads, -1).transpose(1, 2) for name in names]
        probs = F.softmax(torch.matmul(q, k.transpose(-1, -2)) * (d // heads) ** -0.5, dim=-1)
        return torch.matmul(probs, v).transpose(1, 2).reshape(b, n, d)

    def dinov2(self, img: torch.Tensor) -> torch.Tensor:
        """[Dinov2Model, transformers 4.51] CLS + patches, position embeddings bicubically resized to the
        input's grid when it differs from the configured one, LayerScale blocks, final LayerNorm."""
        dc = self.cfg["s1_dino_config"]
        patch, eps = dc["patch_size"], dc["layer_norm_eps"]
        x = F.conv2d(
            img,
            self.w[DINO + "embeddings.patch_embeddings.projection.weight"],
            self.w[DINO + "embeddings.patch_embeddings.projection.bias"],
            stride=patch,
        )
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.w[DINO + "embeddings.cls_token"].expand(x.shape[0], -1, -1), x], dim=1)
        pos = self.w[DINO + "embeddings.position_embeddings"]
        height, width = img.shape[2:]
        num_positions, dim = pos.shape[1] - 1, pos.shape[2]
        if not (x.shape[1] - 1 == num_positions and height == width):
            side = int(num_positions**0.5)
            grid = pos[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
            grid = F.interpolate(
                grid, size=(height // patch, width // patch), mode="bicubic", align_corners=False
            )
            pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1)
        x = x + pos
        names = ("attention.query", "attention.key", "attention.value")
        for i in range(dc["num_hidden_layers"]):
            q = f"{DINO}encoder.layer.{i}."
            h = self.mha(
                q + "attention.", self.layer_norm(q + "norm1", x, eps), dc["num_attention_heads"], names
            )
            x = self.linear(q + "attention.output.dense", h) * self.w[q + "layer_scale1.lambda1"] + x
            h = self.linear(
                q + "mlp.fc2", F.gelu(self.linear(q + "mlp.fc1", self.layer_norm(q + "norm2", x, eps)))
            )
            x = h * self.w[q + "layer_scale2.lambda1"] + x
        return self.layer_norm(DINO + "layernorm", x, eps)

    def embed_images(self, images: list, img_masks: list):
        """[System2.embed_prefix, images] PaliGemma.get_image_features (/ sqrt(width)), then * sqrt(width)."""
        embs, pads = [], []
        for img, mask in zip(images, img_masks, strict=True):
            emb = self.linear(VLM + "multi_modal_projector.linear", self.siglip(img)) / (self.vlm_width**0.5)
            emb = emb * torch.tensor(emb.shape[-1] ** 0.5, dtype=F32)
            embs.append(emb)
            pads.append(mask[:, None].expand(*emb.shape[:2]))
        return embs, pads

    def embed_language(self, tokens: torch.Tensor) -> torch.Tensor:
        emb = self.w[VLM + "language_model.model.embed_tokens.weight"][tokens]
        return emb * math.sqrt(emb.shape[-1])

    # -- transformer stacks ------------------------------------------------------------------------

    def joint_layers(self, embeds: list, mask, positions, cache: dict, fill: bool) -> list:
        """[PaliGemmaWithExpertModel.forward] VLM and expert layer by layer with one joint attention;
        keys/values of the prefix cached after RoPE; standard residuals (from the raw input)."""
        models = [VLM + "language_model.model", EXPERT]
        heads, kv_heads, head_dim = self.heads
        for layer in range(self.s2_layers):
            qs, ks, vs = [], [], []
            for model, h in zip(models, embeds, strict=True):
                if h is not None:
                    q, k, v = self.qkv(
                        f"{model}.layers.{layer}",
                        self.rms_norm(f"{model}.layers.{layer}.input_layernorm", h),
                        head_dim,
                    )
                    qs.append(q)
                    ks.append(k)
                    vs.append(v)
            q, k, v = torch.cat(qs, dim=1), torch.cat(ks, dim=1), torch.cat(vs, dim=1)
            q, k = rope(q, positions), rope(k, positions)
            if fill:
                cache[layer] = (k, v)
            elif cache:
                k, v = torch.cat([cache[layer][0], k], dim=1), torch.cat([cache[layer][1], v], dim=1)
            out = attention(mask, q, k, v, heads, kv_heads, head_dim)
            start, new = 0, []
            for model, h in zip(models, embeds, strict=True):
                if h is None:
                    new.append(None)
                    continue
                p, end = f"{model}.layers.{layer}", start + h.shape[1]
                x = self.linear(p + ".self_attn.o_proj", out[:, start:end]) + h
                new.append(self.gemma_mlp(p, self.rms_norm(p + ".post_attention_layernorm", x)) + x)
                start = end
            embeds = new
        return [
            None if h is None else self.rms_norm(f"{m}.norm", h) for m, h in zip(models, embeds, strict=True)
        ]

    def trunk(self, model: str, heads: tuple, x, mask, positions) -> torch.Tensor:
        """[VQHBackbone.forward / FastVisuoExpertModel.forward] a Gemma stack whose first residual is
        the *normalised* hidden state (input_layernorm output), as their trained weights expect."""
        num_heads, kv_heads, head_dim = heads
        layer = 0
        while f"{model}.layers.{layer}.input_layernorm.weight" in self.w:
            p = f"{model}.layers.{layer}"
            h = self.rms_norm(p + ".input_layernorm", x)
            q, k, v = self.qkv(p, h, head_dim)
            out = attention(mask, rope(q, positions), rope(k, positions), v, num_heads, kv_heads, head_dim)
            x = self.linear(p + ".self_attn.o_proj", out) + h
            x = self.gemma_mlp(p, self.rms_norm(p + ".post_attention_layernorm", x)) + x
            layer += 1
        return self.rms_norm(f"{model}.norm", x)

    def action_time(self, prefix: str, x_t: torch.Tensor, time: torch.Tensor, width: int) -> torch.Tensor:
        """[embed_suffix, action part] MLP(cat(linear(x_t), sinusoid(t))) with SiLU."""
        action_emb = self.linear(prefix + ".action_in_proj", x_t)
        time_emb = sinusoid(time, width)[:, None, :].expand_as(action_emb)
        h = F.silu(self.linear(prefix + ".action_time_mlp_in", torch.cat([action_emb, time_emb], dim=2)))
        return self.linear(prefix + ".action_time_mlp_out", h)

    # -- observation -------------------------------------------------------------------------------

    def preprocess(self, obs: dict) -> dict:
        """[HumePolicy.infer + select_action's normalize_inputs / prepare_*] for one observation;
        the state history is kept across calls (the first call repeats the state); reset() clears it."""
        c = self.cfg
        state = np.asarray(obs["observation.state"])
        if not self.history:
            self.history = [state] * c["s1_his_state_size"]
        else:
            self.history = (self.history + [state])[-c["s1_his_state_size"] :]
        images, img_masks = [], []
        visual = [k for k, v in c["input_features"].items() if v["type"] == "VISUAL"]
        for key in [k for k in visual if k in obs]:
            img = torch.tensor(np.asarray(obs[key])[None] / 255).permute(0, 3, 1, 2).float()
            img = resize_with_pad(img, *c["resize_imgs_with_padding"], pad_value=0)
            images.append(img * 2.0 - 1.0)
            img_masks.append(torch.ones(1, dtype=torch.bool))
        for i in range(len(visual) - len(images)):
            if i >= c["empty_cameras"]:
                break
            images.append(torch.ones_like(images[-1]) * -1)
            img_masks.append(torch.zeros(1, dtype=torch.bool))
        states = torch.tensor(np.asarray(self.history)[None]).float()  # [1, K, state_dim]
        stats = "normalize_inputs.buffer_observation_state."
        states = (states - self.w[stats + "mean"]) / (self.w[stats + "std"] + 1e-8)  # LeRobot's MEAN_STD
        padded = torch.zeros(*states.shape[:-1], c["max_state_dim"], dtype=F32)
        padded[..., : states.shape[-1]] = states
        task = obs["task"] if obs["task"].endswith("\n") else obs["task"] + "\n"  # PaliGemma prompt form
        tok = self.tokenizer(
            [task],
            padding="max_length",
            padding_side="right",
            max_length=c["tokenizer_max_length"],
            truncation=True,
            return_tensors="pt",
        )
        return {
            "images": images,
            "img_masks": img_masks,
            "lang_tokens": tok["input_ids"],
            "lang_masks": tok["attention_mask"].bool(),
            "state": padded,
        }

    def reset(self) -> None:
        self.history = []

    # -- System 2 ----------------------------------------------------------------------------------

    def s2_times(self, time_temp: float = 1.0) -> list[torch.Tensor]:
        """[System2.sample_actions] the float32 loop `while t >= -dt/2 + (1 - theta2): ...; t += dt`."""
        dt = torch.tensor(-1.0 / self.cfg["num_steps"], dtype=F32)
        time, times = torch.tensor(time_temp, dtype=F32), []
        while time >= -dt / 2 + (1 - self.cfg["theta2"]):
            times.append(time.clone())
            time += dt
        return times

    def s2_sample(
        self, images, img_masks, lang_tokens, lang_masks, state, noise, time_temp=1.0, noise_temp=1.0
    ):
        """[System2.sample_actions + denoise_step] prefix KV cache, then Euler steps
        x += dt * v * noise_temp from t = time_temp; state [B, 32], noise [B, H, 32]."""
        batch, horizon = state.shape[0], noise.shape[1]
        img_embs, img_pads = self.embed_images(images, img_masks)
        prefix = torch.cat([*img_embs, self.embed_language(lang_tokens)], dim=1)
        prefix_pad = torch.cat([*img_pads, lang_masks], dim=1)
        prefix_att = torch.zeros_like(prefix_pad)
        cache: dict = {}
        self.joint_layers(
            [prefix, None],
            att_2d(prefix_pad, prefix_att),
            torch.cumsum(prefix_pad, dim=1) - 1,
            cache,
            fill=True,
        )

        width = self.cfg["proj_width"]
        dt = torch.tensor(-1.0 / self.cfg["num_steps"], dtype=F32)
        x_t = noise.clone()
        for time in self.s2_times(time_temp):
            # [System2.embed_suffix] state token (own block), then the action tokens (one block).
            suffix = torch.cat(
                [
                    self.linear("s2_model.state_proj", state)[:, None, :],
                    self.action_time("s2_model", x_t, time.expand(batch), width),
                ],
                dim=1,
            )
            suffix_pad = torch.ones(batch, 1 + horizon, dtype=torch.bool)
            suffix_att = torch.tensor([1, 1] + [0] * (horizon - 1))[None].expand(batch, -1)
            mask = torch.cat(
                [prefix_pad[:, None, :].expand(batch, 1 + horizon, -1), att_2d(suffix_pad, suffix_att)], dim=2
            )
            positions = prefix_pad.sum(-1)[:, None] + torch.cumsum(suffix_pad, dim=1) - 1
            out = self.joint_layers([None, suffix], mask, positions, cache, fill=False)[1]
            v_t = self.linear("s2_model.action_out_proj", out[:, -horizon:])
            x_t += dt * v_t * noise_temp
        return x_t

    # -- value-query head --------------------------------------------------------------------------

    def vqh_inputs(self, images, img_masks, lang_tokens, lang_masks):
        """[ValueQueryHead.embed_prefix] S2's image + language embeddings with the learnt query token
        inserted right after the last valid token (padding shifted right); all one bidirectional block."""
        img_embs, img_pads = self.embed_images(images, img_masks)
        embs = torch.cat([*img_embs, self.embed_language(lang_tokens)], dim=1)
        pad = torch.cat([*img_pads, lang_masks], dim=1)
        batch, length = pad.shape
        lengths = pad.sum(dim=1).long()
        seq = torch.arange(length).view(1, -1).expand(batch, -1)
        new_seq = seq + (seq >= lengths[:, None]).long()
        rows = torch.arange(batch).view(-1, 1)
        new_embs = torch.zeros(batch, length + 1, embs.shape[-1], dtype=F32)
        new_pad = torch.zeros(batch, length + 1, dtype=torch.bool)
        new_embs[rows, new_seq], new_pad[rows, new_seq] = embs, pad
        query = self.w["value_query_head.query_embedding"]
        new_embs[torch.arange(batch), lengths] = query[None].expand(batch, -1)
        new_pad[torch.arange(batch), lengths] = True
        positions = torch.cumsum(new_pad, dim=1) - 1
        return new_embs, new_pad, positions, new_pad.sum(-1).long() - 1

    def q_values(self, images, img_masks, lang_tokens, lang_masks, candidates: torch.Tensor) -> torch.Tensor:
        """[ValueQueryHead.select_q_actions + CalQL.get_q_values] candidates [B, N, vqh_chunk, action_dim]
        -> [B, N]: the query token's output, target critics (SiLU MLPs, one shared output layer), min."""
        embs, pad, positions, query_index = self.vqh_inputs(images, img_masks, lang_tokens, lang_masks)
        out = self.trunk(VQH_TRUNK, self.vqh_heads, embs, att_2d(pad, torch.zeros_like(pad)), positions)
        feature = out[torch.arange(out.shape[0]), query_index]
        actions = candidates.reshape(*candidates.shape[:2], -1)
        inputs = torch.cat([feature[:, None, :].expand(-1, actions.shape[1], -1), actions], dim=-1)
        values, n = [], 0
        while f"{CRITICS}networks.{n}.layers.0.weight" in self.w:
            h, i = inputs, 0
            while f"{CRITICS}networks.{n}.layers.{i}.weight" in self.w:
                h, i = F.silu(self.linear(f"{CRITICS}networks.{n}.layers.{i}", h)), i + 2
            values.append(h)
            n += 1
        q = self.linear(CRITICS + "output_layer", torch.stack(values, dim=0)).squeeze(-1)
        return q.min(dim=0)[0]

    # -- System 1 ----------------------------------------------------------------------------------

    def s1_times(self) -> list[torch.Tensor]:
        """[FastVisuoMatching.sample_actions] `while t >= -dt/2` from theta1 with dt = -theta1/steps."""
        dt = torch.tensor(-self.cfg["theta1"] / self.cfg["s1_num_steps"], dtype=F32)
        time, times = torch.tensor(self.cfg["theta1"], dtype=F32), []
        while time >= -dt / 2:
            times.append(time.clone())
            time += dt
        return times

    def s1_prefix(self, images, img_masks):
        """[FastVisuoMatching.embed_prefix] images back to [0, 1], ImageNet-normalised, DINOv2,
        projector (/ sqrt(width) in embed_image), * sqrt(width)."""
        embs, pads = [], []
        mean, std = torch.tensor(DINO_MEAN).view(-1, 1, 1), torch.tensor(DINO_STD).view(-1, 1, 1)
        for img, mask in zip(images, img_masks, strict=True):
            emb = self.linear(
                "s1_model.fast_visuo_expert.multi_modal_projector",
                self.dinov2(((img * 0.5 + 0.5) - mean) / std),
            )
            emb = emb / (self.s1_width**0.5) * torch.tensor(emb.shape[-1] ** 0.5, dtype=F32)
            embs.append(emb)
            pads.append(mask[:, None].expand(*emb.shape[:2]))
        return torch.cat(embs, dim=1), torch.cat(pads, dim=1)

    def s1_sample(self, images, img_masks, state_history, noise_slice, stamp):
        """[FastVisuoMatching.sample_actions + denoise_step] from the S2 slice at t = theta1 to 0:
        tokens images | each history state its own block | the raw sinusoidal stamp | actions."""
        batch, steps = noise_slice.shape[:2]
        prefix, prefix_pad = self.s1_prefix(images, img_masks)
        width, history = self.s1_width, state_history.shape[1]
        dt = torch.tensor(-self.cfg["theta1"] / self.cfg["s1_num_steps"], dtype=F32)
        x_t = noise_slice.clone()
        for time in self.s1_times():
            suffix = torch.cat(
                [
                    self.linear("s1_model.state_proj", state_history),
                    sinusoid(stamp, width)[:, None, :],
                    self.action_time("s1_model", x_t, time.expand(batch), width),
                ],
                dim=1,
            )
            pad = torch.cat([prefix_pad, torch.ones(batch, suffix.shape[1], dtype=torch.bool)], dim=1)
            blocks = [0] * prefix.shape[1] + [1] * (history + 2) + [0] * (steps - 1)
            att = torch.tensor(blocks)[None].expand(batch, -1)
            out = self.trunk(
                S1_TRUNK,
                self.s1_heads,
                torch.cat([prefix, suffix], dim=1),
                att_2d(pad, att),
                torch.cumsum(pad, dim=1) - 1,
            )
            x_t += dt * self.linear("s1_model.action_out_proj", out[:, -steps:])
        return x_t

    # -- the policy --------------------------------------------------------------------------------

    def select_action(
        self,
        obs: dict,
        noise: torch.Tensor,
        step: int = 0,
        s2_replan_steps: int | None = None,
        candidates: int = 5,
        time_temp_bounds: tuple[float, float] = (0.9, 1.0),
        noise_temp_bounds: tuple[float, float] = (1.0, 2.0),
        post_process_action: bool = True,
        chunk: torch.Tensor | None = None,
    ) -> dict:
        """[HumePolicy.select_action + infer's bookkeeping] one call that plans a System-1 chunk.

        When step % s2_replan_steps == 0 (or no earlier `chunk` is given) System 2 draws candidate i
        from noise[i] [H, 32] at time_temp lo + (hi - lo) * i / N (noise_temp likewise) and the target
        critics' argmax wins; otherwise the earlier selected `chunk` [H, 32] is reused, as their
        cached outputs are. System 1 refines its slice at stamp = step % s2_replan_steps / H.
        s2_replan_steps defaults to the chunk length (their LIBERO runs: 16 of 16).
        Returns candidates [N, H, 32] and chunk [H, 32] (normalised), q_values [N], index, and
        s1_action [h, action_dim] (unnormalised; gripper a -> 2(1 - a) - 1 when post-processed).
        """
        c = self.cfg
        p = self.preprocess(obs)
        inputs = (p["images"], p["img_masks"], p["lang_tokens"], p["lang_masks"])
        replan = s2_replan_steps or c["s2_chunk_size"]
        stamp = torch.tensor([step % replan / c["s2_chunk_size"]]).float()
        out: dict = {"candidates": None, "q_values": None, "index": None}
        if chunk is None or step % replan == 0:
            chunks = []
            for i in range(candidates):
                time_temp = candidate_temperature(i, candidates, time_temp_bounds)
                noise_temp = candidate_temperature(i, candidates, noise_temp_bounds)
                state = p["state"][:, -1, :]  # System 2 sees the latest state only
                chunks.append(self.s2_sample(*inputs, state, noise[i][None].to(F32), time_temp, noise_temp))
            chunks = torch.stack(chunks, dim=1)  # [1, N, H, 32]
            action_dim = c["output_features"]["action"]["shape"][0]
            q = self.q_values(*inputs, chunks[:, :, : c["vqh_chunk_size"], :action_dim])
            index = torch.argmax(q, dim=1)
            chunk = chunks[0, int(index[0])]
            out.update(candidates=chunks[0], q_values=q[0], index=int(index[0]))
        idcs = (stamp * c["s2_chunk_size"]).long().unsqueeze(1) + torch.arange(c["s1_chunk_size"])
        noise_slice = chunk[None][torch.arange(1).unsqueeze(1), idcs]
        s1 = self.s1_sample(p["images"], p["img_masks"], p["state"], noise_slice, stamp)
        actions = s1[:, :, : c["output_features"]["action"]["shape"][0]]
        stats = "unnormalize_outputs.buffer_action."
        actions = actions * self.w[stats + "std"] + self.w[stats + "mean"]
        if post_process_action:  # LIBERO's gripper convention
            actions[..., -1] = 2 * (1 - actions[..., -1]) - 1
        return {**out, "chunk": chunk, "s1_action": actions[0]}
