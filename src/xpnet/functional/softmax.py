"""Softmax, log-softmax and the losses built on them, in their stable forms."""

from __future__ import annotations

from typing import Any, NamedTuple

from array_api_compat import device, size

from .._validation import check_floating, check_ndim, namespace_of

Array = Any


def softmax(x: Array, axis: int = -1) -> Array:
    """``exp(x) / sum(exp(x))`` along ``axis``, computed after subtracting the max.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import softmax
    >>> softmax(xp.asarray([1000.0, 1000.0]))
    Array([0.5, 0.5], dtype=array_api_strict.float64)
    """
    xp = namespace_of("softmax", x=x)
    check_floating(xp, x, "x", "softmax")
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def softmax_backward(grad_out: Array, out: Array, axis: int = -1) -> Array:
    """Gradient of :func:`softmax` given its output: ``y * (g - sum(g * y))``."""
    xp = namespace_of("softmax_backward", grad_out=grad_out, out=out)
    return out * (grad_out - xp.sum(grad_out * out, axis=axis, keepdims=True))


def log_softmax(x: Array, axis: int = -1) -> Array:
    """``x - log(sum(exp(x)))`` along ``axis`` (log-sum-exp after subtracting the max).

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import log_softmax
    >>> log_softmax(xp.asarray([0.0, 0.0]))
    Array([-0.69314718, -0.69314718], dtype=array_api_strict.float64)
    """
    xp = namespace_of("log_softmax", x=x)
    check_floating(xp, x, "x", "log_softmax")
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def log_softmax_backward(grad_out: Array, out: Array, axis: int = -1) -> Array:
    """Gradient of :func:`log_softmax` given its output: ``g - exp(y) * sum(g)``."""
    xp = namespace_of("log_softmax_backward", grad_out=grad_out, out=out)
    return grad_out - xp.exp(out) * xp.sum(grad_out, axis=axis, keepdims=True)


class CrossEntropySaved(NamedTuple):
    """What :func:`cross_entropy_backward` needs: class probabilities and one-hot labels."""

    probs: Array
    one_hot: Array


def check_labels(xp: Any, labels: Array, n: int, n_classes: int, *, check_range: bool) -> None:
    """Labels must be a 1-D integer array of length ``n`` with values in [0, n_classes)."""
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(
            f"cross_entropy: labels must be integer class indices; got dtype {labels.dtype}"
        )
    if tuple(labels.shape) != (n,):
        raise ValueError(f"cross_entropy: labels must have shape ({n},); got {tuple(labels.shape)}")
    if check_range and n > 0:
        low, high = int(xp.min(labels)), int(xp.max(labels))
        if low < 0 or high >= n_classes:
            raise ValueError(
                f"cross_entropy: labels must lie in [0, {n_classes}) for {n_classes} classes; "
                f"got values in [{low}, {high}]"
            )


def cross_entropy_forward(
    logits: Array, labels: Array, *, check_range: bool = True
) -> tuple[Array, CrossEntropySaved]:
    """:func:`cross_entropy` that also returns what its backward pass needs."""
    xp = namespace_of("cross_entropy", logits=logits, labels=labels)
    check_ndim(logits, "logits", "cross_entropy", 2, "(N, n_classes)")
    check_floating(xp, logits, "logits", "cross_entropy")
    n, n_classes = logits.shape
    check_labels(xp, labels, n, n_classes, check_range=check_range)
    classes = xp.arange(n_classes, device=device(logits))
    one_hot = xp.astype(labels[:, None] == classes, logits.dtype)
    log_probs = log_softmax(logits, axis=1)
    # asarray: NumPy reductions give a scalar; the loss is a 0-d array on every backend.
    loss = xp.asarray(-xp.sum(one_hot * log_probs) / n)
    return loss, CrossEntropySaved(xp.exp(log_probs), one_hot)


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


def cross_entropy_backward(saved: CrossEntropySaved, grad_loss: Array | float = 1.0) -> Array:
    """Gradient of :func:`cross_entropy` w.r.t. the logits: ``(softmax - one_hot) / N``."""
    n = saved.probs.shape[0]
    return (saved.probs - saved.one_hot) * (grad_loss / n)


def mse_loss(prediction: Array, target: Array) -> Array:
    """Mean squared error over all elements.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import mse_loss
    >>> float(mse_loss(xp.asarray([1.0, 3.0]), xp.asarray([0.0, 0.0])))
    5.0
    """
    xp = namespace_of("mse_loss", prediction=prediction, target=target)
    check_floating(xp, prediction, "prediction", "mse_loss")
    if tuple(prediction.shape) != tuple(target.shape):
        raise ValueError(
            f"mse_loss: target must have the prediction's shape {tuple(prediction.shape)}; "
            f"got {tuple(target.shape)}"
        )
    diff = prediction - target
    return xp.asarray(xp.sum(diff * diff) / max(size(diff) or 0, 1))


def mse_loss_backward(prediction: Array, target: Array, grad_loss: Array | float = 1.0) -> Array:
    """Gradient of :func:`mse_loss` w.r.t. the prediction: ``2 * (prediction - target) / n``."""
    return (prediction - target) * (2.0 * grad_loss / max(size(prediction) or 0, 1))
