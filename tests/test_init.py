"""Initialisation schemes: reproducible, right bounds and spread, on the requested backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from xpnet import init


def test_fans_follow_pytorch():
    assert init.fan_in_and_fan_out((8, 3, 5, 5)) == (75, 200)
    assert init.fan_in_and_fan_out((10, 20)) == (20, 10)
    with pytest.raises(ValueError, match="at least 2 dims"):
        init.fan_in_and_fan_out((3,))


@pytest.mark.parametrize(
    ("scheme", "kwargs", "expected_std"),
    [
        (init.kaiming_normal, {"nonlinearity": "relu"}, math.sqrt(2 / 400)),
        (init.kaiming_uniform, {"nonlinearity": "relu"}, math.sqrt(2 / 400)),
        (init.xavier_normal, {}, math.sqrt(2 / (400 + 5000))),
        (init.xavier_uniform, {}, math.sqrt(2 / (400 + 5000))),
        (init.lecun_normal, {}, math.sqrt(1 / 400)),
        (init.lecun_uniform, {}, math.sqrt(1 / 400)),
    ],
)
def test_schemes_have_the_right_spread(scheme, kwargs, expected_std):
    w = scheme((200, 16, 5, 5), rng=0, backend="numpy", **kwargs)
    assert w.dtype == np.float32
    assert abs(float(w.std()) / expected_std - 1) < 0.02
    np.testing.assert_array_equal(w, scheme((200, 16, 5, 5), rng=0, backend="numpy", **kwargs))


def test_matches_torch_bounds():
    torch = pytest.importorskip("torch")
    t = torch.empty(64, 32)
    torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5))
    ours = init.kaiming_uniform((64, 32), a=math.sqrt(5), rng=1, backend="numpy")
    bound = 1 / math.sqrt(32)
    assert float(t.abs().max()) <= bound and float(np.abs(ours).max()) <= bound
    assert math.isclose(
        init.calculate_gain("leaky_relu", math.sqrt(5)),
        torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5)),
    )
    assert math.isclose(init.calculate_gain("tanh"), torch.nn.init.calculate_gain("tanh"))


def test_init_lands_on_backend(xp, backend):
    w = init.he_normal((3, 4), rng=0, backend=backend)
    assert xpnet.backend_of(w) == backend
    np.testing.assert_array_equal(xpnet.to_numpy(w), init.he_normal((3, 4), rng=0, backend="numpy"))


def test_bad_mode_and_nonlinearity():
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'; got 'fan_avg'"):
        init.kaiming_normal((3, 4), mode="fan_avg")
    with pytest.raises(ValueError, match="nonlinearity must be"):
        init.calculate_gain("gelu")
