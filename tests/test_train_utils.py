"""Training utilities: learning-rate schedule and torch-only augmentation."""

import pytest
import torch

from hume.train import augment
from hume.train.schedule import warmup_cosine


def test_warmup_cosine_shape():
    kw = dict(peak_lr=1e-3, warmup_steps=10, total_steps=110, end_lr=1e-5)
    assert warmup_cosine(0, **kw) == pytest.approx(1e-4)
    assert warmup_cosine(9, **kw) == pytest.approx(1e-3)
    assert warmup_cosine(10, **kw) == pytest.approx(1e-3)
    assert warmup_cosine(60, **kw) == pytest.approx((1e-3 + 1e-5) / 2)
    assert warmup_cosine(110, **kw) == pytest.approx(1e-5)
    assert warmup_cosine(500, **kw) == pytest.approx(1e-5)
    lrs = [warmup_cosine(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_augment_is_reproducible_and_bounded():
    x = torch.rand(4, 3, 32, 32)
    a = augment.augment_camera(x, torch.Generator().manual_seed(1), geometric=True)
    b = augment.augment_camera(x, torch.Generator().manual_seed(1), geometric=True)
    c = augment.augment_camera(x, torch.Generator().manual_seed(2), geometric=True)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_crop_of_constant_image_is_constant():
    # A crop/rotation never samples outside the image, so a flat image stays flat.
    x = torch.full((2, 3, 16, 16), 0.3)
    y = augment.random_crop_rotate(x, torch.Generator().manual_seed(0))
    assert torch.allclose(y, x, atol=1e-6)


def test_crop_zooms_in():
    # A horizontal ramp: a 0.9-0.95 area crop narrows the range of values seen.
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).contiguous()
    y = augment.random_crop_rotate(ramp, torch.Generator().manual_seed(0), max_degrees=0.0)
    width = y[0, 0, 32].max() - y[0, 0, 32].min()
    assert 0.85 < width.item() < 0.99


def test_wrist_camera_gets_colour_only():
    # Colour jitter is per-image affine in value: pixel ordering along a row is preserved.
    ramp = torch.linspace(0.2, 0.8, 16).view(1, 1, 1, 16).expand(3, 3, 16, 16).contiguous()
    y = augment.augment_camera(ramp, torch.Generator().manual_seed(3), geometric=False)
    assert torch.all(y[:, 0, 8, 1:] >= y[:, 0, 8, :-1] - 1e-6)
