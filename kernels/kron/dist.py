"""Distributed Kron-matmul on Dask: a 2-D grid of row and column blocks with one exchange."""

from __future__ import annotations

import dataclasses
import math
import zlib
from dataclasses import dataclass

import numpy as np

from kernels.backend import to_numpy
from kernels.errors import InputError
from kernels.kron import _prepare, kron_matmul

__all__ = ["CommReport", "kron_comm_bytes", "kron_matmul_dist"]


@dataclass(frozen=True)
class CommReport:
    """Bytes moved between grid cells by the fused scheme and by one exchange per factor.

    ``exchange_bytes`` counts the one all-to-all among column blocks before the first
    factor; ``naive_exchange_bytes`` the scheme that redistributes the whole intermediate
    before every factor. Scattering X and gathering Y (``io_bytes``) cost both the same.
    """

    grid: tuple[int, int]
    exchange_bytes: int
    naive_exchange_bytes: int
    io_bytes: int
    backends: tuple[str, ...] = ()
    """Where each cell's local work ran (``numpy`` or ``cupy:<device>``), row-major over the grid."""

    @property
    def saving(self) -> float:
        """naive / fused exchange bytes (inf when the fused scheme moves nothing)."""
        return self.naive_exchange_bytes / self.exchange_bytes if self.exchange_bytes else math.inf


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    """[start, stop) bounds of ``parts`` near-equal pieces of range(n), larger pieces first."""
    base, extra = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + base + (i < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def _check_grid(grid, m: int, p1: int) -> tuple[int, int]:
    try:
        rows, cols = (int(g) for g in grid)
    except (TypeError, ValueError):
        raise InputError(f"grid: expected (row_blocks, col_blocks), got {grid!r}") from None
    if rows < 1 or cols < 1:
        raise InputError(f"grid: block counts must be >= 1, got {grid!r}")
    if rows > m:
        raise InputError(f"grid: {rows} row blocks exceed the {m} rows of x; use at most {m}")
    if cols > p1:
        raise InputError(
            f"grid: {cols} column blocks exceed P1={p1}, the first factor's row count that columns "
            f"are split along; use at most {p1}"
        )
    return rows, cols


def kron_comm_bytes(m: int, factor_shapes, grid, itemsize: int) -> CommReport:
    """Bytes each scheme sends between grid cells, without running anything.

    Columns of X are split along the first factor's axis, so factors N … 2 act locally on
    each column block; F1 needs all of that axis, reached by one all-to-all of the
    intermediate (M, P1, ∏_{i≥2} Qi). The naive scheme all-to-alls the current intermediate
    before each of the N factors. Row blocks never talk: rows are independent.
    """
    shapes = [tuple(s) for s in factor_shapes]
    rows, cols = _check_grid(grid, m, shapes[0][0])
    p1 = shapes[0][0]
    tail = math.prod(q for _, q in shapes[1:])
    a_parts = _split(p1, cols)
    t_parts = _split(tail, cols)
    kept = sum((a1 - a0) * (t1 - t0) for (a0, a1), (t0, t1) in zip(a_parts, t_parts))
    exchange = m * (p1 * tail - kept) * itemsize
    naive, k = 0, math.prod(p for p, _ in shapes)
    for p, q in reversed(shapes):
        naive += m * k * itemsize * (cols - 1) // cols
        k = k // p * q
    io = m * (math.prod(p for p, _ in shapes) + k) * itemsize
    return CommReport((rows, cols), exchange, naive, io)


def _worker_xp(device: str):
    """(array module, label) for this task: CuPy on the worker's own GPU when there is one.

    A worker started by dask-cuda sees one device (its CUDA_VISIBLE_DEVICES); otherwise the
    worker's name (0, 1, … in a LocalCluster) picks device ``name % device_count``, so a
    cluster of as many workers as GPUs puts one worker on each.
    """
    if device == "cpu":
        return np, "numpy"
    from kernels.backend import gpu_available

    if not gpu_available():
        if device == "gpu":
            raise InputError("device: 'gpu' requested but this Dask worker has no usable CUDA device")
        return np, "numpy"
    import cupy

    n = cupy.cuda.runtime.getDeviceCount()
    try:
        from dask.distributed import get_worker

        name = get_worker().name
        index = name if isinstance(name, int) else zlib.crc32(str(name).encode())
    except (ImportError, ValueError):  # not inside a worker: the current device
        index = cupy.cuda.Device().id
    cupy.cuda.Device(index % n).use()
    return cupy, f"cupy:{index % n}"


def _local_tail(xb, tail_factors, t_parts, device="cpu"):
    """Multiply a block (mb, a1_part, ∏P_{≥2}) by F2⊗…⊗FN; return its pieces per destination and the backend.

    On a GPU the block goes to the device once, F_N … F_2 run there (the FastKron kernel),
    and only the pieces other cells need come back to host memory for the exchange.
    """
    xp, label = _worker_xp(device)
    mb, a1 = xb.shape[0], xb.shape[1]
    flat = xp.asarray(xb).reshape(mb * a1, -1)
    z = kron_matmul(flat, [xp.asarray(f) for f in tail_factors]) if tail_factors else flat
    z = z.reshape(mb, a1, -1)
    return [to_numpy(xp.ascontiguousarray(z[:, :, t0:t1])) for t0, t1 in t_parts], label


def _pick(pieces, i):
    return pieces[0][i]


def _label(pieces):
    return pieces[1]


def _local_head(f1, *pieces, device="cpu"):
    """Join the P1 axis from every column block and multiply by F1: (mb, Q1, t_part)."""
    xp, _ = _worker_xp(device)
    joined = xp.concatenate([xp.asarray(p) for p in pieces], axis=1)
    return to_numpy(xp.matmul(xp.asarray(f1).T, joined))


def _client(scheduler, n_workers):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise ImportError(
            "kernels.kron.dist needs Dask distributed; install it with pip install 'accelsim[dist]'"
        ) from exc
    if scheduler is not None:
        return Client(scheduler), None
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def kron_matmul_dist(x, factors, grid=(2, 1), *, scheduler=None, client=None, device="auto"):
    """Compute X·(F1⊗…⊗FN) over a (row_blocks, col_blocks) grid of Dask tasks.

    Each cell holds rows ``r`` and the columns whose first-axis index falls in its P1
    block, multiplies F_N … F_2 locally (the fused part: no traffic between them), sends
    each other column block the slice of the result it needs, then multiplies F1. The
    result equals :func:`kernels.kron_matmul` on one process.

    Parameters
    ----------
    x, factors
        As for :func:`kernels.kron_matmul` (NumPy arrays).
    grid : (int, int)
        Row blocks (at most M) and column blocks (at most P1).
    scheduler : str, optional
        Address of a running Dask scheduler. Without it (and without ``client``) a local
        cluster of ``rows·cols`` single-threaded worker processes is started and closed.
    client : dask.distributed.Client, optional
        Use this client as is (tests pass an in-process one).
    device : {"auto", "cpu", "gpu"}
        Where each cell multiplies: ``auto`` uses the worker's GPU when it has one (the
        FastKron kernel through :func:`kernels.kron_matmul`), ``gpu`` insists on one.
        Data travels between cells in host memory either way, so the bytes reported are
        the same.

    Returns
    -------
    y : numpy.ndarray, shape (M, ∏Qi)
    report : CommReport
        Bytes of the one exchange against one exchange per factor (see :func:`kron_comm_bytes`)
        and where each cell ran (``backends``).
    """
    if device not in ("auto", "cpu", "gpu"):
        raise InputError(f"device: unknown value {device!r}; use auto, cpu or gpu")
    _, x, factors = _prepare(x, factors)
    if not isinstance(x, np.ndarray):
        raise InputError("x: kron_matmul_dist takes NumPy arrays; move CuPy data with kernels.to_numpy")
    m = x.shape[0]
    shapes = [f.shape for f in factors]
    rows, cols = _check_grid(grid, m, shapes[0][0])
    report = kron_comm_bytes(m, shapes, (rows, cols), x.dtype.itemsize)
    p1, q1 = shapes[0]
    tail = math.prod(q for _, q in shapes[1:])
    r_parts, a_parts, t_parts = _split(m, rows), _split(p1, cols), _split(tail, cols)
    own = None
    if client is None:
        client, own = _client(scheduler, rows * cols)
    try:
        x3 = x.reshape(m, p1, -1)
        tail_f = client.scatter(list(factors[1:]), broadcast=True, hash=False) if len(factors) > 1 else []
        f1 = client.scatter(factors[0], broadcast=True, hash=False)
        heads, labels = {}, []
        for i, (r0, r1) in enumerate(r_parts):
            parts = [np.ascontiguousarray(x3[r0:r1, a0:a1]) for a0, a1 in a_parts]
            blocks = client.scatter(parts, hash=False)
            tails = [client.submit(_local_tail, b, tail_f, t_parts, device, pure=False) for b in blocks]
            labels.extend(client.submit(_label, t, pure=False) for t in tails)
            for j in range(cols):
                pieces = [client.submit(_pick, t, j, pure=False) for t in tails]
                heads[i, j] = client.submit(_local_head, f1, *pieces, device=device, pure=False)
        done = client.gather(heads)
        report = dataclasses.replace(report, backends=tuple(client.gather(labels)))
    finally:
        if own is not None:
            client.close()
            own.close()
    y = np.empty((m, q1, tail), dtype=x.dtype)
    for (i, j), block in done.items():
        (r0, r1), (t0, t1) = r_parts[i], t_parts[j]
        y[r0:r1, :, t0:t1] = block
    return y.reshape(m, -1), report
