"""The per-volume pipeline every masker shares: read -> resample -> smooth -> gather voxels.

nilearn runs each step on the whole 4D array (resample, then smooth, then mask). All three are
spatial, so running them on one volume at a time gives the same numbers; only the clip of the
resampling needs the range of the whole input, which the caller provides when it is needed
(:func:`data_range`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from functools import partial
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .image import compute_dtype, count_nonfinite, finite_range, iter_volumes, warn_nonfinite


class Grid(NamedTuple):
    """A target grid for the data: 4x4 affine and 3D shape."""

    affine: NDArray
    shape: tuple[int, int, int]


def same_grid(shape_a, affine_a, shape_b, affine_b) -> bool:
    """nilearn's ``check_same_fov``: equal 3D shapes and ``allclose`` affines."""
    return tuple(shape_a[:3]) == tuple(shape_b[:3]) and np.allclose(affine_a, affine_b)


def one_blas_thread():
    """Hold BLAS to one thread while streaming (a context; a no-op without threadpoolctl).

    The reader thread decompresses the next volume meanwhile; on a small machine BLAS's own
    threads would fight it for the cores (a 60x slow-down of the small products was measured
    on 2 cores). threadpoolctl comes with the "fast" extra.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - depends on the environment
        return nullcontext()
    return threadpool_limits(1, user_api="blas")


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


def data_range(img, indices, *, name: str = "in_file") -> tuple[float, float]:
    """Finite min and max over the selected volumes (one streaming pass)."""
    low, high = np.inf, -np.inf
    for _, volume in iter_volumes(img, indices, dtype=compute_dtype(img), name=name):
        vmin, vmax = finite_range(volume)
        low, high = min(low, vmin), max(high, vmax)
    return low, high


def stream_rows(
    img,
    indices: NDArray[np.intp],
    gather: NDArray[np.intp],
    *,
    target: Grid | None = None,
    sigma: NDArray | None = None,
    clip_range: tuple[float, float] | None = None,
    observed_range: list[float] | None = None,
    name: str = "in_file",
) -> Iterator[tuple[NDArray[np.intp], NDArray]]:
    """Yield, per distinct selected volume, its rows' positions and its gathered voxel values.

    Parameters
    ----------
    img : SpatialImage
        The data (from :func:`~nipype_maskers.core.image.load_img`).
    indices : array of int
        The selected volumes (rows of the output, in order; repeats allowed).
    gather : array of int
        Flat Fortran-order indices of the voxels to keep, on the output grid.
    target : Grid, optional
        Resample each volume (cubic spline) onto this grid first.
    sigma : array of 3 floats, optional
        Gaussian sigma in voxels of the output grid (:func:`~.smoothing.fwhm_to_sigma`).
    clip_range : (min, max), optional
        With ``target``, the data range to clip to (with 0), as nilearn's ``resample_img``
        clips a 4D image with its whole range. None does not clip: only a caller that clips
        the gathered values itself afterwards (NiftiMasker, where clip commutes with masking)
        may skip it.
    observed_range : list of 2 floats, optional
        Updated in place with the finite min and max of the input volumes seen (for that
        caller's clip at the end).

    Yields
    ------
    positions : array of int
        Output rows for this volume.
    row : numpy.ndarray
        The gathered values, finite (NaN/inf set to 0; one warning at the end counts them).
    """
    from .smoothing import smooth_volume

    work_dtype = compute_dtype(img)
    grid_shape = target.shape if target is not None else tuple(img.shape[:3])
    smoother = None
    if sigma is not None and gather.size:
        smoother = partial(smooth_volume, sigma=sigma, needed=gathered_box(gather, grid_shape))
    with one_blas_thread():
        yield from _rows(img, indices, gather, target, smoother, clip_range, observed_range,
                         work_dtype, name)


def _rows(img, indices, gather, target, smoother, clip_range, observed_range, work_dtype,
          name):
    if target is not None:
        from .resampling import resample_volume

        buffer = np.empty(target.shape, dtype=work_dtype, order="F")
    nonfinite_voxels = np.zeros(img.shape[:3], dtype=bool)
    nonfinite_values = 0
    for positions, volume in iter_volumes(img, indices, dtype=work_dtype, name=name):
        if observed_range is not None:
            low, high = finite_range(volume)
            observed_range[0] = min(observed_range[0], low)
            observed_range[1] = max(observed_range[1], high)
        if target is not None:
            # resampling handles NaN itself (and puts it back): count only, then zero after
            nonfinite_values += count_nonfinite(volume, nonfinite_voxels, zero=False)
            volume = resample_volume(volume, img.affine, target.affine, target.shape,
                                     interpolation="continuous", clip=clip_range or False,
                                     out=buffer)
            count_nonfinite(volume, None)
        else:
            nonfinite_values += count_nonfinite(volume, nonfinite_voxels)
        if smoother is not None:
            smoother(volume)
        yield positions, volume.reshape(-1, order="F").take(gather)
    warn_nonfinite(name, nonfinite_voxels, nonfinite_values)
