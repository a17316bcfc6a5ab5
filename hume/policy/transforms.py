"""Observation -> model tensors: images resized and scaled to [-1, 1], instructions tokenised,
vectors zero-padded to the model's width. Shared by the policy and the training data pipeline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from hume.constants import IMAGE_KEY, IMAGE_PREFIX
from hume.tokenizer import warn_if_unknown


def image_to_tensor(image: np.ndarray | Tensor, size: int, pad: bool = False) -> Tensor:
    """uint8 [..., H, W, 3] RGB -> float32 [..., 3, size, size] in [-1, 1] (SigLIP's input range).

    pad=False: a square bilinear resize with antialiasing. pad=True: pi0's and the authors'
    resize-with-padding: the aspect ratio kept (bilinear, no antialiasing), black padding on top and
    left.
    """
    # Converting to float on the numpy side copies, so a read-only image (a received message's
    # buffer) never becomes a tensor that shares it.
    x = image if isinstance(image, Tensor) else torch.as_tensor(np.asarray(image, dtype=np.float32))
    if x.dim() < 3 or x.shape[-1] != 3:
        raise ValueError(f"an image must be [..., H, W, 3] RGB, got shape {tuple(x.shape)}")
    lead = x.shape[:-3]
    x = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0
    if pad:
        x = resize_with_pad(x, size)
    elif x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x * 2.0 - 1.0).clamp(-1.0, 1.0).reshape(*lead, 3, size, size)


def resize_with_pad(x: Tensor, size: int) -> Tensor:
    """[B, 3, H, W] in [0, 1] -> [B, 3, size, size]: scaled by the larger side (sizes rounded down),
    bilinear without antialiasing, then padded with 0 on top and left (pi0's convention)."""
    h, w = x.shape[-2:]
    ratio = max(w / size, h / size)
    rh, rw = int(h / ratio), int(w / ratio)
    x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False)
    return F.pad(x, (size - rw, 0, size - rh, 0), value=0.0)


def prompt(text: str, lowercase: bool = True, suffix: str = "") -> str:
    """The instruction as the model reads it: ours stripped and lower-cased; PaliGemma-based
    checkpoints keep it as given and end it with "\n" (suffix), once."""
    if lowercase:
        text = text.strip().lower()
    return text if not suffix or text.endswith(suffix) else text + suffix


def tokenize(
    tokenizer, texts: Sequence[str], max_len: int, lowercase: bool = True, suffix: str = ""
) -> tuple[Tensor, Tensor]:
    """Instructions -> ids [B, max_len] (long) and validity [B, max_len] (bool), padded on the right."""
    for text in dict.fromkeys(texts):
        warn_if_unknown(tokenizer, prompt(text, lowercase))
    enc = tokenizer(
        [prompt(t, lowercase, suffix) for t in texts],
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


def observation_images(obs: dict, cameras: Sequence[str], size: int, pad: bool = False) -> dict[str, Tensor]:
    """{camera: [1, 3, size, size]} from an observation dict; a missing camera is an error naming it."""
    out = {}
    for cam in cameras:
        key = IMAGE_KEY.format(cam)
        if key not in obs:
            have = sorted(k for k in obs if k.startswith(IMAGE_PREFIX))
            raise KeyError(
                f"observation lacks {key!r} (the policy's cameras are {list(cameras)}; got {have})"
            )
        out[cam] = image_to_tensor(obs[key], size, pad)[None]
    return out
