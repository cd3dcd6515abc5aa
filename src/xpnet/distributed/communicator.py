"""Collectives between the processes of a data-parallel run, over MPI (mpi4py), and NCCL
between GPUs for CuPy arrays.

MPI starts the processes (``mpiexec -n 2 ...``) and carries NumPy, torch and
array-api-strict arrays (through host memory); CuPy arrays go GPU to GPU through NCCL,
whose communicator is set up from a unique id that rank 0 broadcasts over MPI, as
ChainerMN does. ``pip install "xpnet[mpi]"`` brings mpi4py and MPICH's wheel (a working
``mpiexec``, no system MPI needed).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from array_api_compat import device

from .._backend import asarray, backend_of, to_numpy
from .._typing import Array


class DistributedError(RuntimeError):
    """A data-parallel run cannot start (no mpi4py, a batch that does not split, ...)."""


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise DistributedError(
            f"distributed training needs mpi4py and an MPI library: pip install 'xpnet[mpi]' "
            f"({exc})"
        ) from None
    return MPI


class Communicator:
    """The processes of one data-parallel run: ``rank`` of ``size``, and collectives on
    arrays of any xpnet backend (the result has the input's backend, device and dtype).

    Parameters
    ----------
    mpi_comm : mpi4py.MPI.Comm, optional
        Default ``MPI.COMM_WORLD``: every process ``mpiexec`` started.

    Attributes
    ----------
    rank, size : int
        This process's number and how many there are.
    local_rank : int
        This process's number among those on the same machine (which GPU it takes).
    calls : collections.Counter
        How many of each collective this process has made (``"allreduce"``, ...).
    """

    def __init__(self, mpi_comm: Any = None) -> None:
        mpi = _mpi()
        self._mpi = mpi
        self.comm = mpi.COMM_WORLD if mpi_comm is None else mpi_comm
        self.rank: int = self.comm.Get_rank()
        self.size: int = self.comm.Get_size()
        node = self.comm.Split_type(mpi.COMM_TYPE_SHARED)
        self.local_rank: int = node.Get_rank()
        node.Free()
        self.calls: Counter[str] = Counter()
        self._nccl: Any = None

    def __repr__(self) -> str:
        return f"Communicator(rank={self.rank}, size={self.size}, local_rank={self.local_rank})"

    # -- collectives on arrays ---------------------------------------------------------------

    def allreduce(self, x: Array) -> Array:
        """The elementwise sum of ``x`` over every rank (NCCL for CuPy, else MPI).

        Parameters
        ----------
        x : array
            The same shape and dtype on every rank.

        Returns
        -------
        array
            The sum, on ``x``'s backend and device.
        """
        self.calls["allreduce"] += 1
        if self.size == 1:
            return x
        if backend_of(x) == "cupy":
            return self._nccl_allreduce(x)
        host = np.ascontiguousarray(to_numpy(x))
        if host is x:
            host = host.copy()  # never write into the caller's array
        self.comm.Allreduce(self._mpi.IN_PLACE, host, op=self._mpi.SUM)
        return self._back(host, x)

    def broadcast(self, x: Array, root: int = 0) -> Array:
        """Rank ``root``'s ``x`` on every rank (same shape and dtype on all).

        Parameters
        ----------
        x : array
            The same shape and dtype on every rank.
        root : int
            The rank whose values are sent.

        Returns
        -------
        array
            ``root``'s values, on ``x``'s backend and device.
        """
        self.calls["broadcast"] += 1
        if self.size == 1:
            return x
        host = np.array(to_numpy(x), copy=True, order="C")
        self.comm.Bcast(host, root=root)
        return self._back(host, x)

    def barrier(self) -> None:
        """Wait until every rank has arrived here."""
        self.calls["barrier"] += 1
        if self.size > 1:
            self.comm.Barrier()

    def sum_host(self, values: np.ndarray) -> np.ndarray:
        """The sum over ranks of a small float64 NumPy vector (metrics): one collective.

        Parameters
        ----------
        values : numpy.ndarray
            float64, the same length on every rank.

        Returns
        -------
        numpy.ndarray
            The sum over the ranks.
        """
        self.calls["sum_host"] += 1
        values = np.array(values, dtype=np.float64, copy=True)
        if self.size > 1:
            self.comm.Allreduce(self._mpi.IN_PLACE, values, op=self._mpi.SUM)
        return values

    def all_agree(self, value: bool) -> bool:
        """True if ``value`` is true on every rank.

        Parameters
        ----------
        value : bool
            This rank's answer.

        Returns
        -------
        bool
            The logical AND over the ranks.
        """
        self.calls["all_agree"] += 1
        return bool(self.comm.allreduce(bool(value), op=self._mpi.LAND))

    def abort(self, code: int = 1) -> None:
        """End every rank now (a failed rank must not leave the others waiting).

        Parameters
        ----------
        code : int
            The exit code every process ends with.
        """
        self.comm.Abort(code)

    # -- devices ------------------------------------------------------------------------------

    def gpu_device(self, backend: str) -> Any:
        """The GPU this rank uses (one per rank, by its rank on the machine), made current
        for CuPy; ``None`` for a CPU backend.

        Parameters
        ----------
        backend : str
            The backend the run trains on.

        Returns
        -------
        device or None
            CuPy's ``Device`` or torch's ``cuda:N`` device; ``None`` off the GPU.
        """
        if backend == "cupy":
            import cupy

            count = cupy.cuda.runtime.getDeviceCount()
            cupy.cuda.Device(self.local_rank % count).use()
            return None  # CuPy puts arrays on the current device
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return None

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _back(host: np.ndarray, like: Array) -> Array:
        if backend_of(like) == "numpy":
            return host
        return asarray(host, backend=backend_of(like), dtype=like.dtype, device=device(like))

    def _nccl_allreduce(self, x: Array) -> Array:
        """Sum of a CuPy array over ranks through NCCL, never through the host.

        Prepared without a GPU at hand: runs where one is (benchmarks/gpu_run.sh)."""
        import cupy
        from cupy.cuda import nccl

        if self._nccl is None:
            uid = nccl.get_unique_id() if self.rank == 0 else None
            uid = self.comm.bcast(uid, root=0)
            self._nccl = nccl.NcclCommunicator(self.size, uid, self.rank)
        types = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64}
        x = cupy.ascontiguousarray(x)
        out = cupy.empty_like(x)
        stream = cupy.cuda.get_current_stream().ptr
        self._nccl.allReduce(
            x.data.ptr, out.data.ptr, x.size, types[x.dtype], nccl.NCCL_SUM, stream
        )
        return out


def init() -> Communicator:
    """The communicator of every process ``mpiexec`` started (size 1 without mpiexec).

    Returns
    -------
    Communicator
        Over every process ``mpiexec`` started.

    Raises
    ------
    DistributedError
        mpi4py or its MPI library is missing (one line saying what to install).
    """
    return Communicator()
