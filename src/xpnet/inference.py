"""Inference on any backend: evaluation and prediction in eval mode, in batches on the device.

:func:`evaluate` (mean cross-entropy and accuracy), :func:`probabilities` (on the model's
backend and device) and :func:`predict` (as NumPy) run the model in eval mode, inside
:func:`xpnet.nn.inference_mode` (batch norm folded into the convolution before it), over
batches of ``batch_size`` images taken on the model's device. :func:`to_model_device` and the
dataset checks here are what :mod:`xpnet.train` shares with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import array_api_compat.numpy as np_namespace
import numpy as np
from array_api_compat import array_namespace, device

from ._backend import asarray, backend_of, index_dtype, to_numpy
from ._typing import Array, Namespace
from .functional import softmax
from .functional.softmax import check_labels
from .nn import CrossEntropyLoss, Module, inference_mode


def model_place(model: Module) -> tuple[str, Any, Namespace]:
    """The backend, device and namespace of ``model``'s first parameter (found without
    listing them all: at batch 1 the walk over a residual net cost as much as a layer)."""
    first = next(model.named_parameters(), None)
    if first is None:
        raise ValueError("fit: the model has no parameters")
    data = first[1].data
    return backend_of(data), device(data), array_namespace(data)


def to_model_device(model: Module, *arrays: Any) -> list[Any]:
    """Copy ``arrays`` (NumPy or any backend) once to the backend and device of ``model``.

    Parameters
    ----------
    model : Module
        Its first parameter's backend and device are the target.
    *arrays : array
        NumPy or any backend.

    Returns
    -------
    list of array
        The copies, in order.
    """
    name, dev, _ = model_place(model)
    return [asarray(a, backend=name, device=dev) for a in arrays]


def check_dataset(x: Any, y: Any, name: str, n_classes: int | None = None) -> None:
    n_images, n_labels = int(x.shape[0]), int(y.shape[0])
    if n_images != n_labels:
        raise ValueError(f"{name}: images ({n_images}) and labels ({n_labels}) differ in count")
    if n_images == 0:
        raise ValueError(f"{name}: the dataset is empty")
    labels = np.asarray(to_numpy(y))
    check_labels(labels, n_labels, n_classes, check_range=True, xp=np_namespace, func=name)


def n_classes_of(model: Module) -> int | None:
    last = model.parameters()[-1].data
    return int(last.shape[0]) if last.ndim == 1 else None


def _batched_logits(model: Module, x: Any, batch_size: int) -> Iterator[tuple[int, Array]]:
    (x,) = to_model_device(model, x)
    was_training = model.training
    model.eval()
    try:
        n = x.shape[0]
        for start in range(0, n, batch_size):
            with inference_mode():  # not around the yield: the caller's code is not in it
                logits = model(x[start : min(start + batch_size, n), ...])
            yield start, logits
    finally:
        model.train(was_training)


def evaluate(model: Module, x: Any, y: Any, *, batch_size: int = 1000) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)`` (eval mode, batched).

    Parameters
    ----------
    model : Module
        The net; it is put in eval mode for the call and back in its mode after.
    x : array
        Images (N, C, H, W), NumPy or any backend; copied to the model's device once.
    y : array
        Integer labels (N,).
    batch_size : int
        Images per forward.

    Returns
    -------
    dict
        ``{"loss": float, "accuracy": float}``.
    """
    check_dataset(x, y, "evaluate", n_classes_of(model))
    _, _, xp = model_place(model)
    (labels,) = to_model_device(model, y)
    integer = index_dtype(xp)
    labels = xp.astype(labels, integer)
    crit = CrossEntropyLoss(check_range=False)
    loss_sum, correct = 0.0, 0
    for start, logits in _batched_logits(model, x, batch_size):
        yb = labels[start : start + logits.shape[0]]
        loss_sum = loss_sum + crit(logits, yb) * logits.shape[0]
        correct = correct + xp.sum(xp.astype(xp.argmax(logits, axis=1) == yb, integer))
    n = int(labels.shape[0])
    return {"loss": float(loss_sum) / n, "accuracy": int(correct) / n}


def probabilities(model: Module, x: Any, *, batch_size: int = 1000) -> Array:
    """Class probabilities (N, n_classes) of ``model`` on images ``x`` (eval mode, batched),
    on the model's backend and device.

    Parameters
    ----------
    model : Module
        The net; it is put in eval mode for the call and back in its mode after.
    x : array
        Images (N, C, H, W), NumPy or any backend; copied to the model's device once.
    batch_size : int
        Images per forward.

    Returns
    -------
    array, shape (N, n_classes)
        Softmax of the logits, on the model's backend and device.
    """
    _, _, xp = model_place(model)
    parts = [softmax(logits, axis=1) for _, logits in _batched_logits(model, x, batch_size)]
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)


def predict(model: Module, x: Any, *, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities (N, n_classes) of ``model`` on images ``x``, as NumPy float64.

    Parameters
    ----------
    model : Module
        The net; it is put in eval mode for the call and back in its mode after.
    x : array
        Images (N, C, H, W), NumPy or any backend; copied to the model's device once.
    batch_size : int
        Images per forward.

    Returns
    -------
    numpy.ndarray, shape (N, n_classes)
        Softmax of the logits; ``predict(...).argmax(axis=1)`` gives the classes.
    """
    return to_numpy(probabilities(model, x, batch_size=batch_size)).astype(np.float64)


__all__ = ["evaluate", "predict", "probabilities", "to_model_device"]
