"""Affine map ``x @ weight.T + bias`` with PyTorch's (out_features, in_features) weight."""

from __future__ import annotations

from .._saved import LinearSaved
from .._typing import Array
from .._validation import check_ndim, check_weight_and_bias, namespace_of


def linear_forward(x: Array, weight: Array, bias: Array | None = None) -> tuple[Array, LinearSaved]:
    """:func:`linear` that also returns what its backward pass needs.

    Parameters
    ----------
    x : array, shape (N, in_features)
        Real floating input.
    weight : array, shape (out_features, in_features)
        PyTorch's layout.
    bias : array, shape (out_features,), optional
        Added to each row.

    Returns
    -------
    out : array, shape (N, out_features)
        ``x @ weight.T + bias``.
    saved : LinearSaved
        What :func:`linear_backward` needs.
    """
    xp = namespace_of("linear", x=x, weight=weight, bias=bias)
    check_ndim(weight, "weight", "linear", 2, "(out_features, in_features)")
    check_weight_and_bias("linear", x, weight, bias, xp=xp)
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: x must have shape (..., {weight.shape[1]}) to match weight "
            f"{tuple(weight.shape)}; got {tuple(x.shape)}"
        )
    out = x @ xp.matrix_transpose(weight)
    if bias is not None:
        out = out + bias
    return out, LinearSaved(x, weight, bias is not None)


def linear(x: Array, weight: Array, bias: Array | None = None) -> Array:
    """Apply ``x @ weight.T + bias``.

    Parameters
    ----------
    x : array, shape (..., in_features)
    weight : array, shape (out_features, in_features)
    bias : array, shape (out_features,), optional

    Returns
    -------
    array, shape (..., out_features)

    Examples
    --------
    >>> import array_api_strict as xp
    >>> from xpnet.functional import linear
    >>> linear(xp.ones((2, 3)), xp.ones((4, 3)), xp.zeros(4)).shape
    (2, 4)
    """
    return linear_forward(x, weight, bias)[0]


def linear_backward(
    grad_out: Array, saved: LinearSaved, *, input_grad: bool = True
) -> tuple[Array | None, Array, Array | None]:
    """Gradients of :func:`linear` w.r.t. (x, weight, bias); ``input_grad=False`` skips x's.

    Parameters
    ----------
    grad_out : array
        d(loss)/d(output), the output's shape.
    saved : LinearSaved
        What :func:`linear_forward` returned.
    input_grad : bool
        Compute d(loss)/d(x); ``False`` returns ``None`` in its place.

    Returns
    -------
    grad_x : array or None
        d(loss)/d(x), the input's shape.
    grad_weight : array
        d(loss)/d(weight).
    grad_bias : array or None
        d(loss)/d(bias); ``None`` without a bias.
    """
    xp = namespace_of("linear_backward", grad_out=grad_out, x=saved.x)
    out_features, in_features = saved.weight.shape
    grad_x = grad_out @ saved.weight if input_grad else None
    grad_2d = xp.reshape(grad_out, (-1, out_features))
    x_2d = xp.reshape(saved.x, (-1, in_features))
    grad_weight = xp.matrix_transpose(grad_2d) @ x_2d
    grad_bias = xp.sum(grad_2d, axis=0) if saved.has_bias else None
    return grad_x, grad_weight, grad_bias
