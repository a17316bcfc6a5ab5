"""Observation -> model tensors: images resized and scaled to [-1, 1], instructions tokenised,
vectors zero-padded to the model's width. Shared by the policy and the training data pipeline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

IMAGE_KEY = "observation.images.{}"
STATE_KEY = "observation.state"
TASK_KEY = "task"


def image_to_tensor(image: np.ndarray | Tensor, size: int) -> Tensor:
    """uint8 [..., H, W, 3] RGB -> float32 [..., 3, size, size] in [-1, 1] (SigLIP's input range)."""
    x = torch.as_tensor(np.asarray(image) if not isinstance(image, Tensor) else image)
    if x.dim() < 3 or x.shape[-1] != 3:
        raise ValueError(f"an image must be [..., H, W, 3] RGB, got shape {tuple(x.shape)}")
    lead = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(-1.0, 1.0).reshape(*lead, 3, size, size)


def tokenize(tokenizer, texts: Sequence[str], max_len: int) -> tuple[Tensor, Tensor]:
    """Instructions -> ids [B, max_len] (long) and validity [B, max_len] (bool), padded on the right."""
    enc = tokenizer(
        [t.strip().lower() for t in texts],
        padding="max_length",
        max_length=max_len,
        truncation=True,
        padding_side="right",
        return_tensors="pt",
    )
    return enc["input_ids"].long(), enc["attention_mask"].bool()


def pad_to(x: Tensor, width: int) -> Tensor:
    """Zero-pad the last dim up to `width` (pi0 pads state and actions to one width for all robots)."""
    if x.shape[-1] > width:
        raise ValueError(f"cannot pad a vector of {x.shape[-1]} dims to {width}")
    return F.pad(x, (0, width - x.shape[-1]))


def observation_images(obs: dict, cameras: Sequence[str], size: int) -> dict[str, Tensor]:
    """{camera: [1, 3, size, size]} from an observation dict; a missing camera is an error naming it."""
    out = {}
    for cam in cameras:
        key = IMAGE_KEY.format(cam)
        if key not in obs:
            have = sorted(k for k in obs if k.startswith("observation.images."))
            raise KeyError(
                f"observation lacks {key!r} (the policy's cameras are {list(cameras)}; got {have})"
            )
        out[cam] = image_to_tensor(obs[key], size)[None]
    return out
