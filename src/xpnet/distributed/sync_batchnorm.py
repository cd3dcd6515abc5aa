"""``SyncBatchNorm``: batch normalisation by the statistics of the GLOBAL batch of a
data-parallel run, so that a run on k ranks normalises as one process on the whole batch.

Forward (training): the per-channel sums and the count are summed over the ranks (one
allreduce), then the sums of squared deviations from that mean (a second), as one
process computes mean and biased variance over the whole batch; the running statistics
are updated from the global ones, so they are equal on every rank. Backward: the input
gradient needs the global means of ``g`` and ``g * x_hat``: one allreduce of both. The
parameter gradients are each rank's part; the data-parallel step sums them with the
rest. Without a communicator (``comm is None``, e.g. after loading a checkpoint in one
process) it is a plain ``BatchNorm2d``.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace, device

from .._typing import Array
from ..nn import Module, Sequential
from ..nn.normalization import BatchNorm2d
from .communicator import Communicator


class SyncBatchNorm(BatchNorm2d):
    """:class:`xpnet.nn.BatchNorm2d` over the global batch of a data-parallel run.

    Build it with :func:`convert_sync_batchnorm`, which also sets ``comm``.

    Parameters
    ----------
    num_features : int
        C.
    eps : float
        Added to the variance.
    momentum : float
        Weight of each new batch in the running estimates.
    affine : bool
        Learn a per-channel scale and shift.
    track_running_stats : bool
        Keep running estimates.
    backend : str, optional
        Default :func:`xpnet.get_backend`.
    dtype : str
        ``"float32"`` (default) or ``"float64"``.
    """

    comm: Communicator | None = None

    def spec(self) -> dict[str, Any]:
        """A ``BatchNorm2d``'s: a checkpoint of a data-parallel run loads anywhere.

        Returns
        -------
        dict
            ``{"type": "BatchNorm2d", "config": ...}``.
        """
        return {"type": "BatchNorm2d", "config": self.config()}

    def forward(self, x: Array) -> Array:
        if not self.training or self.comm is None or not self.track_running_stats:
            return super().forward(x)
        xp = array_namespace(x)
        channels = x.shape[1]
        shape = (1, channels, 1, 1)
        axes = (0, 2, 3)
        count_local = x.shape[0] * x.shape[2] * x.shape[3]
        counted = xp.concat(
            [xp.sum(x, axis=axes), xp.ones(1, dtype=x.dtype, device=device(x)) * count_local]
        )
        totals = self.comm.allreduce(counted)
        count = float(totals[channels])
        mean = totals[:channels] / count
        centred = x - xp.reshape(mean, shape)
        var = self.comm.allreduce(xp.sum(centred * centred, axis=axes)) / count
        inv_std = xp.reshape(1.0 / xp.sqrt(var + self.eps), shape)
        x_hat = centred * inv_std
        weight = None if self.weight is None else xp.reshape(self.weight.data, shape)
        out = x_hat if weight is None else x_hat * weight
        if self.bias is not None:
            out = out + xp.reshape(self.bias.data, shape)
        m = self.momentum
        self.running_mean.data = (1.0 - m) * self.running_mean.data + m * mean
        unbiased = var * (count / max(count - 1.0, 1.0))
        self.running_var.data = (1.0 - m) * self.running_var.data + m * unbiased
        self.num_batches_tracked.data = self.num_batches_tracked.data + 1
        self._saved = ("sync", x_hat, inv_std, weight, count)
        return out

    def backward(self, grad_out: Array, *, input_grad: bool = True) -> Array | None:
        saved = self._take_saved()
        if not (isinstance(saved, tuple) and saved and saved[0] == "sync"):
            return super().backward(grad_out, input_grad=input_grad)
        _, x_hat, inv_std, weight, count = saved
        assert self.comm is not None  # a "sync" forward had one
        xp = array_namespace(grad_out)
        axes = (0, 2, 3)
        channels = grad_out.shape[1]
        shape = (1, channels, 1, 1)
        grad_bias = xp.sum(grad_out, axis=axes)
        grad_weight = xp.sum(grad_out * x_hat, axis=axes)
        if self.weight is not None and self.bias is not None:
            self.weight.grad, self.bias.grad = grad_weight, grad_bias
        if not input_grad:
            return None
        g = grad_out if weight is None else grad_out * weight
        scale = 1.0 if weight is None else weight[0, :, 0, 0]
        sums = self.comm.allreduce(xp.concat([grad_bias * scale, grad_weight * scale]))
        mean_g = xp.reshape(sums[:channels] / count, shape)
        mean_gx = xp.reshape(sums[channels:] / count, shape)
        return inv_std * (g - mean_g - x_hat * mean_gx)


def convert_sync_batchnorm(model: Module, comm: Communicator | None) -> Module:
    """``model`` with every ``BatchNorm2d`` replaced by a :class:`SyncBatchNorm` over
    ``comm`` (same parameters and running statistics), as PyTorch's function of that name;
    existing ``SyncBatchNorm`` layers get ``comm``. Containers are changed in place.

    Parameters
    ----------
    model : Module
        A layer or container.
    comm : Communicator or None
        The run's ranks.

    Returns
    -------
    Module
        ``model``, or its replacement where it is itself a ``BatchNorm2d``.
    """
    if isinstance(model, SyncBatchNorm):
        model.comm = comm
        return model
    if type(model) is BatchNorm2d:
        sync = SyncBatchNorm(**model.config())
        for name in (*model.param_names, *model.buffer_names):
            setattr(sync, name, getattr(model, name))
        sync.training = model.training
        sync.comm = comm
        return sync
    if isinstance(model, Sequential):
        model.layers = [convert_sync_batchnorm(layer, comm) for layer in model.layers]
    else:
        for attribute in ("block", "shortcut"):  # Residual
            child = getattr(model, attribute, None)
            if isinstance(child, Module):
                setattr(model, attribute, convert_sync_batchnorm(child, comm))
    return model
