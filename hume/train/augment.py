"""Image augmentation in plain torch: random crop, colour jitter, small rotation.

Images are float tensors [B, 3, H, W] in [0, 1]. Every function takes a torch.Generator so a
training step's augmentation is reproducible (exact resume).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


def random_crop_rotate(
    images: Tensor, g: torch.Generator, *, scale: tuple[float, float] = (0.9, 0.95), max_degrees: float = 5.0
) -> Tensor:
    """Crop a random square of side sqrt(scale) and rotate by up to ±max_degrees, resized back.

    One affine warp does both, so the image is resampled once.
    """
    b, device = images.shape[0], images.device
    side = _uniform(b, *scale, g, device).sqrt()
    # The crop centre moves at most as far as the crop still fits inside the image.
    tx = _uniform(b, -1.0, 1.0, g, device) * (1.0 - side)
    ty = _uniform(b, -1.0, 1.0, g, device) * (1.0 - side)
    angle = _uniform(b, -max_degrees, max_degrees, g, device) * math.pi / 180.0
    cos, sin = angle.cos() * side, angle.sin() * side
    theta = torch.stack([torch.stack([cos, -sin, tx], -1), torch.stack([sin, cos, ty], -1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(
    images: Tensor,
    g: torch.Generator,
    *,
    brightness: float = 0.2,
    contrast: float = 0.2,
    saturation: float = 0.2,
) -> Tensor:
    """Random brightness, contrast and saturation factors per image, clamped to [0, 1]."""
    b, device = images.shape[0], images.device
    shape = (b, 1, 1, 1)
    x = images * _uniform(b, 1 - brightness, 1 + brightness, g, device).view(shape)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * _uniform(b, 1 - contrast, 1 + contrast, g, device).view(shape) + mean
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
    x = (x - gray) * _uniform(b, 1 - saturation, 1 + saturation, g, device).view(shape) + gray
    return x.clamp(0.0, 1.0)


def augment_camera(images: Tensor, g: torch.Generator, *, geometric: bool) -> Tensor:
    """Hume's recipe: crop + rotation + colour for third-person cameras, colour only for the wrist."""
    if geometric:
        images = random_crop_rotate(images, g)
    return color_jitter(images, g)
