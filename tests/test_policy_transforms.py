"""hume/policy/transforms.py: camera images into the networks' input range."""

import warnings

import numpy as np
import torch

from hume.policy.transforms import image_to_tensor


def test_a_read_only_image_converts_like_a_writable_one_and_quietly():
    image = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    received = np.frombuffer(image.tobytes(), dtype=np.uint8).reshape(image.shape)  # as a message's buffer
    assert not received.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when a tensor would share a read-only buffer
        got = image_to_tensor(received, 32)
    expected = image_to_tensor(torch.from_numpy(image.copy()), 32)
    assert got.shape == (2, 3, 32, 32)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert got.min() >= -1.0 and got.max() <= 1.0
