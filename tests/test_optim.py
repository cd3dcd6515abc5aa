"""Optimizers and schedules against torch.optim on the same parameters and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from xpnet import optim
from xpnet.nn import Parameter

from .conftest import relative_error
from .helpers import as_np, on

CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.003, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.05}),
]


@pytest.mark.parametrize(
    ("name", "kwargs"), CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)]
)
def test_steps_match_torch(xp, rng, name, kwargs, record_error, request):
    torch = pytest.importorskip("torch")
    shapes = [(4, 3), (4,), (2, 3, 3, 3)]
    values = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    ours = [Parameter(on(xp, v, "float32")) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    our_opt = getattr(optim, name)(ours, **kwargs)
    their_opt = getattr(torch.optim, name)(theirs, **kwargs)
    for _ in range(5):
        grads = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        for p, t, g in zip(ours, theirs, grads):
            p.grad = on(xp, g, "float32")
            t.grad = torch.tensor(g)
        our_opt.step()
        their_opt.step()
    for p, t in zip(ours, theirs):
        assert xpnet.backend_of(p.data) == xpnet.backend_of(on(xp, values[0], "float32"))
        assert p.data.dtype == on(xp, values[0], "float32").dtype
        error = relative_error(p.data, t.detach().numpy())
        record_error(error, request.node.name)
        assert error < 1e-6


def test_zero_grad_and_missing_grads_are_skipped(xp):
    p, q = Parameter(on(xp, np.ones(3))), Parameter(on(xp, np.ones(3)))
    opt = optim.SGD([p, q], lr=0.5)
    p.grad = on(xp, np.ones(3))
    opt.step()
    np.testing.assert_allclose(as_np(p.data), 0.5)
    np.testing.assert_allclose(as_np(q.data), 1.0)
    opt.zero_grad()
    assert p.grad is None and q.grad is None


def test_optimizer_state_round_trip(xp):
    p = Parameter(on(xp, np.ones(3)))
    opt = optim.Adam([p], lr=0.1)
    p.grad = on(xp, np.full(3, 0.5))
    opt.step()
    saved = opt.state_dict()
    assert isinstance(saved["state"]["0.exp_avg"], np.ndarray)
    clone_param = Parameter(on(xp, as_np(p.data).copy()))
    clone = optim.Adam([clone_param], lr=0.1)
    clone.load_state_dict(saved)
    for o, param in ((opt, p), (clone, clone_param)):
        param.grad = on(xp, np.full(3, -0.25))
        o.step()
    np.testing.assert_array_equal(as_np(p.data), as_np(clone_param.data))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "lr must be a finite number >= 0; got -1.0"),
        ({"lr": 0.1, "momentum": -0.5}, "momentum must be a finite number >= 0"),
        ({"lr": 0.1, "nesterov": True}, "nesterov=True needs momentum > 0"),
    ],
)
def test_sgd_rejects_bad_hyperparameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        optim.SGD([Parameter(np.ones(2))], **kwargs)


def test_adam_rejects_bad_betas_and_empty_params():
    with pytest.raises(
        ValueError, match=r"betas must be two numbers in \[0, 1\); got \(0.9, 1.0\)"
    ):
        optim.Adam([Parameter(np.ones(2))], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="params is an empty list"):
        optim.Adam([])
    with pytest.raises(TypeError, match=r"params\[0\] must be an xpnet Parameter; got ndarray"):
        optim.Adam([np.ones(2)])


def test_schedules_match_torch():
    torch = pytest.importorskip("torch")

    def run(make_ours, make_theirs, steps):
        ours = optim.SGD([Parameter(np.ones(1))], lr=0.1)
        theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        s_ours, s_theirs = make_ours(ours), make_theirs(theirs)
        got, expected = [], []
        for _ in range(steps):
            got.append(ours.lr)
            expected.append(theirs.param_groups[0]["lr"])
            theirs.step()
            s_ours.step()
            s_theirs.step()
        np.testing.assert_allclose(got, expected, rtol=1e-12)

    run(lambda o: optim.StepLR(o, 3, 0.5), lambda t: torch.optim.lr_scheduler.StepLR(t, 3, 0.5), 10)
    run(
        lambda o: optim.CosineAnnealingLR(o, 8),
        lambda t: torch.optim.lr_scheduler.CosineAnnealingLR(t, 8),
        8,
    )
    run(
        lambda o: optim.OneCycleLR(o, 0.5, 20),
        lambda t: torch.optim.lr_scheduler.OneCycleLR(
            t, 0.5, total_steps=20, anneal_strategy="cos", cycle_momentum=False
        ),
        20,
    )


def test_onecycle_ends_near_zero_and_peaks_at_max():
    opt = optim.SGD([Parameter(np.ones(1))], lr=1.0)
    sched = optim.OneCycleLR(opt, 0.4, 100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.lr)
        sched.step()
    assert math.isclose(max(lrs), 0.4)
    assert lrs[-1] < 1e-5


def test_make_optimizer_names_the_recipe_and_rejects_others():
    params = [Parameter(np.ones((2, 2), np.float32))]
    assert isinstance(optim.make_optimizer("adam", params, 1e-3), optim.Adam)
    sgd = optim.make_optimizer("sgd", params, 0.1)
    assert (sgd.momentum, sgd.nesterov) == (0.9, True)
    with pytest.raises(ValueError, match="optimizer must be one of adam, sgd; got 'rmsprop'"):
        optim.make_optimizer("rmsprop", params, 0.1)


@pytest.mark.parametrize(
    ("name", "kwargs"), CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)]
)
def test_flat_buffer_update_is_bit_identical_to_one_at_a_time(xp, rng, name, kwargs):
    """The flat path (one buffer, whole-buffer operations) against ``flat = False``."""
    shapes = [(4, 3), (4,), (2, 3, 3, 3)]
    values = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    runs = []
    for flat in (True, False):
        params = [Parameter(on(xp, v, "float32")) for v in values]
        opt = getattr(optim, name)(params, **kwargs)
        opt.flat = flat
        steps = np.random.default_rng(1)
        for _ in range(4):
            for p in params:
                p.grad = on(xp, steps.standard_normal(p.shape).astype(np.float32), "float32")
            opt.step()
        runs.append((params, opt))
    (flat_params, flat_opt), (params, opt) = runs
    for a, b in zip(flat_params, params):
        np.testing.assert_array_equal(as_np(a.data), as_np(b.data))
    saved, reference = flat_opt.state_dict(), opt.state_dict()
    assert saved["state"].keys() == reference["state"].keys()
    for key, value in reference["state"].items():
        np.testing.assert_array_equal(saved["state"][key], value)


def test_flat_parameters_are_views_and_repacked_when_replaced(xp):
    from xpnet.optim.flat import FlatParameters

    params = [
        Parameter(on(xp, np.ones((2, 3)), "float32")),
        Parameter(on(xp, np.ones(2), "float32")),
    ]
    opt = optim.SGD(params, lr=0.5, momentum=0.9)
    for p in params:
        p.grad = on(xp, np.ones(p.shape), "float32")
    opt.step()
    flat = opt.flat_parameters()
    immutable = xpnet.backend_of(params[0].data) == "jax"  # no views: one at a time
    if immutable:
        assert flat is None
    else:
        assert isinstance(flat, FlatParameters) and flat.data.shape == (8,)
        np.testing.assert_array_equal(as_np(flat.data), 0.5)
    params[0].data = on(xp, np.full((2, 3), 7.0), "float32")  # e.g. load_state_dict
    opt.step()  # packs again: 7 - 0.5 * (0.9 * 1 + 1)
    np.testing.assert_allclose(as_np(params[0].data), 7.0 - 0.5 * 1.9, rtol=1e-6)
    np.testing.assert_allclose(as_np(params[1].data), 0.5 - 0.5 * 1.9, rtol=1e-6)
    assert immutable or opt.flat_parameters().data.shape == (8,)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda p: optim.Adam(p, lr=0.01, weight_decay=0.01),
        lambda p: optim.AdamW(p, lr=0.01),
    ],
    ids=["sgd", "adam", "adamw"],
)
def test_every_parameter_and_state_changes_each_step(xp, rng, make):
    """On every backend, immutable arrays (JAX) included: each step writes every
    parameter and every state entry, and they stay on the parameters' backend."""
    params = [Parameter(on(xp, rng.standard_normal(shape), "float32")) for shape in [(3, 2), (4,)]]
    opt = make(params)
    for _ in range(2):
        before = [as_np(p.data).copy() for p in params]
        states = [{k: as_np(v).copy() for k, v in s.items()} for s in opt.state]
        for p in params:
            p.grad = on(xp, rng.standard_normal(p.shape), "float32")
        opt.step()
        for p, old in zip(params, before):
            assert xpnet.backend_of(p.data) == xpnet.backend_of(p.grad)
            assert np.all(as_np(p.data) != old)
        for entry, old_entry in zip(opt.state, states):
            assert entry and all(
                xpnet.backend_of(v) == xpnet.backend_of(p.grad) for v in entry.values()
            )
            for key, value in old_entry.items():
                assert np.all(as_np(entry[key]) != value), key


def test_optimizer_state_round_trips_through_the_flat_path(xp, rng):
    params = [Parameter(on(xp, rng.standard_normal((3, 2)), "float32"))]
    opt = optim.Adam(params, lr=0.01)
    params[0].grad = on(xp, np.ones((3, 2)), "float32")
    opt.step()
    restored = optim.Adam([Parameter(on(xp, as_np(params[0].data).copy(), "float32"))], lr=0.01)
    restored.load_state_dict(opt.state_dict())
    restored.params[0].grad = params[0].grad
    opt.step()
    restored.step()
    np.testing.assert_array_equal(as_np(restored.params[0].data), as_np(params[0].data))
