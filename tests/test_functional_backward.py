"""Backward of every op: central finite differences in float64, and PyTorch autograd in float32."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xpnet import functional as F

from .conftest import relative_error
from .helpers import as_np, numeric_gradient, on
from .strategies import window_cases

FD_SETTINGS = settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TORCH_SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TORCH_TOLERANCE = 1e-4


def _check_fd(xp, forward, backward, inputs: dict[str, np.ndarray], rng) -> None:
    """Compare ``backward`` against central differences of ``sum(forward(**inputs) * R)``.

    ``forward(**arrays)`` returns (out, saved); ``backward(R, saved)`` returns a dict of
    gradients keyed like ``inputs``.
    """
    arrays = {k: on(xp, v) for k, v in inputs.items()}
    out, saved = forward(**arrays)
    weight = rng.standard_normal(tuple(out.shape))
    analytic = backward(on(xp, weight), saved)
    for name, value in inputs.items():

        def f(perturbed, name=name):
            args = {k: on(xp, perturbed if k == name else v) for k, v in inputs.items()}
            return float(np.sum(as_np(forward(**args)[0]) * weight))

        numeric = numeric_gradient(f, value.copy())
        np.testing.assert_allclose(
            as_np(analytic[name]), numeric, rtol=1e-6, atol=1e-7, err_msg=name
        )


@FD_SETTINGS
@given(case=window_cases(max_side=3), bias=st.booleans())
def test_conv2d_backward_finite_differences(xp, case, bias):
    rng = np.random.default_rng(case.seed)
    inputs = {
        "x": rng.standard_normal((case.n, case.c_in, case.h, case.w)),
        "weight": rng.standard_normal((case.c_out, case.c_in, *case.kernel)),
    }
    if bias:
        inputs["bias"] = rng.standard_normal(case.c_out)

    def forward(**a):
        return F.conv2d_forward(
            a["x"], a["weight"], a.get("bias"), stride=case.stride, padding=case.padding
        )

    def backward(g, saved):
        gx, gw, gb = F.conv2d_backward(g, saved)
        return {"x": gx, "weight": gw, "bias": gb}

    _check_fd(xp, forward, backward, inputs, rng)


@FD_SETTINGS
@given(case=window_cases(pool=True, max_side=3), kind=st.sampled_from(["max", "avg"]))
def test_pool_backward_finite_differences(xp, case, kind):
    rng = np.random.default_rng(case.seed)
    fwd, bwd = {
        "max": (F.max_pool2d_forward, F.max_pool2d_backward),
        "avg": (F.avg_pool2d_forward, F.avg_pool2d_backward),
    }[kind]
    _check_fd(
        xp,
        lambda x: fwd(x, case.kernel, stride=case.stride, padding=case.padding),
        lambda g, saved: {"x": bwd(g, saved)},
        {"x": rng.standard_normal((case.n, case.c_in, case.h, case.w))},
        rng,
    )


def test_linear_backward_finite_differences(xp, rng):
    def backward(g, saved):
        gx, gw, gb = F.linear_backward(g, saved)
        return {"x": gx, "weight": gw, "bias": gb}

    inputs = {
        "x": rng.standard_normal((3, 4)),
        "weight": rng.standard_normal((5, 4)),
        "bias": rng.standard_normal(5),
    }
    _check_fd(
        xp, lambda **a: F.linear_forward(a["x"], a["weight"], a["bias"]), backward, inputs, rng
    )


@pytest.mark.parametrize(
    ("forward", "backward"),
    [
        (F.relu, F.relu_backward),
        (F.sigmoid, F.sigmoid_backward),
        (F.tanh, F.tanh_backward),
        (F.softmax, F.softmax_backward),
        (F.log_softmax, F.log_softmax_backward),
    ],
    ids=["relu", "sigmoid", "tanh", "softmax", "log_softmax"],
)
def test_elementwise_backward_finite_differences(xp, rng, forward, backward):
    x = rng.standard_normal((3, 5)) * 3
    x[np.abs(x) < 1e-3] = 0.5  # keep relu away from its kink
    _check_fd(
        xp,
        lambda x: (lambda out: (out, out))(forward(x)),
        lambda g, out: {"x": backward(g, out)},
        {"x": x},
        rng,
    )


def test_cross_entropy_gradient_and_per_sample_losses(xp, rng):
    """The training step's gradient-only path and the read-back's per-sample losses agree
    with the loss and its backward, for integer labels and for one-hot rows, and with
    PyTorch's probability targets."""
    logits_np = rng.standard_normal((6, 4)) * 3
    labels_np = rng.integers(0, 4, size=6)
    logits, labels = on(xp, logits_np), on(xp, labels_np, "int64")
    one_hot = on(xp, np.eye(4)[labels_np])
    loss, saved = F.cross_entropy_forward(logits, labels)
    for target in (labels, one_hot):
        np.testing.assert_allclose(
            as_np(F.cross_entropy_gradient(logits, target)),
            as_np(F.cross_entropy_backward(1.0, saved)),
            rtol=1e-12, atol=1e-15,
        )  # fmt: skip
        each = as_np(F.cross_entropy_per_sample(logits, target))
        assert each.shape == (6,)
        np.testing.assert_allclose(each.mean(), float(loss), rtol=1e-12)
    soft = rng.dirichlet(np.ones(4), size=6)
    torch = pytest.importorskip("torch")
    reference = torch.nn.functional.cross_entropy(
        torch.tensor(logits_np), torch.tensor(soft), reduction="none"
    )
    each = as_np(F.cross_entropy_per_sample(logits, on(xp, soft)))
    np.testing.assert_allclose(each, reference.numpy(), rtol=1e-10)
    with pytest.raises(ValueError, match=r"probability targets must have the logits' shape"):
        F.cross_entropy_gradient(logits, on(xp, soft[:, :3]))


def test_cross_entropy_and_mse_backward_finite_differences(xp, rng):
    labels = on(xp, rng.integers(0, 5, size=4), "int64")
    x = rng.standard_normal((4, 5))
    _check_fd(
        xp,
        lambda logits: F.cross_entropy_forward(logits, labels),
        lambda g, saved: {"logits": F.cross_entropy_backward(g, saved)},
        {"logits": x},
        rng,
    )
    target = on(xp, rng.standard_normal((4, 5)))
    _check_fd(
        xp,
        lambda p: F.mse_loss_forward(p, target),
        lambda g, saved: {"p": F.mse_loss_backward(g, saved)},
        {"p": x},
        rng,
    )


# ---------------------------------------------------------------------------------------------
# Against PyTorch autograd, float32
# ---------------------------------------------------------------------------------------------


def _torch_grads(fn, *arrays):
    torch = pytest.importorskip("torch")
    tensors = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    upstream = torch.tensor(
        np.random.default_rng(7).standard_normal(tuple(out.shape)).astype(np.float32)
    )
    out.backward(upstream)
    return (
        out.detach().numpy(),
        upstream.numpy(),
        [None if t is None else t.grad.numpy() for t in tensors],
    )


def _assert_close(record, request, name, actual, expected):
    error = relative_error(actual, expected)
    record(error, request.node.name)
    assert error < TORCH_TOLERANCE, f"{name}: relative error {error:.2e}"


@TORCH_SETTINGS
@given(case=window_cases(), bias=st.booleans())
def test_conv2d_against_torch(xp, case, bias, record_error, request):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(case.seed)
    x = rng.standard_normal((case.n, case.c_in, case.h, case.w)).astype(np.float32)
    w = rng.standard_normal((case.c_out, case.c_in, *case.kernel)).astype(np.float32)
    b = rng.standard_normal(case.c_out).astype(np.float32) if bias else None
    expected, upstream, (gx, gw, gb) = _torch_grads(
        lambda x, w, b: torch.nn.functional.conv2d(
            x, w, b, stride=case.stride, padding=case.padding
        ),
        x,
        w,
        b,
    )
    out, saved = F.conv2d_forward(
        on(xp, x, "float32"),
        on(xp, w, "float32"),
        None if b is None else on(xp, b, "float32"),
        stride=case.stride,
        padding=case.padding,
    )
    got = F.conv2d_backward(on(xp, upstream, "float32"), saved)
    for name, actual, ref in zip(
        ("out", "x", "weight", "bias"), (out, *got), (expected, gx, gw, gb)
    ):
        if ref is not None:
            _assert_close(record_error, request, name, actual, ref)


@TORCH_SETTINGS
@given(case=window_cases(pool=True), kind=st.sampled_from(["max", "avg"]))
def test_pools_against_torch(xp, case, kind, record_error, request):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(case.seed)
    x = rng.standard_normal((case.n, case.c_in, case.h, case.w)).astype(np.float32)
    torch_op = {"max": torch.nn.functional.max_pool2d, "avg": torch.nn.functional.avg_pool2d}[kind]
    expected, upstream, (gx,) = _torch_grads(
        lambda x: torch_op(x, case.kernel, stride=case.stride, padding=case.padding), x
    )
    fwd, bwd = {
        "max": (F.max_pool2d_forward, F.max_pool2d_backward),
        "avg": (F.avg_pool2d_forward, F.avg_pool2d_backward),
    }[kind]
    out, saved = fwd(on(xp, x, "float32"), case.kernel, stride=case.stride, padding=case.padding)
    _assert_close(record_error, request, "out", out, expected)
    _assert_close(record_error, request, "x", bwd(on(xp, upstream, "float32"), saved), gx)


def test_linear_activations_and_losses_against_torch(xp, rng, record_error, request):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = rng.standard_normal((6, 7)).astype(np.float32) * 3
    w = rng.standard_normal((5, 7)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    expected, upstream, grads = _torch_grads(tf.linear, x, w, b)
    out, saved = F.linear_forward(on(xp, x, "float32"), on(xp, w, "float32"), on(xp, b, "float32"))
    _assert_close(record_error, request, "linear", out, expected)
    for got, ref in zip(F.linear_backward(on(xp, upstream, "float32"), saved), grads):
        _assert_close(record_error, request, "linear grad", got, ref)

    pairs = [
        (F.relu, F.relu_backward, tf.relu),
        (F.sigmoid, F.sigmoid_backward, torch.sigmoid),
        (F.tanh, F.tanh_backward, torch.tanh),
        (F.softmax, F.softmax_backward, lambda t: tf.softmax(t, dim=-1)),
        (F.log_softmax, F.log_softmax_backward, lambda t: tf.log_softmax(t, dim=-1)),
    ]
    for forward, backward, torch_fn in pairs:
        expected, upstream, (gx,) = _torch_grads(torch_fn, x)
        out = forward(on(xp, x, "float32"))
        _assert_close(record_error, request, forward.__name__, out, expected)
        _assert_close(
            record_error,
            request,
            forward.__name__ + " grad",
            backward(on(xp, upstream, "float32"), out),
            gx,
        )

    labels = rng.integers(0, 7, size=6)
    logits = torch.tensor(x, requires_grad=True)
    loss = tf.cross_entropy(logits, torch.tensor(labels))
    loss.backward()
    got, saved = F.cross_entropy_forward(on(xp, x, "float32"), on(xp, labels, "int64"))
    _assert_close(record_error, request, "cross_entropy", got, loss.detach().numpy())
    _assert_close(
        record_error,
        request,
        "cross_entropy grad",
        F.cross_entropy_backward(1.0, saved),
        logits.grad.numpy(),
    )
