"""Batch normalisation (Ioffe and Szegedy, 2015), PyTorch's formulas, with its backward.

Training normalises by the batch's mean and biased variance over every axis but the
channels (axis 1) and returns the unbiased variance for the running estimate; evaluation
normalises by given running statistics. Written once against the array API.
"""

from __future__ import annotations

from array_api_compat import size

from .._saved import BatchNormSaved
from .._typing import Array
from .._validation import check_floating, finite_number, flag, namespace_of
from ..kernels import backward_for, kernel_for
from .activation import relu_backward, relu_forward


def batch_norm_forward(
    x: Array,
    weight: Array | None = None,
    bias: Array | None = None,
    *,
    running_mean: Array | None = None,
    running_var: Array | None = None,
    training: bool = True,
    eps: float = 1e-5,
    relu: bool = False,
) -> tuple[Array, BatchNormSaved]:
    """:func:`batch_norm` that also returns what its backward (and the running-statistics
    update) needs; with ``relu``, the output goes through :func:`relu` in the same op (a
    kernel may do both in one pass; :class:`xpnet.nn.Sequential` asks for it where a
    ``ReLU`` layer follows a batch norm layer), and :func:`batch_norm_backward` then
    starts with :func:`relu_backward`.

    Parameters
    ----------
    x : array, shape (N, C, ...)
        Real floating input; axis 1 holds the channels.
    weight, bias : array, shape (C,), optional
        Scale and shift after normalising.
    running_mean, running_var : array, shape (C,), optional
        Used instead of the batch's statistics when ``training`` is False.
    training : bool
        Normalise by the batch's mean and biased variance.
    eps : float
        Added to the variance.
    relu : bool
        Apply a ReLU to the output in the same op.

    Returns
    -------
    out : array
        The normalised (and, with ``relu``, rectified) input, the input's shape.
    saved : BatchNormSaved
        What :func:`batch_norm_backward` needs, and in training the batch's mean and unbiased
        variance for the running estimates.
    """
    xp = namespace_of(
        "batch_norm", x=x, weight=weight, bias=bias, running_mean=running_mean,
        running_var=running_var,
    )  # fmt: skip
    check_floating(x, "x", "batch_norm", xp=xp)
    training, relu = flag(training, "training", "batch_norm"), flag(relu, "relu", "batch_norm")
    eps = finite_number(eps, "eps", "batch_norm")
    if x.ndim < 2:
        raise ValueError(f"batch_norm: x must be (N, C, ...); got shape {tuple(x.shape)}")
    channels = x.shape[1]
    for name, value in (
        ("weight", weight),
        ("bias", bias),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ):
        if value is not None and tuple(value.shape) != (channels,):
            raise ValueError(
                f"batch_norm: {name} must have shape ({channels},) for x of shape "
                f"{tuple(x.shape)}; got {tuple(value.shape)}"
            )
    axes = (0, *range(2, x.ndim))
    shape = (1, channels, *([1] * (x.ndim - 2)))
    batch_stats = training or running_mean is None or running_var is None
    count = (size(x) or 0) // channels
    if training and count < 2:
        raise ValueError(
            f"batch_norm: training needs more than one value per channel; got x of shape "
            f"{tuple(x.shape)}"
        )
    kernel = kernel_for("batch_norm_forward", x, weight, bias, running_mean, running_var)
    if kernel is not None:
        result = kernel(
            x, weight, bias, running_mean=running_mean, running_var=running_var,
            training=training, eps=eps, relu=relu,
        )  # fmt: skip
        if result is not None:
            return result
    mean = var_unbiased = None
    if batch_stats:
        mean = xp.mean(x, axis=axes)
        centred = x - xp.reshape(mean, shape)
        var = xp.mean(centred * centred, axis=axes)
        var_unbiased = var * (count / max(count - 1, 1))
    else:
        centred = x - xp.reshape(running_mean, shape)
        var = running_var
    inv_std = xp.reshape(1.0 / xp.sqrt(var + eps), shape)
    x_hat = centred * inv_std
    weight_b = None if weight is None else xp.reshape(weight, shape)
    out = x_hat if weight_b is None else x_hat * weight_b
    if bias is not None:
        out = out + xp.reshape(bias, shape)
    relu_out = relu_forward(out)[0] if relu else None
    saved = BatchNormSaved(
        x_hat, inv_std, weight_b, axes, batch_stats, mean, var_unbiased, relu_out=relu_out
    )
    return out if relu_out is None else relu_out, saved


def batch_norm(
    x: Array,
    weight: Array | None = None,
    bias: Array | None = None,
    *,
    running_mean: Array | None = None,
    running_var: Array | None = None,
    training: bool = True,
    eps: float = 1e-5,
) -> Array:
    """Normalise each channel of ``x`` (axis 1) to zero mean and unit variance, then scale
    by ``weight`` and shift by ``bias``.

    Parameters
    ----------
    x : array, shape (N, C, ...)
    weight, bias : array, shape (C,), optional
    running_mean, running_var : array, shape (C,), optional
        Used instead of the batch's statistics when ``training`` is False.
    training : bool
        Normalise by the batch's mean and biased variance.
    eps : float
        Added to the variance.

    Returns
    -------
    array
        The input's shape, dtype, backend and device.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import batch_norm
    >>> x = xp.reshape(xp.asarray([1.0, 3.0, 10.0, 30.0]), (2, 2))
    >>> batch_norm(x, eps=0.0)
    Array([[-1., -1.],
           [ 1.,  1.]], dtype=array_api_strict.float64)
    """
    return batch_norm_forward(
        x, weight, bias, running_mean=running_mean, running_var=running_var,
        training=training, eps=eps,
    )[0]  # fmt: skip


def batch_norm_backward(
    grad_out: Array, saved: BatchNormSaved, *, input_grad: bool = True
) -> tuple[Array | None, Array | None, Array]:
    """Gradients of :func:`batch_norm` w.r.t. (x, weight, bias).

    With batch statistics the mean and variance depend on x:
    ``dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat))`` with ``g = grad_out *
    weight`` and means over the normalised axes; with running statistics
    ``dx = g * inv_std``. The weight gradient is ``None`` without affine.

    Parameters
    ----------
    grad_out : array
        d(loss)/d(output), the output's shape.
    saved : BatchNormSaved
        What :func:`batch_norm_forward` returned.
    input_grad : bool
        Compute d(loss)/d(x); ``False`` returns ``None`` in its place.

    Returns
    -------
    grad_x : array or None
        d(loss)/d(x), the input's shape.
    grad_weight : array or None
        d(loss)/d(weight); ``None`` without a weight.
    grad_bias : array or None
        d(loss)/d(bias); ``None`` without a bias.
    """
    xp = namespace_of("batch_norm_backward", grad_out=grad_out, x_hat=saved.x_hat)
    kernel = backward_for("batch_norm_backward", saved)
    if kernel is not None:
        return kernel(grad_out, saved, input_grad=input_grad)
    if saved.relu_out is not None:  # the forward's ReLU, undone first
        grad_out = relu_backward(grad_out, saved.relu_out)
    axes = saved.axes
    grad_bias = xp.sum(grad_out, axis=axes)
    grad_weight = xp.sum(grad_out * saved.x_hat, axis=axes)
    if not input_grad:
        return None, grad_weight if saved.weight is not None else None, grad_bias
    g = grad_out if saved.weight is None else grad_out * saved.weight
    if saved.batch_stats:
        shape = tuple(saved.inv_std.shape)
        mean_g = xp.mean(g, axis=axes, keepdims=True)
        mean_gx = xp.mean(g * saved.x_hat, axis=axes, keepdims=True)
        grad_x = saved.inv_std * (g - mean_g - saved.x_hat * xp.reshape(mean_gx, shape))
    else:
        grad_x = g * saved.inv_std
    return grad_x, grad_weight if saved.weight is not None else None, grad_bias
