"""Augmentation on the device: each image shifted by its own in-range offset, seeded, and
used by ``fit``."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import nn, optim
from xpnet.augment import RandomShift
from xpnet.train import fit

from .helpers import as_np, on


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` (C, H, W) moved down by dy and right by dx, zeros coming in (a loop)."""
    out = np.zeros_like(image)
    _, h, w = image.shape
    for i in range(h):
        for j in range(w):
            if 0 <= i - dy < h and 0 <= j - dx < w:
                out[:, i, j] = image[:, i - dy, j - dx]
    return out


def test_each_image_is_its_input_shifted_within_range(xp, rng):
    x = rng.standard_normal((40, 2, 6, 7)).astype(np.float32)
    got = as_np(RandomShift(2, seed=3)(on(xp, x, "float32")))
    seen = set()
    for image, result in zip(x, got):
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if np.array_equal(result, shifted(image, dy, dx))
        ]
        assert len(matches) == 1, matches
        seen.add(matches[0])
    assert len(seen) > 10  # the offsets vary from image to image


def test_seeded_and_reproducible_and_stays_on_the_backend(xp, backend, rng):
    x = on(xp, rng.standard_normal((8, 1, 5, 5)), "float32")
    a, b = RandomShift(1, seed=7)(x), RandomShift(1, seed=7)(x)
    assert xpnet.backend_of(a) == backend and a.dtype == x.dtype
    np.testing.assert_array_equal(as_np(a), as_np(b))
    assert not np.array_equal(as_np(RandomShift(1, seed=8)(x)), as_np(a))
    np.testing.assert_array_equal(as_np(RandomShift(0)(x)), as_np(x))


def test_fit_augments_training_batches_only(xp, backend, rng):
    calls = []
    shift = RandomShift(1, seed=0)

    def augment(images):
        calls.append(images.shape[0])
        return shift(images)

    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3, rng=0, backend=backend))
    x = rng.standard_normal((20, 1, 4, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=20)
    fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), (x, y),
        epochs=2, batch_size=8, val=(x, y), augment=augment, progress=False, log=None)  # fmt: skip
    assert calls == [8, 8, 4] * 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_shift must be an int >= 0; got -1"):
        RandomShift(-1)
    with pytest.raises(ValueError, match=r"images must be 4-D \(N, C, H, W\)"):
        RandomShift(1)(np.ones((2, 3), np.float32))
