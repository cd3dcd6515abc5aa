"""Batch normalisation layers (PyTorch's ``BatchNorm1d``/``BatchNorm2d``: names, buffers,
state_dict keys, formulas)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import functional as F
from .._backend import asarray, get_backend, index_dtype, namespace
from .._typing import Array
from .._validation import finite_number, flag, positive_int
from .module import Buffer, Module, Parameter


class _BatchNorm(Module):
    """Per-channel normalisation of (N, C, ...) input; the subclass names the input rank.

    Training normalises by the batch's statistics and updates the running estimates
    (``running = (1 - momentum) * running + momentum * batch``, the batch variance with
    Bessel's correction); ``eval()`` normalises by the running estimates.
    """

    param_names = ("weight", "bias")
    buffer_names = ("running_mean", "running_var", "num_batches_tracked")
    input_ranks: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        backend: str | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features = positive_int(num_features, "num_features", name)
        self.eps = finite_number(eps, "eps", name)
        self.momentum = finite_number(momentum, "momentum", name)
        if self.momentum > 1:
            raise ValueError(f"{name}: momentum must be in [0, 1]; got {momentum!r}")
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        backend = backend or get_backend()

        def full(value: float) -> Array:
            return asarray([value] * num_features, backend=backend, dtype=dtype)

        self.weight = Parameter(full(1.0)) if affine else None
        self.bias = Parameter(full(0.0)) if affine else None
        if track_running_stats:
            self.running_mean = Buffer(full(0.0))
            self.running_var = Buffer(full(1.0))
            integer = index_dtype(namespace(backend))  # int64; JAX's 32-bit mode: int32
            self.num_batches_tracked = Buffer(asarray(0, backend=backend, dtype=integer))

    @classmethod
    def state_shapes(cls, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
        name = cls.__name__
        c = (positive_int(config.get("num_features"), "num_features", name),)
        shapes: dict[str, tuple[int, ...]] = {}
        if flag(config.get("affine", True), "affine", name):
            shapes.update(weight=c, bias=c)
        if flag(config.get("track_running_stats", True), "track_running_stats", name):
            shapes.update(running_mean=c, running_var=c, num_batches_tracked=())
        return shapes

    def forward(self, x: Array) -> Array:
        return self._normalize(x, relu=False)

    def forward_relu(self, x: Array) -> Array:
        """``relu(self.forward(x))`` as one op (:func:`xpnet.functional.batch_norm_forward`
        with ``relu=True``: one pass with the NumPy kernel); :meth:`backward` then takes the
        gradient of the ReLU's output. :class:`xpnet.nn.Sequential` calls it for a batch
        norm layer followed by a ``ReLU`` layer, whose own forward and backward it skips."""
        return self._normalize(x, relu=True)

    def fuses_relu(self) -> bool:
        """Whether :meth:`forward_relu` is this layer's forward and then a ReLU: not in a
        subclass with a forward of its own (``xpnet.distributed.SyncBatchNorm``)."""
        return type(self).forward is _BatchNorm.forward

    def _normalize(self, x: Array, *, relu: bool) -> Array:
        if x.ndim not in self.input_ranks:
            ranks = " or ".join(f"{r}-D" for r in self.input_ranks)
            raise ValueError(
                f"{type(self).__name__}: x must be {ranks} (N, C, ...); got shape {tuple(x.shape)}"
            )
        tracking = self.track_running_stats
        out, self._saved = F.batch_norm_forward(
            x,
            None if self.weight is None else self.weight.data,
            None if self.bias is None else self.bias.data,
            running_mean=self.running_mean.data if tracking else None,
            running_var=self.running_var.data if tracking else None,
            training=self.training,
            eps=self.eps,
            relu=relu,
        )
        if self.training and tracking:
            m = self.momentum
            self.running_mean.data = (1.0 - m) * self.running_mean.data + m * self._saved.mean
            self.running_var.data = (1.0 - m) * self.running_var.data + m * self._saved.var_unbiased
            self.num_batches_tracked.data = self.num_batches_tracked.data + 1
        return out

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        grad_x, grad_weight, grad_bias = F.batch_norm_backward(
            grad_out, self._take_saved(), input_grad=input_grad
        )
        if self.weight is not None and self.bias is not None:
            self.weight.grad, self.bias.grad = grad_weight, grad_bias
        return grad_x

    def config(self) -> dict[str, Any]:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
            "track_running_stats": self.track_running_stats,
        }


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) input over N, H and W, per channel.

    Parameters
    ----------
    num_features : int
        C.
    eps : float
        Added to the variance.
    momentum : float
        Weight of each new batch in the running estimates.
    affine : bool
        Learn a per-channel scale ``weight`` (ones) and shift ``bias`` (zeros).
    track_running_stats : bool
        Keep ``running_mean``, ``running_var`` and ``num_batches_tracked`` buffers and
        use them in ``eval()``; without, every forward uses the batch's statistics.
    backend : str, optional
        Default :func:`xpnet.get_backend`.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.
    """

    input_ranks = (4,)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) input, per channel (as :class:`BatchNorm2d`).

    Parameters
    ----------
    num_features : int
        C.
    eps : float
        Added to the variance.
    momentum : float
        Weight of each new batch in the running estimates.
    affine : bool
        Learn a per-channel scale ``weight`` (ones) and shift ``bias`` (zeros).
    track_running_stats : bool
        Keep running estimates and use them in eval mode (else the batch's statistics always).
    backend : str, optional
        Default :func:`xpnet.get_backend`.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.
    """

    input_ranks = (2, 3)
