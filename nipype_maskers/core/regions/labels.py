"""Signals of the regions of a labels atlas, on arrays, for streamed 4D data.

The array-level core of nilearn's ``NiftiLabelsMasker`` (``img_to_signals_labels`` and
``signals_to_img_labels``). The caller reads a 4D image a few volumes at a time; voxels are
addressed by flat **Fortran-order** indices into the 3D grid (``vol.reshape(-1, order='F')`` is
a free view of a NIfTI volume). :func:`prepare_labels` computes once which voxels to gather,
grouped by region; :func:`labels_signals` reduces a gathered block ``(n_samples, n_voxels)`` to
``(n_samples, n_regions)`` without any Python loop over volumes or voxels.

Deliberate differences from nilearn 0.14.1:

- **Stable columns** (nilearn bug B6). Every non-background label of the *atlas* gets a column,
  in ascending order. A region emptied by the mask keeps its column, filled with NaN (n/a), and
  its size is 0; nilearn drops the column and shifts the ones after it.
- **Names never silently misaligned** (nilearn bug B7): see :func:`region_names` (defined in
  :mod:`nipype_maskers.core.regions.label_names`, re-exported here with :func:`read_lut`).
- Labels are integers: a float atlas must hold integer values (nilearn accepts ``1.5`` and names
  the region ``'1.5'``; names of a float atlas are ``'1'``, not nilearn's ``'1.0'``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .label_names import _check_background, read_lut, region_names

__all__ = [
    "STRATEGIES",
    "LabelRegions",
    "atlas_labels",
    "labels_signals",
    "prepare_labels",
    "read_lut",
    "region_coverage",
    "region_names",
    "signals_to_labels_image_data",
]

STRATEGIES = ("mean", "median", "sum", "minimum", "maximum", "standard_deviation", "variance")
Strategy = Literal[
    "mean", "median", "sum", "minimum", "maximum", "standard_deviation", "variance"
]


@dataclass(frozen=True, eq=False)
class LabelRegions:
    """The voxels of each region of a labels atlas, as computed by :func:`prepare_labels`.

    Attributes
    ----------
    labels : ndarray of int64, shape (n_regions,)
        Every non-background label value of the atlas, ascending. Regions emptied by the mask
        are kept (size 0), so the columns are the same whatever the mask.
    voxel_index : ndarray of intp, shape (n_voxels,)
        Flat Fortran-order indices of the voxels to gather, grouped by region (in the order of
        ``labels``), ascending within a region.
    starts : ndarray of int64, shape (n_regions,)
        Start of each region's group in ``voxel_index``.
    sizes : ndarray of int64, shape (n_regions,)
        Voxels per region after masking (0: emptied by the mask).
    atlas_sizes : ndarray of int64, shape (n_regions,)
        Voxels per region in the atlas, before masking.
    shape : tuple of 3 int
        Shape of the 3D grid.
    background_label : int
        The label value of "no region".

    The arrays are read-only; equality is identity (``eq=False``: arrays have no truth value).
    """

    labels: NDArray[np.int64]
    voxel_index: NDArray[np.intp]
    starts: NDArray[np.int64]
    sizes: NDArray[np.int64]
    atlas_sizes: NDArray[np.int64]
    shape: tuple[int, int, int]
    background_label: int = 0

    @property
    def n_regions(self) -> int:
        """Number of regions (output columns)."""
        return int(self.labels.size)

    @property
    def n_voxels(self) -> int:
        """Number of gathered voxels (columns of the ``values`` given to labels_signals)."""
        return int(self.voxel_index.size)

    @property
    def empty_labels(self) -> NDArray[np.int64]:
        """Labels of the regions emptied by the mask (their signals are NaN)."""
        return self.labels[self.sizes == 0]


# --------------------------------------------------------------------------- input checks


def _as_3d(data: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(data)
    if arr.ndim == 4 and arr.shape[3] == 1:  # one volume: accepted as 3D, as nilearn does
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f"{name} must be a 3D image; got an array of shape {arr.shape}")
    return arr


def _flat_labels(labels_data: ArrayLike, background_label: int) -> tuple[np.ndarray, tuple]:
    """Flat Fortran-order int64 labels; non-finite values become background (nilearn: 0)."""
    arr = _as_3d(labels_data, "labels_img")
    kind = arr.dtype.kind
    if kind not in "biuf":
        raise TypeError(f"labels_img must hold integer label values; got dtype {arr.dtype}")
    flat = arr.reshape(-1, order="F")
    if kind == "f":
        finite = np.isfinite(flat)
        bad = finite & (flat != np.round(flat))
        if bad.any():
            example = flat[np.flatnonzero(bad)[0]].item()
            raise ValueError(
                f"labels_img must hold integer label values; found {int(bad.sum())} voxels with "
                f"non-integer values such as {example!r}. A labels atlas must be resampled with "
                "nearest-neighbour interpolation."
            )
        flat = np.where(finite, flat, background_label)
    return flat.astype(np.int64, copy=False), arr.shape


def _flat_mask(mask_data: ArrayLike | None, shape: tuple) -> np.ndarray | None:
    if mask_data is None:
        return None
    arr = _as_3d(mask_data, "mask_img")
    if arr.shape != shape:
        raise ValueError(
            f"mask_img has shape {arr.shape}; expected the shape of labels_img {shape}"
        )
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"mask_img must be a boolean or numeric array; got dtype {arr.dtype}")
    flat = arr.reshape(-1, order="F")
    if flat.dtype != bool:  # nilearn: non-finite -> 0, then any non-zero value is in the mask
        flat = np.isfinite(flat) & (flat != 0)
    return flat


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.setflags(write=False)
    return arr


# --------------------------------------------------------------------------- extraction


def prepare_labels(
    labels_data: ArrayLike,
    mask_data: ArrayLike | None = None,
    *,
    background_label: float = 0,
) -> LabelRegions:
    """Compute once which voxels to gather for each region of a labels atlas.

    Parameters
    ----------
    labels_data : array, shape (x, y, z)
        The atlas: integers, or floats holding integer values. Non-finite values are background
        (nilearn sets them to 0).
    mask_data : array of bool, shape (x, y, z), optional
        Voxels to use; voxels outside it are background. Numeric masks: finite non-zero is in.
    background_label : int
        The label value of "no region".

    Returns
    -------
    LabelRegions

    Raises
    ------
    ValueError
        ``labels_data`` is not 3D, holds non-integer values or only background; ``mask_data``
        has another shape or removes every region ("No region left after masking").

    Examples
    --------
    >>> atlas = np.zeros((2, 2, 1), dtype=int)
    >>> atlas[0, :, 0], atlas[1, 1, 0] = 5, 2
    >>> regions = prepare_labels(atlas)
    >>> regions.labels, regions.voxel_index, regions.sizes
    (array([2, 5]), array([3, 0, 2]), array([1, 2]))
    """
    background = _check_background(background_label)
    flat, shape = _flat_labels(labels_data, background)
    in_region = flat != background
    labels, atlas_sizes = np.unique(flat[in_region], return_counts=True)
    if labels.size == 0:
        raise ValueError(
            f"labels_img holds only the background label {background}; expected at least one "
            "region"
        )
    mask = _flat_mask(mask_data, shape)
    if mask is not None:
        in_region &= mask
    voxel_index = np.flatnonzero(in_region)
    kept = flat[voxel_index]
    order = np.argsort(kept, kind="stable")
    voxel_index = voxel_index[order]
    sizes = np.bincount(np.searchsorted(labels, kept[order]), minlength=labels.size)
    if voxel_index.size == 0:
        raise ValueError(
            f"No region left after masking: mask_img excludes every voxel of the {labels.size} "
            "regions of labels_img; expected a mask that overlaps the atlas"
        )
    sizes = sizes.astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    return LabelRegions(
        labels=_readonly(labels.astype(np.int64)),
        voxel_index=_readonly(voxel_index.astype(np.intp, copy=False)),
        starts=_readonly(starts),
        sizes=_readonly(sizes),
        atlas_sizes=_readonly(atlas_sizes.astype(np.int64)),
        shape=tuple(int(n) for n in shape),
        background_label=background,
    )


def atlas_labels(labels_data: ArrayLike, *, background_label: float = 0
                 ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The labels of an atlas (ascending, background left out) and their voxel counts.

    :func:`prepare_labels`'s ``labels`` and ``atlas_sizes`` without the rest: a count per
    value (no sort of the voxels) when the labels span a small range, as atlases' do.

    Examples
    --------
    >>> atlas_labels(np.array([[[0, 5], [5, 2]]]))
    (array([2, 5]), array([1, 2]))
    """
    background = _check_background(background_label)
    flat, _ = _flat_labels(labels_data, background)
    low, high = (int(flat.min()), int(flat.max())) if flat.size else (0, 0)
    if high - low < 1 << 22:
        counts = np.bincount(flat - low, minlength=high - low + 1)
        if low <= background <= high:
            counts[background - low] = 0
        labels = np.flatnonzero(counts)
        sizes, labels = counts[labels], labels + low
    else:
        labels, sizes = np.unique(flat[flat != background], return_counts=True)
    if labels.size == 0:
        raise ValueError(
            f"labels_img holds only the background label {background}; expected at least one "
            "region"
        )
    return labels.astype(np.int64), sizes.astype(np.int64)


def _median(values: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Median of each region slice, computed as ``scipy.ndimage.median`` does."""
    floating = values.dtype.kind == "f"
    out = np.empty((values.shape[0], starts.size), dtype=values.dtype if floating else float)
    for j, (start, size) in enumerate(zip(starts.tolist(), sizes.tolist(), strict=True)):
        lo, hi = (size - 1) // 2, size // 2
        part = np.partition(values[:, start : start + size], [lo, hi], axis=1)
        low, high = part[:, lo], part[:, hi]
        if not floating:
            low, high = low.astype(float), high.astype(float)
        out[:, j] = (low + high) / 2.0  # in the input's float type, as scipy
    return out


def _rows_reduceat(ufunc: np.ufunc, arr: np.ndarray, starts: np.ndarray, dtype=None
                   ) -> np.ndarray:
    """``ufunc.reduceat(arr, starts, axis=1)``, one row at a time: numpy's reduceat along
    the last axis of a 2D array is several times slower than on each row (measured 7x for
    a 400-region atlas), and a row's segments are the same sums either way."""
    out = np.empty((arr.shape[0], starts.size), dtype=dtype or arr.dtype)
    for row, values in zip(out, arr, strict=True):
        ufunc.reduceat(values, starts, dtype=dtype, out=row)
    return out


def labels_signals(
    values: ArrayLike, regions: LabelRegions, strategy: Strategy = "mean"
) -> NDArray[np.floating]:
    """Reduce the gathered voxels of a chunk of volumes to one value per region.

    Gives the numbers of nilearn's ``img_to_signals_labels``, i.e. ``scipy.ndimage.<strategy>``
    per volume (population std and variance, ``ddof=0``), but vectorized over the whole block:
    segment reductions (``np.add.reduceat`` ...) with float64 accumulation; the median loops over
    regions, never over volumes or voxels.

    Parameters
    ----------
    values : array, shape (n_samples, regions.n_voxels) or (regions.n_voxels,)
        The voxels ``regions.voxel_index`` of each volume, e.g.
        ``vol.reshape(-1, order='F')[regions.voxel_index]``. Non-finite values count as 0, as in
        nilearn. The array is not modified; a C-contiguous block is fastest.
    regions : LabelRegions
        From :func:`prepare_labels`.
    strategy : {'mean', 'median', 'sum', 'minimum', 'maximum', 'standard_deviation', \
'variance'}
        The reduction.

    Returns
    -------
    ndarray, shape (n_samples, regions.n_regions) or (regions.n_regions,)
        float32 for float32 input, float64 otherwise (as nilearn). Regions emptied by the mask
        give NaN columns (nilearn drops them).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}. Accepted: {', '.join(STRATEGIES)}")
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"values must be a numeric array; got dtype {arr.dtype}")
    one_sample = arr.ndim == 1
    if one_sample:
        arr = arr[np.newaxis]
    if arr.ndim != 2 or arr.shape[1] != regions.n_voxels:
        raise ValueError(
            f"values has shape {np.shape(values)}; expected (n_samples, {regions.n_voxels}), the "
            "gathered voxels regions.voxel_index of each sample"
        )
    out_dtype = np.float32 if arr.dtype == np.float32 else np.float64
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    # One cheap pass (no temporary array): a non-finite sum means some value is non-finite,
    # or that the float32 sum overflowed, in which case the exact check below is merely redundant.
    if arr.dtype.kind == "f" and not np.isfinite(np.add.reduce(arr, axis=None)):
        arr = np.where(np.isfinite(arr), arr, 0).astype(arr.dtype, copy=False)

    nonempty = regions.sizes > 0
    starts, sizes = regions.starts[nonempty], regions.sizes[nonempty]
    if strategy == "median":
        reduced = _median(arr, starts, sizes)
    elif strategy == "minimum":
        reduced = _rows_reduceat(np.minimum, arr, starts)
    elif strategy == "maximum":
        reduced = _rows_reduceat(np.maximum, arr, starts)
    else:
        reduced = _rows_reduceat(np.add, arr, starts, dtype=np.float64)
        if strategy != "sum":
            reduced /= sizes
        if strategy in ("variance", "standard_deviation"):
            # Two passes, as scipy: the mean, then the centred sum of squares (float64).
            centred = np.repeat(reduced, sizes, axis=1)
            np.subtract(centred, arr, out=centred)
            np.multiply(centred, centred, out=centred)
            reduced = _rows_reduceat(np.add, centred, starts)
            reduced /= sizes
            if strategy == "standard_deviation":
                np.sqrt(reduced, out=reduced)
    out = np.full((arr.shape[0], regions.n_regions), np.nan, dtype=out_dtype)
    out[:, nonempty] = reduced
    return out[0] if one_sample else out


def region_coverage(
    regions: LabelRegions, fov_mask: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Fraction of each region's atlas voxels that are used.

    Parameters
    ----------
    regions : LabelRegions
        From :func:`prepare_labels`.
    fov_mask : array of bool, shape regions.shape, optional
        The voxels of the atlas grid that lie inside the data's field of view.

    Returns
    -------
    ndarray of float64, shape (regions.n_regions,)
        Voxels kept by the mask (and inside ``fov_mask``) over the region's atlas voxels,
        in [0, 1].
    """
    kept = regions.sizes
    if fov_mask is not None:
        fov = _as_3d(fov_mask, "fov_mask")
        if fov.shape != regions.shape:
            raise ValueError(
                f"fov_mask has shape {fov.shape}; expected the atlas shape {regions.shape}"
            )
        inside = fov.reshape(-1, order="F")[regions.voxel_index] != 0
        region_of_voxel = np.repeat(np.arange(regions.n_regions), regions.sizes)
        kept = np.bincount(region_of_voxel[inside], minlength=regions.n_regions)
    return kept / regions.atlas_sizes


# --------------------------------------------------------------------------- inverse


def _check_signals(signals: ArrayLike, n_regions: int) -> np.ndarray:
    arr = np.asarray(signals)
    if arr.ndim not in (1, 2) or arr.shape[-1] != n_regions:
        raise ValueError(
            f"signals has shape {arr.shape}; expected (n_samples, {n_regions}) or "
            f"({n_regions},), one column per region"
        )
    return arr


def _paint(signals: np.ndarray, voxel_index: np.ndarray, columns: np.ndarray, shape: tuple):
    """Fortran-ordered (x, y, z[, t]) array: voxel ``voxel_index[i]`` gets ``columns[i]``."""
    two_d = signals.reshape(-1, signals.shape[-1])
    flat = np.zeros((two_d.shape[0], int(np.prod(shape))), dtype=signals.dtype)
    flat[:, voxel_index] = two_d[:, columns]
    # (n_samples, n_voxels) C order is the memory of an (x, y, z, n_samples) F-order array.
    out = flat.T.reshape((*shape, two_d.shape[0]), order="F")
    return out[..., 0] if signals.ndim == 1 else out


def signals_to_labels_image_data(
    signals: ArrayLike,
    labels_data: ArrayLike,
    regions_labels: ArrayLike,
    *,
    mask_data: ArrayLike | None = None,
    background_label: float = 0,
) -> np.ndarray:
    """Paint region signals back into the atlas: the inverse of :func:`labels_signals`.

    Same as nilearn's ``signals_to_img_labels`` except for the columns: ``signals`` has one
    column per value of ``regions_labels`` (all atlas regions, emptied ones included), where
    nilearn wants one per region left after masking.

    Parameters
    ----------
    signals : array, shape (n_samples, n_regions) or (n_regions,)
        Column k belongs to label ``regions_labels[k]``.
    labels_data : array, shape (x, y, z)
        The atlas.
    regions_labels : array of int, shape (n_regions,)
        The label of each column, e.g. ``LabelRegions.labels``.
    mask_data : array of bool, shape (x, y, z), optional
        Voxels outside it are set to 0.
    background_label : int
        The label value of "no region".

    Returns
    -------
    ndarray, shape (x, y, z, n_samples) or (x, y, z), Fortran-ordered
        The dtype of ``signals``. Each voxel of label ``regions_labels[k]`` gets column k (a NaN
        column paints NaN); background and voxels outside the mask are 0.
    """
    background = _check_background(background_label)
    flat, shape = _flat_labels(labels_data, background)
    region_labels = np.asarray(regions_labels)
    if region_labels.ndim != 1 or region_labels.dtype.kind not in "biuf":
        raise ValueError(f"labels must be a 1D array of label values; got {regions_labels!r}")
    signals = _check_signals(signals, region_labels.size)
    keep = flat != background
    mask = _flat_mask(mask_data, shape)
    if mask is not None:
        keep &= mask
    voxel_index = np.flatnonzero(keep)
    if region_labels.size == 0:
        raise ValueError("labels is empty; expected one label value per column of signals")
    order = np.argsort(region_labels, kind="stable")
    sorted_labels = region_labels[order]
    voxel_labels = flat[voxel_index]
    pos = np.searchsorted(sorted_labels, voxel_labels).clip(max=sorted_labels.size - 1)
    found = sorted_labels[pos] == voxel_labels
    if not found.all():
        missing = np.unique(voxel_labels[~found])
        raise ValueError(
            f"labels_img has regions {missing[:10].tolist()} that are not in labels "
            f"{region_labels.tolist()[:20]}; expected one label (and column) per atlas region"
        )
    return _paint(signals, voxel_index, order[pos], shape)
