"""What ``fit(..., distributed=comm)`` does differently, in one place (as PyTorch DDP and
ChainerMN do it):

- rank 0's parameters and buffers are broadcast at the start (and after a resume), so every
  rank starts equal;
- every rank draws the same permutation (seed + epoch) and takes its slice of each global
  batch (:meth:`DataParallel.local`): every rank runs the same number of steps;
- after the backward, the gradients of all parameters are gathered into one flat buffer
  (the optimizer's, :mod:`xpnet.optim.flat`), summed over the ranks with ONE allreduce and
  averaged; every rank then takes the same optimizer step, so the parameters stay
  bitwise equal;
- plain BatchNorm normalises by each rank's own batch (DDP's default) and its running
  statistics are rank 0's, broadcast after each step; :class:`SyncBatchNorm` uses the
  global batch's statistics instead;
- loss and accuracy are summed over ranks at each read-back; only rank 0 prints, writes
  checkpoints and metrics, the others wait at a barrier.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

from .._typing import Array
from ..nn import Module
from ..nn.normalization import _BatchNorm
from .communicator import Communicator, DistributedError


class DataParallel:
    """The data-parallel side of one ``fit`` run over ``comm``.

    Parameters
    ----------
    comm : Communicator
        The ranks of the run.
    batch_size : int
        The global batch; it must split evenly over the ranks.
    """

    def __init__(self, comm: Communicator, batch_size: int) -> None:
        if batch_size % comm.size:
            raise DistributedError(
                f"--batch-size {batch_size} does not split over {comm.size} ranks: the batch "
                f"size is the global batch, give a multiple of {comm.size}"
            )
        self.comm = comm
        self.root = comm.rank == 0
        self._running: list[Any] | None = None  # plain BatchNorm's running statistics

    def local(self, index: Array) -> tuple[Array, int]:
        """This rank's part of a global batch's ``index`` and the global batch's size: equal
        parts, the first ranks one more where it does not split (the last batch; one
        smaller than the number of ranks is skipped by ``fit``).

        Parameters
        ----------
        index : array
            The global batch's sample indices.

        Returns
        -------
        local : array
            This rank's indices.
        n_global : int
            The global batch's size.
        """
        n, size, rank = int(index.shape[0]), self.comm.size, self.comm.rank
        share, extra = divmod(n, size)
        start = rank * share + min(rank, extra)
        return index[start : start + share + (rank < extra)], n

    def loss_scale(self, n_local: int, n_global: int) -> float:
        """The factor on this rank's loss gradient so that the averaged sum of the ranks'
        gradients is the gradient of the mean loss over the global batch.

        Parameters
        ----------
        n_local, n_global : int
            This rank's and the global batch's sizes.

        Returns
        -------
        float
            The factor.
        """
        return n_local * self.comm.size / n_global

    def broadcast_model(self, model: Module) -> None:
        """Rank 0's parameters and buffers on every rank (one broadcast per array).

        Parameters
        ----------
        model : Module
            The same architecture on every rank.
        """
        for param in model.parameters():
            param.data = self.comm.broadcast(param.data)
        for _, buffer in model.named_buffers():
            buffer.data = self.comm.broadcast(buffer.data)

    def broadcast_running_statistics(self, model: Module) -> None:
        """Rank 0's running statistics of every plain BatchNorm on every rank, packed into
        one broadcast after each step (as DDP's ``broadcast_buffers``, so every rank
        validates and ends with the same ones); nothing without such layers.

        Parameters
        ----------
        model : Module
            The same architecture on every rank.
        """
        if self._running is None:  # the same Buffer objects every step: found once
            from .sync_batchnorm import SyncBatchNorm

            layers = [
                m
                for m in model.modules()
                if isinstance(m, _BatchNorm) and not isinstance(m, SyncBatchNorm)
            ]
            self._running = [
                b for m in layers if m.track_running_stats for b in (m.running_mean, m.running_var)
            ]
        buffers = self._running
        if not buffers:
            return
        xp = array_namespace(buffers[0].data)
        packed = self.comm.broadcast(xp.concat([b.data for b in buffers]))
        start = 0
        for buffer in buffers:
            size = int(buffer.data.shape[0])
            buffer.data = packed[start : start + size]
            start += size

    def reduce_gradients(self, optimizer: Any) -> Array:
        """All gradients as one flat buffer, summed over the ranks by ONE allreduce and
        divided by the number of ranks.

        Parameters
        ----------
        optimizer : Optimizer
            Its flat parameter buffer holds the gradients.

        Returns
        -------
        array
            The averaged flat gradient, for ``optimizer.step(flat_grad)``.
        """
        flat = optimizer.flat_parameters()
        if flat is None:
            raise DistributedError(
                "distributed training needs the optimizer's flat parameter buffer: every "
                "parameter of one dtype and device, on a backend whose views alias"
            )
        grad = flat.gradient()
        if grad is None:
            raise DistributedError("distributed training: a parameter has no gradient")
        return self.comm.allreduce(grad * (1.0 / self.comm.size))
