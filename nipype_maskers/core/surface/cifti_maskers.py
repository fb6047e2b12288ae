"""Parcel and map signals of a CIFTI-2 dense time series (``.dtseries.nii``).

:func:`cifti_labels_masker` gives Connectome Workbench's ``-cifti-parcellate -method MEAN``
(and nilearn's six other strategies) with XCP-D's rule: grayordinates whose series are all zero
or hold a non-finite value are left out of their parcel (Workbench 1.5 would average the zeros
in and let one NaN spoil the parcel; XCP-D passes it such a mask as ``-cifti-weights``), and the
coverage of a parcel is the fraction of its grayordinates kept. :func:`cifti_maps_masker` gives
the least-squares signals of ``.dscalar.nii`` maps, as the volume maps masker does.

The arithmetic is the volume maskers' (:mod:`~nipype_maskers.core.regions.labels`,
:mod:`~nipype_maskers.core.regions.maps`, their stable-column finishing and
:func:`~nipype_maskers.core.signal.cleaning.clean`): the grayordinates are a grid of shape
``(n, 1, 1)``. The data are read a block of grayordinates at a time (whole series, contiguous on
disk), grouped by parcel, so a dtseries is read once and never held twice.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np
from nibabel import cifti2
from numpy.typing import DTypeLike, NDArray

from ..io.volumes import resolve_volumes
from ..regions.label_names import region_names
from ..regions.labels import (
    LabelRegions,
    labels_signals,
    prepare_labels,
    signals_to_labels_image_data,
)
from ..regions.maps import MapsRegions, maps_signals, prepare_maps, signals_to_maps_image_data
from ..regions.maskers import RegionSignals, _finish
from ..voxels.masker import check_dtype, select_clean_args
from .cifti import (
    CiftiFile,
    MappedHashing,
    dtseries_image,
    grayordinate_index,
    label_table,
    load_cifti,
    parcels_axis,
    release_pages,
    series_data,
    series_t_r,
    surface_mask,
)

__all__ = [
    "CiftiSignals",
    "cifti_labels_image",
    "cifti_labels_masker",
    "cifti_maps_image",
    "cifti_maps_masker",
    "series_from_rows",
    "series_matrix",
]

CiftiInput = str | os.PathLike | cifti2.Cifti2Image | CiftiFile

#: Grayordinates gathered per block (whole series): ~20 MB for 1,200 float32 volumes.
_BLOCK_COLUMNS = 4096


class CiftiSignals(NamedTuple):
    """What the CIFTI maskers return."""

    regions: RegionSignals          #: signals, names, ids, sizes, coverage, volumes
    vertex_counts: NDArray          #: kept surface vertices per region (column)
    voxel_counts: NDArray           #: kept subcortical voxels per region (column)
    t_r: float | None               #: the dtseries' TR in seconds (SeriesAxis.step), if in time
    grayordinates: Any = None       #: the dtseries' BrainModelAxis
    keys: NDArray | None = None     #: labels masker: the atlas key of each grayordinate

    def parcels(self):
        """The regions as a ParcelsAxis on the data's grayordinates (for a ``.ptseries.nii``);
        labels masker only."""
        if self.keys is None:
            raise ValueError("parcels: only the labels masker's regions are parcels")
        return parcels_axis(self.grayordinates, self.keys, self.regions.ids, self.regions.names)


def _open_series(img: CiftiInput, volumes, dtype, clean_args, name, data=None):
    img = load_cifti(img, "dtseries", name=name)
    if data is None:
        data = series_data(img)
    elif tuple(data.shape) != img.shape:
        raise ValueError(f"data: {data.shape[0]} x {data.shape[1]} values; {name} holds "
                         f"{img.shape[0]} time points of {img.shape[1]} grayordinates; "
                         f"expected the data of {name}")
    indices = resolve_volumes(volumes, data.shape[0], name="volumes")
    if indices.size == 0:
        raise ValueError("volumes: the selection is empty; select at least one volume")
    rows = None if np.array_equal(indices, np.arange(data.shape[0])) else indices
    clean_args = select_clean_args(clean_args, indices, data.shape[0])
    return img, data, indices, rows, check_dtype(dtype), clean_args


def _kept_series(data: NDArray, columns: NDArray[np.intp], rows: NDArray[np.intp] | None
                 ) -> tuple[NDArray, NDArray[np.bool_]]:
    """The kept grayordinates' series of ``columns`` as a C-ordered (rows, kept) block, and
    which were kept (XCP-D's rule: all finite and not all zero)."""
    if data.flags.c_contiguous and not data.flags.f_contiguous:
        # a matrix in memory (CiftiMasker's, from series_from_rows): gathered row by row,
        # already (rows, columns); the same values as from the file's series
        series = data[:, columns] if rows is None else data[np.ix_(rows, columns)]
        kept = _kept(series, axis=0)
        return (series[:, kept] if not kept.all() else series), kept
    series = np.asarray(data.T[columns])  # one contiguous series per grayordinate
    if rows is not None:
        series = series[:, rows]
    kept = _kept(series, axis=1)
    return _transposed(series[kept] if not kept.all() else series), kept


def _kept(series: NDArray, axis: int) -> NDArray[np.bool_]:
    """XCP-D's rule for the grayordinates' series along ``axis``: all finite, not all 0."""
    return np.isfinite(series).all(axis=axis) & (series != 0).any(axis=axis)


def _transposed(series: NDArray, tile: int = 256, *, out: NDArray | None = None) -> NDArray:
    """``series.T`` in C order (labels_signals' segment reductions run ~3x faster on it),
    copied in tiles of rows: ~5x faster than one strided copy, which misses the cache.
    ``out``: where to write it (a slice of a larger array)."""
    if out is None:
        out = np.empty(series.shape[::-1], dtype=series.dtype)
    for start in range(0, series.shape[0], tile):
        out[:, start:start + tile] = series[start:start + tile].T
    return out


def series_matrix(img: CiftiInput, *, name: str = "in_file",
                  block_columns: int = _BLOCK_COLUMNS) -> NDArray:
    """Every grayordinate's series as a C-ordered (time points, grayordinates) matrix.

    The dtseries read once, in file order (a :func:`~..io.hashing.hash_reads` digest of the
    file is fed by this read; a memory map's pages are released as it goes). Float data
    keep their dtype; integer data become float64 (exact), which :func:`series_from_rows`
    turns back. The matrix the CIFTI maskers take as ``data`` instead of reading the file.
    """
    img = load_cifti(img, "dtseries", name=name)
    data = series_data(img)
    dtype = data.dtype if data.dtype.kind == "f" else np.dtype(np.float64)
    out = np.empty(img.shape, dtype=dtype)
    hashing = MappedHashing(img, data)  # a hash_reads digest of the file, from this read
    n_columns = img.shape[1]
    for start in range(0, n_columns, block_columns):
        block = np.asarray(data.T[start:start + block_columns])  # contiguous on disk
        release_pages(data)
        _transposed(block, out=out[:, start:start + block.shape[0]])
        hashing.upto((start + block.shape[0]) / n_columns)
    hashing.upto(1.0)
    return out


def series_from_rows(img: CiftiInput, rows, *, name: str = "in_file") -> NDArray:
    """:func:`series_matrix`'s matrix of ``img`` back as the maskers' ``data``.

    ``rows``: the (time points, grayordinates) matrix, an array or a reader whose
    ``rows[a:b]`` gives rows a to b-1. Returned C-ordered, as written (the maskers gather
    its columns row by row), in the data's dtype (integer data: the file's, exactly), so the
    maskers compute the numbers they compute from the file, bit for bit. The whole matrix
    is in memory (110 MB for 300 volumes of fsLR 91k in float32), where the maskers hold one
    block of the file's memory map at a time.
    """
    img = load_cifti(img, "dtseries", name=name)
    if tuple(rows.shape) != img.shape:
        raise ValueError(f"masked_file: a {rows.shape[0]} x {rows.shape[1]} matrix; {name} "
                         f"holds {img.shape[0]} time points of {img.shape[1]} grayordinates; "
                         f"expected the matrix of {name} (CiftiMasker's out_file)")
    proxy = img.dataobj
    unscaled = getattr(proxy, "slope", 1.0) == 1.0 and getattr(proxy, "inter", 0.0) == 0.0
    on_disk = np.dtype(getattr(proxy, "dtype", rows.dtype))
    dtype = on_disk if unscaled and on_disk.kind in "biu" else np.dtype(rows.dtype)
    return np.ascontiguousarray(rows[0:img.shape[0]], dtype=dtype)


def _groups(sizes: NDArray[np.int64], block: int) -> list[tuple[int, int]]:
    """Consecutive regions whose grayordinates add up to about ``block`` (whole regions)."""
    groups, first, total = [], 0, 0
    for j, size in enumerate(sizes.tolist()):
        total += size
        if total >= block:
            groups.append((first, j + 1))
            first, total = j + 1, 0
    if first < sizes.size:
        groups.append((first, sizes.size))
    return groups


def cifti_labels_masker(
    img: CiftiInput, labels_img: CiftiInput, *, strategy: str = "mean",
    background_label: int = 0, min_coverage: float | None = None, drop_empty: bool = False,
    volumes=None, dtype: DTypeLike = np.float32, clean_args: dict[str, Any] | None = None,
    name: str = "in_file", block_columns: int = _BLOCK_COLUMNS, data: NDArray | None = None,
) -> CiftiSignals:
    """One signal per label of a ``.dlabel.nii``: Workbench's parcellation, XCP-D's rule.

    Parameters
    ----------
    img : path or Cifti2Image
        The ``.dtseries.nii``.
    labels_img : path or Cifti2Image
        The ``.dlabel.nii`` (one label map); names from its label table. Its grayordinates
        must be the data's, or a superset (see :func:`~.cifti.grayordinate_index`).
    strategy : {'mean', 'median', 'sum', 'minimum', 'maximum', 'standard_deviation', \
'variance'}
        The reduction over each parcel's kept grayordinates.
    background_label : int
        The key of "no parcel" (0, Workbench's ``???``).
    min_coverage : float, optional
        Parcels with a smaller fraction of their grayordinates kept become NaN columns.
    drop_empty : bool
        Drop NaN columns (nilearn's behaviour) instead of keeping the columns stable.
    volumes, dtype, clean_args
        As the volume maskers' (:func:`~nipype_maskers.core.regions.maskers.labels_masker`).
    block_columns : int
        Grayordinates read at once (whole parcels).
    data : array, optional
        ``img``'s data already read, (time points, grayordinates)
        (:func:`series_from_rows`): used instead of reading the file, whose header (axes,
        TR) is still read.

    Returns
    -------
    CiftiSignals
        One column per label of the atlas present in its grayordinates, in key order.
    """
    img, data, indices, rows, out_dtype, clean_args = _open_series(img, volumes, dtype,
                                                                    clean_args, name, data)
    atlas = load_cifti(labels_img, "dlabel", name="labels_file")
    atlas_keys, table = label_table(atlas)
    full = prepare_labels(atlas_keys.reshape(-1, 1, 1), background_label=background_label)
    names = region_names(full.labels, lut=table, background_label=background_label)
    data_axis = img.axes[1]
    keys = atlas_keys[grayordinate_index(data_axis, atlas.axes[1], data_name=name)]

    labelled = np.flatnonzero(keys != full.background_label)
    order = np.argsort(keys[labelled], kind="stable")
    columns = labelled[order]  # the data's grayordinates, grouped by label, ascending
    column_of_region = np.searchsorted(full.labels, keys[columns])
    region_sizes = np.bincount(column_of_region, minlength=full.labels.size)
    starts = np.concatenate(([0], np.cumsum(region_sizes)))

    signals = np.full((indices.size, full.labels.size), np.nan, dtype=out_dtype)
    kept_per_region = np.zeros(full.labels.size, dtype=np.int64)
    vertices = np.zeros_like(kept_per_region)
    surface = surface_mask(data_axis)
    hashing = MappedHashing(img, data)  # a hash_reads digest of the file, from this read
    groups = _groups(region_sizes, block_columns)
    for number, (first, last) in enumerate(groups):
        hashing.upto(number / len(groups))
        group = columns[starts[first]:starts[last]]
        if group.size == 0:
            continue
        values, kept = _kept_series(data, group, rows)
        release_pages(data)
        sizes = np.bincount(column_of_region[starts[first]:starts[last]][kept] - first,
                            minlength=last - first)
        kept_per_region[first:last] = sizes
        vertices[first:last] = np.bincount(
            column_of_region[starts[first]:starts[last]][kept & surface[group]] - first,
            minlength=last - first)
        if not sizes.any():
            continue
        regions = LabelRegions(
            labels=full.labels[first:last], voxel_index=np.arange(int(sizes.sum())),
            starts=np.concatenate(([0], np.cumsum(sizes)[:-1])), sizes=sizes,
            atlas_sizes=full.atlas_sizes[first:last], shape=(int(sizes.sum()), 1, 1),
            background_label=full.background_label)
        signals[:, first:last] = labels_signals(values, regions, strategy)
    hashing.upto(1.0)
    if not kept_per_region.any():
        raise ValueError(f"{name}: the series of every labelled grayordinate are all zero or "
                         "non-finite; expected data in the atlas' parcels")
    coverage = kept_per_region / full.atlas_sizes
    result = _finish(signals, names, full.labels, kept_per_region, coverage, indices,
                     min_coverage=min_coverage, drop_empty=drop_empty, clean_args=clean_args)
    keep = np.isin(full.labels, result.ids)
    return CiftiSignals(result, vertices[keep], (kept_per_region - vertices)[keep],
                        series_t_r(img), data_axis, keys)


def _map_names(img: CiftiFile) -> list[str]:
    """The ScalarAxis names; their indices when some are empty or repeated."""
    names = [str(n) for n in img.axes[0].name]
    if all(names) and len(set(names)) == len(names):
        return names
    return [str(i) for i in range(len(names))]


def cifti_maps_masker(
    img: CiftiInput, maps_img: CiftiInput, *, min_coverage: float | None = None,
    drop_empty: bool = False, volumes=None, dtype: DTypeLike = np.float32,
    clean_args: dict[str, Any] | None = None, name: str = "in_file",
    block_columns: int = _BLOCK_COLUMNS, data: NDArray | None = None,
) -> CiftiSignals:
    """Least-squares signals of ``.dscalar.nii`` maps (one map per row), as NiftiMapsMasker.

    The grayordinates left out by XCP-D's rule (all-zero or non-finite series) are left out of
    the fit, as a mask is for the volume maps masker; a map's coverage is the fraction of its
    non-zero grayordinates kept. The other parameters are :func:`cifti_labels_masker`'s.
    """
    img, data, indices, rows, out_dtype, clean_args = _open_series(img, volumes, dtype,
                                                                    clean_args, name, data)
    maps_img = load_cifti(maps_img, "dscalar", name="maps_file")
    data_axis = img.axes[1]
    index = grayordinate_index(data_axis, maps_img.axes[1], data_name=name,
                               atlas_name="maps_file")
    maps = np.asarray(maps_img.dataobj)[:, index].T  # (grayordinates, maps)
    maps = np.where(np.isfinite(maps), maps, 0)  # as nilearn's ensure_finite on the maps
    support = maps.any(axis=1)
    kept = np.zeros(data.shape[1], dtype=bool)
    candidates = np.flatnonzero(support)
    for start in range(0, candidates.size, block_columns):
        block = candidates[start:start + block_columns]
        kept[block] = _kept_series(data, block, rows)[1]
        release_pages(data)
    double = np.float64 in (out_dtype, np.dtype(data.dtype))
    try:
        regions = prepare_maps(maps.reshape(-1, 1, 1, maps.shape[1]), kept.reshape(-1, 1, 1),
                               dtype=np.float64 if double else None)
    except ValueError as exc:
        raise ValueError(f"maps_file: {exc}".replace("mask_img", f"{name}'s kept grayordinates"
                                                     ).replace("maps_img", "maps_file")) from exc
    on_support = regions.voxel_index
    total = (maps != 0).sum(axis=0)
    sizes = ((maps != 0) & kept[:, None]).sum(axis=0)
    vertices = ((maps != 0) & (kept & surface_mask(data_axis))[:, None]).sum(axis=0)
    coverage = np.divide(sizes, total, out=np.zeros(sizes.size), where=total > 0)
    signals = np.zeros((indices.size, regions.n_maps), dtype=np.float64)
    hashing = MappedHashing(img, data)  # a hash_reads digest of the file, from this read
    for start in range(0, on_support.size, block_columns):
        hashing.upto(start / on_support.size)
        block = on_support[start:start + block_columns]
        values = _kept_series(data, block, rows)[0]  # all kept: the support is in the mask
        release_pages(data)
        part = MapsRegions(voxel_index=np.arange(block.size),
                           pinv=regions.pinv[:, start:start + block.size],
                           kept=np.ones(regions.n_maps, bool), shape=(block.size, 1, 1))
        # least squares is linear in the data: the blocks' products add up
        signals += maps_signals(values, part)
    hashing.upto(1.0)
    signals = signals.astype(out_dtype)
    signals[:, ~regions.kept] = np.nan
    result = _finish(signals, _map_names(maps_img), np.arange(regions.n_maps), sizes, coverage,
                     indices, min_coverage=min_coverage, drop_empty=drop_empty,
                     clean_args=clean_args)
    keep = np.isin(np.arange(regions.n_maps), result.ids)
    return CiftiSignals(result, vertices[keep], (sizes - vertices)[keep], series_t_r(img),
                        data_axis)

# --------------------------------------------------------------------------- inverse


def _painted(painted: NDArray) -> NDArray:
    """(n, 1, 1[, samples]) grid data back to CIFTI rows: (samples, grayordinates)."""
    return np.atleast_2d(painted.reshape(painted.shape[0], -1).T)


def _signal_columns(signals, n_regions: int, what: str) -> NDArray:
    signals = np.atleast_2d(np.asarray(signals))
    if signals.ndim != 2 or signals.shape[1] != n_regions:
        raise ValueError(f"in_file: {signals.shape[-1]} columns for the {n_regions} {what}; "
                         f"expected one column per {what[:-1]} (as the CIFTI maskers write them)")
    return signals if signals.dtype.kind == "f" else signals.astype(np.float64)


def cifti_labels_image(signals, labels_img: CiftiInput, *, background_label: int = 0,
                       step: float = 1.0) -> cifti2.Cifti2Image:
    """Parcel signals painted back on the dlabel's grayordinates, as a ``.dtseries.nii``.

    Column k (the k-th label of the atlas, in key order: the columns of
    :func:`cifti_labels_masker`) goes to every grayordinate of that label; background is 0
    and a NaN column paints NaN. ``step`` is the SeriesAxis' TR in seconds.
    """
    atlas = load_cifti(labels_img, "dlabel", name="labels_file")
    keys, _ = label_table(atlas)
    grid = keys.reshape(-1, 1, 1)
    labels = prepare_labels(grid, background_label=background_label).labels
    signals = _signal_columns(signals, labels.size, "labels")
    painted = signals_to_labels_image_data(signals, grid, labels,
                                           background_label=background_label)
    return dtseries_image(_painted(painted), atlas.axes[1], step=step)


def cifti_maps_image(signals, maps_img: CiftiInput, *, step: float = 1.0) -> cifti2.Cifti2Image:
    """``signals @ maps`` on the dscalar's grayordinates (nilearn's maps inverse), as a
    ``.dtseries.nii``; NaN columns (emptied maps) contribute nothing."""
    maps_img = load_cifti(maps_img, "dscalar", name="maps_file")
    maps = np.asarray(maps_img.dataobj).T
    signals = _signal_columns(signals, maps.shape[1], "maps")
    painted = signals_to_maps_image_data(np.nan_to_num(signals, nan=0.0),
                                         maps.reshape(maps.shape[0], 1, 1, maps.shape[1]))
    return dtseries_image(_painted(painted), maps_img.axes[1], step=step)
