"""The per-volume pipeline every masker shares: read -> resample -> smooth -> gather voxels.

nilearn runs each step on the whole 4D array (resample, then smooth, then mask). All three are
spatial, so running them on one volume at a time gives the same numbers; only the clip of the
resampling needs the range of the whole input, which the caller provides when it is needed
(:func:`data_range`).
"""

from __future__ import annotations

import mmap
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import NamedTuple, TypeVar

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from .images import ImageError, compute_dtype, find_nonfinite, finite_range, warn_nonfinite
from .volumes import VolumeSource, iter_volumes

T = TypeVar("T")

#: below this, page faults cost little and ``numpy.empty`` is as fast
_PREFAULT_BYTES = 1 << 24


class Grid(NamedTuple):
    """A target grid for the data: 4x4 affine and 3D shape."""

    affine: NDArray
    shape: tuple[int, int, int]


def default_threads() -> int:
    """Threads a reading pass uses when the caller does not say: the CPUs this process may
    run on, at most 4 (beyond that, decompression, which is sequential, is the limit)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


def check_threads(n_threads: int | None, *, name: str = "n_threads") -> int:
    """Validate a thread count; None means :func:`default_threads`."""
    if n_threads is None:
        return default_threads()
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)) \
            or n_threads < 1:
        raise ValueError(f"{name}: expected a whole number of threads >= 1, got {n_threads!r}")
    return int(n_threads)


def blas_threads(n_threads: int = 1):
    """Hold BLAS to ``n_threads`` threads (a context; a no-op without threadpoolctl).

    While streaming, our own threads keep the cores busy; BLAS's threads would fight them
    (a 60x slow-down of the small products was measured on 2 cores). threadpoolctl comes
    with the "fast" extra.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - depends on the environment
        return nullcontext()
    return threadpool_limits(n_threads, user_api="blas")


def prefaulted_empty(shape: tuple[int, ...], dtype: DTypeLike) -> NDArray:
    """``numpy.empty``, with its memory mapped up front when it is large (Linux).

    Filling a fresh 270 MB matrix row by row costs one page fault per 4 KB; in a virtual
    machine that was 0.83 s, more than the computation it held. ``MAP_POPULATE`` maps the
    pages in one call (0.15 s). The result is an ordinary writable array.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    populate = getattr(mmap, "MAP_POPULATE", None)
    if populate is None or nbytes < _PREFAULT_BYTES:
        return np.empty(shape, dtype=dtype)
    try:
        memory = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
    except OSError:  # pragma: no cover - e.g. a locked-memory limit
        return np.empty(shape, dtype=dtype)
    return np.frombuffer(memory, dtype=dtype).reshape(shape)


def finite_block(values: ArrayLike, n_voxels: int, dtype: np.dtype) -> np.ndarray:
    """Check a block of gathered voxels (n_samples, n_voxels); return it in ``dtype`` with
    non-finite values set to 0 (nilearn extracts from data made finite)."""
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        raise TypeError(f"values must hold real numbers, got dtype {values.dtype}")
    if values.ndim != 2 or values.shape[1] != n_voxels:
        raise ValueError(
            f"values must be 2D (n_samples, {n_voxels}) (the gathered voxels), "
            f"got shape {values.shape}"
        )
    values = values.astype(dtype, copy=False)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        # nilearn extracts from safe_get_data(imgs, ensure_finite=True): NaN/inf count as 0.
        values = np.where(np.isfinite(values), values, 0).astype(dtype, copy=False)
    return values


def gathered_box(gather: NDArray[np.intp], shape) -> tuple[NDArray, NDArray]:
    """Inclusive bounding box (lower, upper corners) of flat Fortran-order voxel indices."""
    ijk = np.unravel_index(gather, tuple(shape), order="F")
    return (np.array([a.min() for a in ijk]), np.array([a.max() for a in ijk]))


def data_range(img, indices, *, name: str = "in_file", n_threads: int = 2
               ) -> tuple[float, float]:
    """Finite min and max over the selected volumes (one streaming pass)."""
    low, high = np.inf, -np.inf
    for _, volume in iter_volumes(img, indices, dtype=compute_dtype(img), name=name,
                                  n_threads=n_threads):
        vmin, vmax = finite_range(volume)
        low, high = min(low, vmin), max(high, vmax)
    return low, high


def map_volumes(
    img,
    indices: NDArray[np.intp],
    function: Callable[[NDArray], T],
    *,
    dtype: np.dtype,
    n_threads: int = 1,
    name: str = "in_file",
) -> Iterator[tuple[NDArray[np.intp], T]]:
    """Yield ``(positions, function(volume))`` for the selected volumes, in file order.

    With ``n_threads`` > 1, that many threads each read the next volume (one at a time, since
    a ``.nii.gz`` is one sequential stream) and then run ``function`` on it, side by side:
    decompression, resampling and smoothing (numpy, scipy and zlib/ISA-L release the GIL)
    keep every thread busy. Results come back in order. ``function`` may modify the volume in
    place; what it returns must not refer to the volume (a buffer that is reused).

    Parameters
    ----------
    img : SpatialImage
        The data (from :func:`~nipype_maskers.core.io.images.load_img`).
    indices : array of int
        The selected volumes (repeats allowed; see :func:`~.volumes.iter_volumes`).
    function : callable
        Work on one volume, independent of the other volumes.
    dtype : numpy dtype
        The volumes' dtype.
    n_threads : int
        1 runs everything in the calling thread.
    """
    indices = np.asarray(indices, dtype=np.intp)
    if n_threads <= 1:
        for positions, volume in iter_volumes(img, indices, dtype=dtype, name=name,
                                              n_threads=1):
            yield positions, function(volume)
        return
    # one more task in flight than threads, so a thread that finishes finds the next ready;
    # each task in flight owns a slot (a raw buffer), so a buffer is never read into twice
    in_flight = n_threads + 1
    with VolumeSource(img, indices, dtype, name, slots=in_flight) as source:
        steps = len(source.groups)
        turn = threading.Condition()
        state = {"next": 0, "failed": False}
        free_slots: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(in_flight):
            free_slots.put(slot)

        def task(step: int):
            slot = free_slots.get()
            try:
                # reads happen in step order: tasks start in submission order, and a task
                # waits only for earlier ones, which are running already (no deadlock)
                with turn:
                    turn.wait_for(lambda: state["next"] == step)
                    try:
                        if state["failed"]:
                            raise ImageError(f"{name}: reading stopped at an earlier volume")
                        raw = source.read(step, slot)
                    except BaseException:
                        state["failed"] = True
                        raise
                    finally:
                        state["next"] += 1
                        turn.notify_all()
                return function(source.convert(raw))
            finally:
                free_slots.put(slot)

        pool = ThreadPoolExecutor(n_threads)
        try:
            pending = deque(pool.submit(task, step) for step in range(min(in_flight, steps)))
            submitted = len(pending)
            for positions in source.groups:
                result = pending.popleft().result()
                if submitted < steps:
                    pending.append(pool.submit(task, submitted))
                    submitted += 1
                yield positions, result
        finally:
            # tasks not started are dropped; running ones finish before the file is closed
            pool.shutdown(wait=True, cancel_futures=True)


def stream_rows(
    img,
    indices: NDArray[np.intp],
    gather: NDArray[np.intp],
    *,
    target: Grid | None = None,
    sigma: NDArray | None = None,
    clip_range: tuple[float, float] | None = None,
    observed_range: list[float] | None = None,
    n_threads: int = 2,
    name: str = "in_file",
    reduce_row: Callable[[NDArray], NDArray] | None = None,
    keep_unsmoothed: bool = False,
    keep_volume: bool = False,
) -> Iterator[tuple[NDArray[np.intp], NDArray]]:
    """Yield, per distinct selected volume, its rows' positions and its gathered voxel values.

    Parameters
    ----------
    img : SpatialImage
        The data (from :func:`~nipype_maskers.core.io.images.load_img`).
    indices : array of int
        The selected volumes (rows of the output, in order; repeats allowed).
    gather : array of int
        Flat Fortran-order indices of the voxels to keep, on the output grid.
    target : Grid, optional
        Resample each volume (cubic spline) onto this grid first.
    sigma : array of 3 floats, optional
        Gaussian sigma in voxels of the output grid (:func:`~.spatial.smoothing.fwhm_to_sigma`).
    clip_range : (min, max), optional
        With ``target``, the data range to clip to (with 0), as nilearn's ``resample_img``
        clips a 4D image with its whole range. None does not clip: only a caller that clips
        the gathered values itself afterwards (NiftiMasker, where clip commutes with masking)
        may skip it.
    observed_range : list of 2 floats, optional
        Updated in place with the finite min and max of the input volumes seen (for that
        caller's clip at the end).
    n_threads : int
        Threads that read and process volumes side by side (:func:`map_volumes`). Without
        resampling or smoothing there is little to share: reading plus one thread.
    reduce_row : callable, optional
        Applied to each gathered row (shape (1, n_voxels)) in the thread that gathered it;
        its result (first row) is yielded instead of the row. A reduction per volume then
        runs beside the reading instead of after it.
    keep_unsmoothed, keep_volume : bool
        Yield ``(row, unsmoothed row or None, volume or None)`` for each volume instead of the
        row: with ``sigma``, the same voxels before the smoothing; the whole input volume in
        float32 as read (non-finite values kept), e.g. for a mean image; from the same read.

    Yields
    ------
    positions : array of int
        Output rows for this volume.
    row : numpy.ndarray
        The gathered values, finite (NaN/inf set to 0; one warning at the end counts them).
    """
    work_dtype = compute_dtype(img)
    grid_shape = target.shape if target is not None else tuple(img.shape[:3])
    needed = gathered_box(gather, grid_shape) if sigma is not None and gather.size else None
    process = VolumeToRow(img.affine, gather, target, sigma, needed, clip_range,
                          observed_range is not None, reduce_row, keep_unsmoothed,
                          keep_volume)
    if target is None and needed is None:
        # gathering is cheap: more threads would only wait for the decompression
        n_threads = min(n_threads, 2)
    nonfinite_voxels = np.zeros(img.shape[:3], dtype=bool)
    nonfinite_values = 0
    with blas_threads(1):
        volumes = map_volumes(img, indices, process, dtype=work_dtype, n_threads=n_threads,
                              name=name)
        for positions, (row, observed, nonfinite) in volumes:
            if observed is not None:
                observed_range[0] = min(observed_range[0], observed[0])
                observed_range[1] = max(observed_range[1], observed[1])
            if nonfinite is not None:
                nonfinite_values += int(np.count_nonzero(nonfinite))
                nonfinite_voxels |= nonfinite
            yield positions, row
    warn_nonfinite(name, nonfinite_voxels, nonfinite_values)


class VolumeToRow:
    """One volume -> its gathered row: finite check, resample, smooth, gather (the work of
    :func:`stream_rows` on each volume; also a one-pass mask's, in the voxel masker).

    Thread-safe: each thread gets its own resampling buffer; what is counted (non-finite
    values, the observed range) is returned with the row for the caller to add up.
    """

    def __init__(self, affine, gather, target, sigma, needed, clip_range, observe,
                 reduce_row=None, keep_unsmoothed=False, keep_volume=False):
        from ..spatial.resampling import resample_volume
        from ..spatial.smoothing import smooth_volume

        self.affine, self.gather, self.target = affine, gather, target
        self.sigma, self.needed, self.clip_range = sigma, needed, clip_range
        self.observe, self.reduce_row = observe, reduce_row
        self.keep_unsmoothed = keep_unsmoothed and sigma is not None
        self.keep_volume = keep_volume
        self._resample, self._smooth = resample_volume, smooth_volume
        self._local = threading.local()

    def __call__(self, volume: NDArray):
        kept = volume.astype(np.float32, order="F") if self.keep_volume else None
        observed = finite_range(volume) if self.observe else None
        if self.target is not None:
            buffer = getattr(self._local, "buffer", None)
            if buffer is None:
                buffer = np.empty(self.target.shape, dtype=volume.dtype, order="F")
                self._local.buffer = buffer
            # resampling handles NaN itself (and puts it back): count only, then zero after
            nonfinite = find_nonfinite(volume, zero=False)
            volume = self._resample(volume, self.affine, self.target.affine,
                                    self.target.shape, interpolation="continuous",
                                    clip=self.clip_range or False, out=buffer)
            find_nonfinite(volume)
        else:
            nonfinite = find_nonfinite(volume)
        unsmoothed = (volume.reshape(-1, order="F").take(self.gather)
                      if self.keep_unsmoothed else None)
        if self.sigma is not None and self.needed is not None:
            self._smooth(volume, self.sigma, self.needed)
        if self.reduce_row is not None and unsmoothed is None and kept is None:
            # the row is reduced here and dropped: one buffer per thread, not one per volume
            gathered = getattr(self._local, "row", None)
            if gathered is None:
                gathered = self._local.row = np.empty((1, self.gather.size), volume.dtype)
            volume.reshape(-1, order="F").take(self.gather, out=gathered[0])
            return self.reduce_row(gathered)[0], observed, nonfinite
        row = volume.reshape(-1, order="F").take(self.gather)
        if self.keep_unsmoothed or self.keep_volume:
            return (row, unsmoothed, kept), observed, nonfinite
        return row, observed, nonfinite

