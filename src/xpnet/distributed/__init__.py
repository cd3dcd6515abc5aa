"""Data-parallel training over MPI (mpi4py), NCCL between GPUs: ``pip install "xpnet[mpi]"``.

    mpiexec -n 2 xpnet train --distributed            # the CLI
    python -m mpi4py -m xpnet train --distributed     # ... aborting every rank if one fails

From Python::

    from xpnet import distributed
    comm = distributed.init()          # rank, size; allreduce/broadcast/barrier on arrays
    fit(model, loss, opt, (x, y), epochs=2, batch_size=128, distributed=comm)

``batch_size`` stays the GLOBAL batch, split evenly over the ranks, so a run's result does
not depend on how many ranks ran it (to float rounding). See :mod:`.data_parallel` for
what is broadcast, split and reduced, and :class:`SyncBatchNorm` for batch statistics over
the global batch.
"""

from .communicator import Communicator, DistributedError, init
from .data_parallel import DataParallel
from .sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm

__all__ = [
    "Communicator",
    "DataParallel",
    "DistributedError",
    "SyncBatchNorm",
    "convert_sync_batchnorm",
    "init",
]
