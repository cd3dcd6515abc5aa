"""Softmax, log-softmax and the losses built on them, in their stable forms."""

from __future__ import annotations

from typing import Any

from array_api_compat import size

from .._saved import CrossEntropySaved, MSESaved
from .._typing import Array, Namespace
from .._validation import check_floating, check_ndim, namespace_of
from ._cache import arange_like


def softmax_forward(x: Array, axis: int = -1) -> tuple[Array, Array]:
    """:func:`softmax` and what its backward needs (the output).

    Parameters
    ----------
    x : array
        Real floating-point input.
    axis : int
        The axis along which to normalise.

    Returns
    -------
    out : array
        ``softmax(x, axis)``, the input's shape.
    saved : array
        The output again: what :func:`softmax_backward` takes.
    """
    xp = namespace_of("softmax", x=x)
    check_floating(x, "x", "softmax", xp=xp)
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    out = e / xp.sum(e, axis=axis, keepdims=True)
    return out, out


def softmax(x: Array, axis: int = -1) -> Array:
    """``exp(x) / sum(exp(x))`` along ``axis``, computed after subtracting the max.

    Parameters
    ----------
    x : array
        Real floating-point input.
    axis : int
        The axis along which to normalise.

    Returns
    -------
    array
        Probabilities, the input's shape, dtype, backend and device.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import softmax
    >>> softmax(xp.asarray([1000.0, 1000.0]))
    Array([0.5, 0.5], dtype=array_api_strict.float64)
    """
    return softmax_forward(x, axis)[0]


def softmax_backward(grad_out: Array, out: Array, axis: int = -1) -> Array:
    """Gradient of :func:`softmax` given its output: ``y * (g - sum(g * y))``.

    Parameters
    ----------
    grad_out : array
        d(loss)/d(output).
    out : array
        The forward's output.
    axis : int
        The forward's axis.

    Returns
    -------
    array
        d(loss)/d(x).
    """
    xp = namespace_of("softmax_backward", grad_out=grad_out, out=out)
    return out * (grad_out - xp.sum(grad_out * out, axis=axis, keepdims=True))


def log_softmax_forward(x: Array, axis: int = -1) -> tuple[Array, Array]:
    """:func:`log_softmax` and what its backward needs (the output).

    Parameters
    ----------
    x : array
        Real floating-point input.
    axis : int
        The axis along which to normalise.

    Returns
    -------
    out : array
        ``log_softmax(x, axis)``, the input's shape.
    saved : array
        The output again: what :func:`log_softmax_backward` takes.
    """
    xp = namespace_of("log_softmax", x=x)
    check_floating(x, "x", "log_softmax", xp=xp)
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    out = shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))
    return out, out


def log_softmax(x: Array, axis: int = -1) -> Array:
    """``x - log(sum(exp(x)))`` along ``axis`` (log-sum-exp after subtracting the max).

    Parameters
    ----------
    x : array
        Real floating-point input.
    axis : int
        The axis along which to normalise.

    Returns
    -------
    array
        Log-probabilities, the input's shape, dtype, backend and device.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import log_softmax
    >>> log_softmax(xp.asarray([0.0, 0.0]))
    Array([-0.69314718, -0.69314718], dtype=array_api_strict.float64)
    """
    return log_softmax_forward(x, axis)[0]


def log_softmax_backward(grad_out: Array, out: Array, axis: int = -1) -> Array:
    """Gradient of :func:`log_softmax` given its output: ``g - exp(y) * sum(g)``.

    Parameters
    ----------
    grad_out : array
        d(loss)/d(output).
    out : array
        The forward's output.
    axis : int
        The forward's axis.

    Returns
    -------
    array
        d(loss)/d(x).
    """
    xp = namespace_of("log_softmax_backward", grad_out=grad_out, out=out)
    return grad_out - xp.exp(out) * xp.sum(grad_out, axis=axis, keepdims=True)


def check_labels(
    labels: Array,
    n: int,
    n_classes: int | None,
    *,
    check_range: bool,
    xp: Namespace,
    func: str = "cross_entropy",
) -> None:
    """Labels must be a 1-D integer array of length ``n`` with values in [0, n_classes)
    (the range is checked when ``check_range`` and ``n_classes`` is known); errors name
    ``func``."""
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"{func}: labels must be integer class indices; got dtype {labels.dtype}")
    if tuple(labels.shape) != (n,):
        raise ValueError(f"{func}: labels must have shape ({n},); got {tuple(labels.shape)}")
    if check_range and n_classes is not None and n > 0:
        low, high = int(xp.min(labels)), int(xp.max(labels))
        if low < 0 or high >= n_classes:
            raise ValueError(
                f"{func}: labels must lie in [0, {n_classes}) for {n_classes} classes; "
                f"got values in [{low}, {high}]"
            )


def cross_entropy_forward(
    logits: Array, labels: Array, *, check_range: bool = True
) -> tuple[Array, CrossEntropySaved]:
    """:func:`cross_entropy` that also returns what its backward pass needs.

    Parameters
    ----------
    logits : array, shape (N, n_classes)
        Unnormalised scores.
    labels : integer array, shape (N,)
        Class indices in ``[0, n_classes)``.
    check_range : bool
        Check the label range (one device-to-host read).

    Returns
    -------
    loss : 0-d array
        The mean cross-entropy.
    saved : CrossEntropySaved
        The probabilities and one-hot labels, for :func:`cross_entropy_backward`.
    """
    xp = namespace_of("cross_entropy", logits=logits, labels=labels)
    check_ndim(logits, "logits", "cross_entropy", 2, "(N, n_classes)")
    check_floating(logits, "logits", "cross_entropy", xp=xp)
    n, n_classes = logits.shape
    check_labels(labels, n, n_classes, check_range=check_range, xp=xp)
    one_hot = one_hot_rows(labels, n_classes, logits.dtype, xp=xp)
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    e = xp.exp(shifted)
    total = xp.sum(e, axis=1, keepdims=True)
    log_probs = shifted - xp.log(total)
    # asarray: NumPy reductions give a scalar; the loss is a 0-d array on every backend.
    loss = xp.asarray(xp.sum(one_hot * log_probs) * (-1.0 / n))
    return loss, CrossEntropySaved(e / total, one_hot)


def one_hot_rows(labels: Array, n_classes: int, dtype: Any, *, xp: Namespace) -> Array:
    """Integer ``labels`` (N,) as (N, n_classes) rows of ``dtype``: 1 in the label's column
    (the class range is made once per device, so this is two operations)."""
    return xp.astype(labels[:, None] == arange_like(n_classes, xp=xp, like=labels), dtype)


def cross_entropy(logits: Array, labels: Array, *, check_range: bool = True) -> Array:
    """Mean cross-entropy between ``softmax(logits)`` and integer class labels.

    Parameters
    ----------
    logits : array, shape (N, n_classes)
        Unnormalised scores.
    labels : integer array, shape (N,)
        Class indices in ``[0, n_classes)``.
    check_range : bool
        Check the label range (one device-to-host read); training loops that validated
        their labels once may turn it off.

    Returns
    -------
    0-d array
        ``-mean(log_softmax(logits)[i, labels[i]])``.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import cross_entropy
    >>> float(cross_entropy(xp.zeros((2, 4)), xp.asarray([0, 3])))  # log(4)
    1.3862943611198906
    """
    return cross_entropy_forward(logits, labels, check_range=check_range)[0]


def _target_probabilities(logits: Array, target: Array, xp: Namespace) -> Array:
    """``target`` as (N, n_classes) class probabilities: integer labels one-hot encoded,
    a floating (N, n_classes) array (one-hot or soft targets) as it is."""
    check_ndim(logits, "logits", "cross_entropy", 2, "(N, n_classes)")
    if xp.isdtype(target.dtype, "real floating"):
        if tuple(target.shape) != tuple(logits.shape):
            raise ValueError(
                f"cross_entropy: probability targets must have the logits' shape "
                f"{tuple(logits.shape)}; got {tuple(target.shape)}"
            )
        return target
    n, n_classes = logits.shape
    check_labels(target, n, n_classes, check_range=False, xp=xp)
    return one_hot_rows(target, n_classes, logits.dtype, xp=xp)


def cross_entropy_per_sample(logits: Array, target: Array) -> Array:
    """Each sample's cross-entropy, shape (N,): ``-sum(p * log_softmax(logits))`` over the
    classes, ``p`` the one-hot labels (not range-checked) or given class probabilities
    (N, n_classes). What a training loop's read-back sums per step.

    Parameters
    ----------
    logits : array, shape (N, n_classes)
        Unnormalised scores.
    target : array
        Integer labels (N,) or class probabilities (N, n_classes).

    Returns
    -------
    array, shape (N,)
        Each sample's loss.
    """
    xp = namespace_of("cross_entropy", logits=logits, target=target)
    probabilities = _target_probabilities(logits, target, xp)
    return -xp.sum(probabilities * log_softmax_forward(logits, axis=1)[0], axis=1)


def cross_entropy_gradient(logits: Array, target: Array) -> Array:
    """d(mean cross-entropy)/d(logits), ``(softmax(logits) - p) / N``, without the loss's
    value: what a training step needs. ``target``: integer labels (not range-checked) or
    class probabilities (N, n_classes), e.g. one-hot rows built once for a whole dataset
    (then 7 operations, where value and gradient from labels are 14); a loop reads the
    value later from the logits (:func:`cross_entropy_per_sample`).

    Parameters
    ----------
    logits : array, shape (N, n_classes)
        Unnormalised scores.
    target : array
        Integer labels (N,) or class probabilities (N, n_classes).

    Returns
    -------
    array, shape (N, n_classes)
        d(mean cross-entropy)/d(logits).
    """
    xp = namespace_of("cross_entropy", logits=logits, target=target)
    probabilities = _target_probabilities(logits, target, xp)
    e = xp.exp(logits - xp.max(logits, axis=1, keepdims=True))
    return (e / xp.sum(e, axis=1, keepdims=True) - probabilities) * (1.0 / logits.shape[0])


def cross_entropy_backward(grad_loss: Array | float, saved: CrossEntropySaved) -> Array:
    """Gradient of :func:`cross_entropy` w.r.t. the logits: ``(softmax - one_hot) / N``.

    Parameters
    ----------
    grad_loss : array or float
        d(total loss)/d(this loss), usually 1.
    saved : CrossEntropySaved
        What :func:`cross_entropy_forward` returned.

    Returns
    -------
    array
        d(loss)/d(logits).
    """
    n = saved.probs.shape[0]
    return (saved.probs - saved.one_hot) * (grad_loss / n)


def mse_loss_forward(prediction: Array, target: Array) -> tuple[Array, MSESaved]:
    """:func:`mse_loss` that also returns what its backward pass needs.

    Parameters
    ----------
    prediction : array
        Real floating-point predictions.
    target : array
        Targets of the prediction's shape.

    Returns
    -------
    loss : 0-d array
        The mean squared error.
    saved : MSESaved
        The difference, for :func:`mse_loss_backward`.
    """
    xp = namespace_of("mse_loss", prediction=prediction, target=target)
    check_floating(prediction, "prediction", "mse_loss", xp=xp)
    if tuple(prediction.shape) != tuple(target.shape):
        raise ValueError(
            f"mse_loss: target must have the prediction's shape {tuple(prediction.shape)}; "
            f"got {tuple(target.shape)}"
        )
    diff = prediction - target
    return xp.asarray(xp.sum(diff * diff) / max(size(diff) or 0, 1)), MSESaved(diff)


def mse_loss(prediction: Array, target: Array) -> Array:
    """Mean squared error over all elements.

    Parameters
    ----------
    prediction : array
        Real floating-point predictions.
    target : array
        Targets of the prediction's shape.

    Returns
    -------
    0-d array
        ``mean((prediction - target) ** 2)``.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import mse_loss
    >>> float(mse_loss(xp.asarray([1.0, 3.0]), xp.asarray([0.0, 0.0])))
    5.0
    """
    return mse_loss_forward(prediction, target)[0]


def mse_loss_backward(grad_loss: Array | float, saved: MSESaved) -> Array:
    """Gradient of :func:`mse_loss` w.r.t. the prediction: ``2 * (prediction - target) / n``.

    Parameters
    ----------
    grad_loss : array or float
        d(total loss)/d(this loss), usually 1.
    saved : MSESaved
        What :func:`mse_loss_forward` returned.

    Returns
    -------
    array
        d(loss)/d(prediction).
    """
    return saved.diff * (2.0 * grad_loss / max(size(saved.diff) or 0, 1))
