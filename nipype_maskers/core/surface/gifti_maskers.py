"""nilearn's ``SurfaceMasker``, ``SurfaceLabelsMasker`` and ``SurfaceMapsMasker`` on GIFTI pairs.

No mesh is needed: the maskers work on the vertex values, left hemisphere then right (nilearn's
order). The arithmetic is the volume maskers': a pair's vertices are viewed as a ``(n, 1, 1)``
grid and go through :func:`~..regions.labels.prepare_labels` / ``labels_signals`` and
:func:`~..regions.maps.prepare_maps` / ``maps_signals``; the stable columns, ``min_coverage`` and
the cleaning (:func:`~..signal.cleaning.clean`, last, as nilearn) are those of
:mod:`..regions.maskers`. The data are streamed array by array (:class:`.gifti_series.SeriesPair`).

Deliberate differences from nilearn 0.14.1 (each has a test showing theirs and ours):

- **Stable columns**: a label or map emptied by the mask keeps its column (NaN, ``n/a``);
  nilearn drops it (``drop_empty=True`` gives nilearn's columns).
- **Non-finite data** count as 0 in a region (as nilearn's *volume* labels masker does);
  nilearn's ``SurfaceLabelsMasker`` lets one NaN vertex make its region NaN for that volume.
- **Region names** come from the ``.label.gii`` label tables (nilearn ignores them and names
  regions by their value); a value named differently in the two files is refused (it would
  average a left and a right region together, as nilearn silently does).
- **Overlapping maps** (``allow_overlap=False``) are refused when any two maps share a vertex;
  nilearn only looks for vertices where *all* maps are non-zero, so with three or more maps
  it never sees an overlap of two.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import DTypeLike, NDArray

from ..io.volumes import resolve_volumes
from ..regions.inverse import _columns as signal_columns
from ..regions.label_names import region_names
from ..regions.labels import labels_signals, prepare_labels, signals_to_labels_image_data
from ..regions.maps import maps_signals, prepare_maps, signals_to_maps_image_data
from ..regions.maskers import RegionSignals, file_terms
from ..regions.maskers import _finish as finish_regions
from ..signal.cleaning import clean
from ..voxels.masker import check_dtype, kept_volumes, select_clean_args
from .gifti import (
    HEMISPHERES,
    check_pair_paths,
    read_labels_pair,
    read_maps_pair,
    read_mask_pair,
    split_pair,
    values_image,
)
from .gifti_series import SeriesPair, read_series_pair

__all__ = [
    "VertexSignals",
    "labels_pair_images",
    "maps_pair_images",
    "surface_labels_masker",
    "surface_maps_masker",
    "surface_masker",
    "vertices_pair_images",
]


class VertexSignals(NamedTuple):
    """What :func:`surface_masker` returns."""

    signals: NDArray            #: (n_kept_volumes, n_vertices_in_mask), left then right
    mask: NDArray[np.bool_]     #: the vertices used, left then right
    sizes: tuple[int, int]      #: vertices of the left and right hemispheres
    volumes: NDArray[np.intp]   #: the input volume of each row
    t_r: float | None           #: the data's TR from ``TimeStep`` (seconds), if any


def _reads_series(function: Callable) -> Callable:
    """Open the pair of time series given as paths (a SeriesPair is used as it is, e.g. one an
    interface opened first for its TR) and close its files however the masker ends."""

    @functools.wraps(function)
    def wrapper(in_files, *args, name: str = "in_file", **kwargs):
        series = (in_files if isinstance(in_files, SeriesPair)
                  else read_series_pair(in_files, name=name))
        with series:
            return function(series, *args, name=name, **kwargs)

    return wrapper


def _open(series: SeriesPair, volumes, dtype, clean_args):
    """The volumes and the cleaning arguments for the series."""
    indices = resolve_volumes(volumes, series.n_volumes, name="volumes")
    if indices.size == 0:
        raise ValueError("volumes: the selection is empty; select at least one volume")
    clean_args = select_clean_args(clean_args, indices, series.n_volumes)
    return series, indices, check_dtype(dtype), clean_args


def _extract(series: SeriesPair, indices: NDArray[np.intp], gather: NDArray[np.intp],
             reduce: Callable[[NDArray], NDArray], n_columns: int, out_dtype) -> NDArray:
    """Reduce the gathered vertices of the selected volumes, read once in file order."""
    unique, inverse = np.unique(indices, return_inverse=True)
    out = np.empty((unique.size, n_columns), dtype=out_dtype)
    row = 0
    for block in series.blocks(unique, gather):
        out[row:row + block.shape[0]] = reduce(block)
        row += block.shape[0]
    if unique.size == indices.size and np.array_equal(unique, indices):
        return out
    return out[inverse]  # a selection out of order or with repeats (as index_img allows)


def _compact_columns(values: NDArray, keep: NDArray[np.bool_]) -> NDArray:
    """``values[:, keep]`` written over ``values`` itself, row by row (no second copy)."""
    rows, n = values.shape
    k = int(keep.sum())
    flat = values.reshape(-1)
    for i in range(rows):  # row i's new place ends before its old place does: safe in order
        flat[i * k:(i + 1) * k] = flat[i * n:(i + 1) * n][keep]
    return flat[:rows * k].reshape(rows, k)


def _as_grid(values: NDArray) -> NDArray:
    """Vertices as the (n, 1, 1[, k]) grid the volume core works on (a view)."""
    return values.reshape(values.shape[0], 1, 1, *values.shape[1:])


@_reads_series
def surface_masker(
    in_files: Sequence[str], *, mask: Sequence[str] | None = None, volumes=None,
    dtype: DTypeLike = np.float32, clean_args: dict[str, Any] | None = None,
    all_vertices: bool = False, name: str = "in_file",
) -> VertexSignals:
    """nilearn's ``SurfaceMasker(mask_img).fit_transform``: the vertex time series.

    Parameters
    ----------
    in_files : [left, right] paths, or a SeriesPair
        Time series (``.func.gii``), one data array per volume. A
        :class:`~.gifti_series.SeriesPair` is consumed (its arrays are released as they are used).
    mask : [left, right] paths, optional
        Vertices to keep (finite non-zero). Without it, as nilearn: the vertices whose values
        are finite in every volume (every *selected* volume when ``volumes`` is set).
    volumes, dtype, clean_args
        As the volume maskers (``dtype``: float32 or float64 output).
    all_vertices : bool
        Without ``mask``: keep every vertex, finite or not, instead of nilearn's computed
        mask (the pair as it is, for the region maskers to read instead of the files).

    Returns
    -------
    VertexSignals
        ``signals`` of shape (volumes, vertices in the mask), left then right.
    """
    series, indices, out_dtype, clean_args = _open(in_files, volumes, dtype, clean_args)
    if all_vertices and mask is not None:
        raise ValueError("mask_file: given with all_vertices; expected one of them (a mask "
                         "keeps its vertices, all_vertices every vertex)")
    if mask is None:  # nilearn's computed mask: finite in every (selected) volume
        every = np.arange(series.n_vertices)
        signals = _extract(series, indices, every, lambda block: block, every.size, out_dtype)
        keep = np.ones(series.n_vertices, dtype=bool)
        for row in signals if not all_vertices else ():
            keep &= np.isfinite(row)
        if not keep.all():
            signals = _compact_columns(signals, keep)
    else:
        keep, _ = read_mask_pair(mask, sizes=series.sizes)
        if not keep.any():
            raise ValueError("mask_file: no vertex in the mask; expected a mask that keeps "
                             "some vertices")
        gather = np.flatnonzero(keep)
        signals = _extract(series, indices, gather, lambda block: block, gather.size,
                           out_dtype)
    if clean_args:
        signals = clean(signals, **clean_args, copy=False)  # in place: one copy of the data
    return VertexSignals(signals, keep, series.sizes, kept_volumes(indices, clean_args),
                         series.t_r)


def _label_tables(labels: NDArray[np.int64], tables: list[dict[int, str]],
                  sizes: tuple[int, int], values: NDArray[np.int64]) -> dict[int, str]:
    """One name per label value from the two files' label tables; a value named differently
    in the two hemispheres (where it is used in both) is refused."""
    left, right = labels[:sizes[0]], labels[sizes[0]:]
    used = [set(np.unique(left).tolist()), set(np.unique(right).tolist())]
    merged: dict[int, str] = {}
    for value in values.tolist():
        names = {tables[h][value] for h in range(2) if value in used[h] and value in tables[h]}
        if len(names) > 1:
            found = ", ".join(f"{hemi}: {tables[h][value]!r}"
                              for h, hemi in enumerate(HEMISPHERES))
            raise ValueError(
                f"labels_file: label {value} names two regions ({found}); expected one name "
                "per label value across the pair (nilearn would average both hemispheres' "
                "vertices into one region). Give files with distinct values per hemisphere, "
                "or lut_file to name the merged regions"
            )
        if names:
            merged[value] = names.pop()
    return merged


@_reads_series
def surface_labels_masker(
    in_files: Sequence[str], labels_files: Sequence[str], *,
    mask: Sequence[str] | None = None, background_label: int = 0, strategy: str = "mean",
    names: Sequence[str] | None = None, lut: dict[int, str] | None = None,
    min_coverage: float | None = None, drop_empty: bool = False, volumes=None,
    dtype: DTypeLike = np.float32, clean_args: dict[str, Any] | None = None,
    name: str = "in_file",
) -> RegionSignals:
    """nilearn's ``SurfaceLabelsMasker(...).fit_transform``: one column per label value.

    A label value used in both hemispheres is one region (as nilearn). Names: ``names``
    (nilearn's ``labels``) or ``lut`` when given, else the files' label tables, else the value.
    ``sizes`` of the result are vertex counts; coverage is the fraction of a region's vertices
    kept by the mask. The other parameters are :func:`surface_masker`'s and
    :func:`~..regions.maskers.labels_masker`'s.
    """
    series, indices, out_dtype, clean_args = _open(in_files, volumes, dtype, clean_args)
    labels, tables, _ = read_labels_pair(labels_files, sizes=series.sizes)
    terms = (("labels_img", "labels_file"), ("mask_img", "mask_file"), ("voxels", "vertices"))
    with file_terms(terms):
        full = prepare_labels(_as_grid(labels), background_label=background_label)
    if names is None and lut is None:
        lut = _label_tables(labels, tables, series.sizes, full.labels)
    labels_names = region_names(full.labels, names=names, lut=lut,
                                background_label=background_label)
    keep = None if mask is None else read_mask_pair(mask, sizes=series.sizes)[0]
    with file_terms(terms):
        regions = prepare_labels(_as_grid(labels), None if keep is None else _as_grid(keep),
                                 background_label=background_label)
    columns = np.searchsorted(full.labels, regions.labels)  # every masked label is in full
    sizes = np.zeros(full.labels.size, dtype=np.int64)
    sizes[columns] = regions.sizes
    coverage = sizes / full.atlas_sizes

    def reduce(block):
        out = np.full((block.shape[0], full.labels.size), np.nan, dtype=out_dtype)
        out[:, columns] = labels_signals(block, regions, strategy)
        return out

    signals = _extract(series, indices, regions.voxel_index, reduce, full.labels.size,
                       out_dtype)
    return finish_regions(signals, labels_names, full.labels, sizes, coverage, indices,
                          min_coverage=min_coverage, drop_empty=drop_empty,
                          clean_args=clean_args)


@_reads_series
def surface_maps_masker(
    in_files: Sequence[str], maps_files: Sequence[str], *, mask: Sequence[str] | None = None,
    allow_overlap: bool = True, names: Sequence[str] | None = None,
    min_coverage: float | None = None, drop_empty: bool = False, volumes=None,
    dtype: DTypeLike = np.float32, clean_args: dict[str, Any] | None = None,
    name: str = "in_file",
) -> RegionSignals:
    """nilearn's ``SurfaceMapsMasker(...).fit_transform``: least-squares map signals.

    ``maps_files``: a pair of ``.func.gii`` with one map per data array (the same maps in
    both). Coverage is the fraction of a map's non-zero vertices kept by the mask. The other
    parameters are :func:`surface_labels_masker`'s.
    """
    series, indices, out_dtype, clean_args = _open(in_files, volumes, dtype, clean_args)
    maps, _ = read_maps_pair(maps_files, sizes=series.sizes)
    keep = None if mask is None else read_mask_pair(mask, sizes=series.sizes)[0]
    double = np.float64 in (out_dtype, series.dtype)
    terms = (("maps_img", "maps_file"), ("mask_img", "mask_file"), ("voxel", "vertex"))
    with file_terms(terms):
        regions = prepare_maps(_as_grid(maps), None if keep is None else _as_grid(keep),
                               allow_overlap=allow_overlap,
                               dtype=np.float64 if double else None)
    map_names = list(names) if names is not None else [str(i) for i in range(regions.n_maps)]
    if len(map_names) != regions.n_maps:
        raise ValueError(f"labels: {len(map_names)} names for {regions.n_maps} maps; expected "
                         "one name per map, in the order of the maps")
    support = np.nan_to_num(maps) != 0
    total = support.sum(axis=0)
    sizes = (support if keep is None else support & keep[:, None]).sum(axis=0)
    coverage = np.divide(sizes, total, out=np.zeros(sizes.size), where=total > 0)
    signals = _extract(series, indices, regions.voxel_index,
                       lambda block: maps_signals(block, regions), regions.n_maps, out_dtype)
    return finish_regions(signals, map_names, np.arange(regions.n_maps), sizes, coverage,
                          indices, min_coverage=min_coverage, drop_empty=drop_empty,
                          clean_args=clean_args)


# --------------------------------------------------------------------------- inverse


def _pair_images(data: NDArray, sizes: Sequence[int], t_r: float | None) -> list:
    """(vertices, samples) values, left then right, as a [left, right] pair of images."""
    data = data.astype(np.float32, copy=False)  # BOLD's precision; the signals are text
    return [values_image(part, hemi, t_r=t_r)
            for part, hemi in zip(split_pair(data, sizes), HEMISPHERES, strict=True)]


def _mask_for(mask, sizes):
    return None if mask is None else _as_grid(read_mask_pair(mask, sizes=sizes)[0])


def labels_pair_images(signals: NDArray, labels_files: Sequence[str], *,
                       mask: Sequence[str] | None = None, background_label: int = 0,
                       t_r: float | None = None) -> list:
    """SurfaceLabelsMasker's inverse: column k painted on the vertices of the k-th label.

    ``signals``: (samples, labels) with one column per non-background label value of the
    pair, ascending (our stable columns). Background and vertices outside ``mask`` are 0.
    Returns a [left, right] pair of GIFTI images, one data array per sample.
    """
    labels, _, sizes = read_labels_pair(labels_files)
    with file_terms((("labels_img", "labels_file"),)):
        full = prepare_labels(_as_grid(labels), background_label=background_label)
    signals = np.atleast_2d(signal_columns(signals, full.labels.size, "labels"))
    painted = signals_to_labels_image_data(signals, _as_grid(labels), full.labels,
                                           mask_data=_mask_for(mask, sizes),
                                           background_label=background_label)
    return _pair_images(painted.reshape(labels.size, -1), sizes, t_r)


def maps_pair_images(signals: NDArray, maps_files: Sequence[str], *,
                     mask: Sequence[str] | None = None, t_r: float | None = None) -> list:
    """SurfaceMapsMasker's inverse: ``signals @ maps.T`` on the maps' vertices (nilearn's)."""
    maps, sizes = read_maps_pair(maps_files)
    signals = np.atleast_2d(signal_columns(signals, maps.shape[1], "maps"))
    data = signals_to_maps_image_data(signals, _as_grid(maps), mask_data=_mask_for(mask, sizes))
    return _pair_images(data.reshape(maps.shape[0], -1), sizes, t_r)


def vertices_pair_images(signals: NDArray, mask: Sequence[str], *,
                         t_r: float | None = None) -> list:
    """SurfaceMasker's inverse: the vertex signals (samples, vertices in ``mask``) back on
    the pair; vertices outside the mask are 0 (nilearn's ``inverse_transform``)."""
    keep, sizes = read_mask_pair(check_pair_paths(mask, name="mask_file"))
    signals = np.asarray(signals)
    signals = signals[None] if signals.ndim == 1 else signals
    if signals.ndim != 2 or signals.shape[1] != int(keep.sum()):
        raise ValueError(f"in_file: {np.shape(signals)} signals for the {int(keep.sum())} "
                         "vertices of mask_file; expected (volumes, vertices in the mask), "
                         "SurfaceMasker's out_file with its mask_file")
    data = np.zeros((keep.size, signals.shape[0]), dtype=np.float32)
    data[keep] = signals.T
    return _pair_images(data, sizes, t_r)
