"""Region signals from images: nilearn's Labels, Maps and Spheres maskers, streamed.

Each masker resolves the grid it works on (nilearn's ``resampling_target``), prepares its
regions once (:mod:`.labels` / :mod:`.maps` / :mod:`.spheres`), then streams the volumes
through resample -> smooth -> gather and reduces blocks of volumes to region signals, so memory
does not grow with the number of volumes. Cleaning
(:func:`~nipype_maskers.core.signal.cleaning.clean`) comes last, as in nilearn.

Unlike nilearn, the columns are stable: one per region of the atlas (label, map or seed),
whatever the mask or the resampling removed; such regions are NaN columns (``drop_empty=True``
gives nilearn's behaviour).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import nibabel as nib
import numpy as np
from numpy.typing import DTypeLike, NDArray

from ..io.images import (
    ImageError,
    ImageLike,
    compute_dtype,
    load_img,
    n_volumes,
    same_grid,
)
from ..io.streaming import Grid, check_threads, data_range, stream_rows
from ..io.volumes import read_data, resolve_volumes
from ..signal.cleaning import clean
from ..spatial.masking import MaskError, load_mask
from ..spatial.smoothing import Fwhm, check_fwhm, fwhm_to_sigma
from ..voxels.masked_run import MaskedRun
from ..voxels.masker import check_dtype, kept_volumes, select_clean_args
from .label_names import region_names
from .labels import atlas_labels, labels_signals, prepare_labels, region_coverage
from .maps import maps_signals, prepare_maps
from .spheres import prepare_spheres, spheres_signals

#: Rows reduced at once: large enough for vectorized reductions, small enough to stay lean.
_BLOCK_ROWS = 32


class RegionSignals(NamedTuple):
    """What the region maskers return."""

    signals: NDArray            #: (n_kept_volumes, n_regions), NaN columns for empty regions
    names: list[str]            #: one name per column
    ids: NDArray                #: label values, map indices or seed indices, per column
    sizes: NDArray              #: voxels used per region (after mask and resampling)
    coverage: NDArray           #: fraction of each region kept by the mask and field of view
    volumes: NDArray[np.intp]   #: the input volume of each output row


class _Grids(NamedTuple):
    affine: NDArray
    shape: tuple[int, int, int]
    data_target: Grid | None    # where the data must be resampled to, or None


def _resample_nearest(data: NDArray, affine: NDArray, grid_affine, grid_shape) -> NDArray:
    from ..spatial.resampling import resample_img

    # a bare temporary image, not new_img_like: that would already narrow int64 labels (with
    # its warning), which resample_img's output does once
    img = nib.Nifti1Image(np.asarray(data), affine)
    out = resample_img(img, target_affine=grid_affine, target_shape=grid_shape,
                       interpolation="nearest")
    return np.asanyarray(out.dataobj)


def mask_on_grid(mask: ImageLike | None, grid_affine: NDArray, grid_shape: Sequence[int], *,
                 allow_empty: bool = False) -> NDArray[np.bool_] | None:
    """``mask_file`` as a boolean array on a grid: resampled (nearest) when its own differs.

    None for no mask. A mask left empty by the resampling is an error, unless
    ``allow_empty`` (the inverse maskers then paint nothing, as before).
    """
    if mask is None:
        return None
    binary, affine = load_mask(mask, name="mask_file")
    if not same_grid(binary.shape, affine, grid_shape, grid_affine):
        binary = _resample_nearest(binary.astype(np.int8), affine, grid_affine, grid_shape) != 0
        if not allow_empty and not binary.any():
            raise MaskError("mask_file: the mask is empty once resampled onto the working grid; "
                            "check that it overlaps the data")
    return binary


def _grid_difference(other, img) -> str:
    """What differs between two grids: the shapes, or (same shape) the affines."""
    if tuple(other.shape[:3]) != tuple(img.shape[:3]):
        return (f"its grid differs from in_file's ({tuple(other.shape[:3])} vs "
                f"{tuple(img.shape[:3])})")
    gap = float(np.abs(np.asarray(other.affine) - np.asarray(img.affine)).max())
    return (f"its affine differs from in_file's (same shape {tuple(img.shape[:3])}, affines "
            f"differ by up to {gap:.3g})")


def _choose_grid(img, others: dict[str, nib.spatialimages.SpatialImage], target: str | None,
                 accepted: Sequence[str | None]) -> _Grids:
    """The working grid for ``resampling_target``: 'data' or the name of another image."""
    if target not in accepted:
        shown = ", ".join(repr(a) for a in accepted)
        raise ValueError(f"resampling_target: unknown {target!r}; accepted: {shown}")
    if target is None:
        for label, other in others.items():
            if other is not None and not same_grid(other.shape, other.affine, img.shape,
                                                   img.affine):
                raise ValueError(
                    f"{label}: {_grid_difference(other, img)} and resampling_target is None; pass "
                    f"resampling_target={accepted[0]!r} (or another of {list(accepted)}) to "
                    "resample, or resample the files onto one grid first"
                )
        return _Grids(img.affine, tuple(img.shape[:3]), None)
    if target == "data":
        return _Grids(img.affine, tuple(img.shape[:3]), None)
    ref = others[f"{target}_file"]
    if ref is None:
        raise ValueError(f"resampling_target={target!r} needs {target}_file")
    shape = tuple(int(s) for s in ref.shape[:3])
    if same_grid(shape, ref.affine, img.shape, img.affine):
        return _Grids(img.affine, tuple(img.shape[:3]), None)
    return _Grids(ref.affine, shape, Grid(ref.affine, shape))


def _extract(img, indices, voxel_index, reduce: Callable[[NDArray], NDArray], n_columns: int,
             *, grids: _Grids, sigma, out_dtype, name, n_threads: int | None,
             masked: MaskedRun | None = None, per_volume: bool = False) -> NDArray:
    """Stream the volumes, gather ``voxel_index``, reduce blocks of rows to region values.

    ``per_volume``: ``reduce`` works row by row (each row's values its own), so it runs on
    each volume in the threads that read, beside the decompression. With ``masked``, the
    blocks are its rows at the voxels' columns, in a streaming pass's groups.
    """
    n_threads = check_threads(n_threads)
    out = np.empty((indices.size, n_columns), dtype=out_dtype)
    if masked is not None:
        for positions, block in masked.blocks(indices, masked.columns(voxel_index), _BLOCK_ROWS):
            values = reduce(block)
            for i, rows in enumerate(positions):
                out[rows] = values[i]
        return out
    clip_range = (data_range(img, indices, name=name, n_threads=n_threads)
                  if grids.data_target is not None else None)
    if per_volume:
        for rows, values in stream_rows(img, indices, voxel_index, target=grids.data_target,
                                        sigma=sigma, clip_range=clip_range,
                                        n_threads=n_threads, name=name, reduce_row=reduce):
            out[rows] = values
        return out
    block = None
    positions: list[NDArray[np.intp]] = []

    def flush():
        values = reduce(block[: len(positions)])
        for i, rows in enumerate(positions):
            out[rows] = values[i]
        positions.clear()

    for rows, row in stream_rows(img, indices, voxel_index, target=grids.data_target,
                                 sigma=sigma, clip_range=clip_range, n_threads=n_threads,
                                 name=name):
        if block is None:
            block = np.empty((min(_BLOCK_ROWS, indices.size), row.size), dtype=row.dtype)
        block[len(positions)] = row
        positions.append(rows)
        if len(positions) == block.shape[0]:
            flush()
    if positions:
        flush()
    return out


def clean_columns(signals: NDArray, clean_args: dict[str, Any] | None) -> NDArray:
    """``clean`` the columns that hold data; NaN columns (empty regions) stay NaN."""
    if not clean_args:
        return signals
    filled = ~np.isnan(signals).all(axis=0)
    if filled.all():
        return clean(signals, **clean_args)
    cleaned = clean(signals[:, filled], **clean_args)
    out = np.full((cleaned.shape[0], signals.shape[1]), np.nan, dtype=cleaned.dtype)
    out[:, filled] = cleaned
    return out


def _finish(signals, names, ids, sizes, coverage, indices, *, min_coverage, drop_empty,
            clean_args) -> RegionSignals:
    empty = (sizes == 0) | (coverage < (min_coverage or 0.0))
    signals[:, empty] = np.nan
    signals = clean_columns(signals, clean_args)
    ids, sizes, coverage = np.asarray(ids), np.asarray(sizes), np.asarray(coverage)
    if drop_empty:
        keep = ~empty
        if not keep.any():
            raise ValueError("no region left: the mask or the resampling emptied every region")
        signals, ids, sizes, coverage = signals[:, keep], ids[keep], sizes[keep], coverage[keep]
        names = [n for n, k in zip(names, keep, strict=True) if k]
    return RegionSignals(signals, list(names), ids, sizes, coverage,
                         kept_volumes(indices, clean_args))


def _prepare(img, volumes, smoothing_fwhm, dtype, clean_args, name,
             masked: MaskedRun | None = None):
    img = load_img(img, name=name)
    if masked is not None:
        masked.check_source(img, name=name)
        masked.check_smoothing(smoothing_fwhm)
    if volumes is not None and len(img.shape) == 3:
        raise ImageError(f"volumes: {name} is a 3D image; a volume selection needs a 4D image")
    indices = resolve_volumes(volumes, n_volumes(img), name="volumes")
    if indices.size == 0:
        raise ValueError("volumes: the selection is empty; select at least one volume")
    clean_args = select_clean_args(clean_args, indices, n_volumes(img))
    # rows already smoothed: nothing left to smooth
    fwhm = None if masked is not None else check_fwhm(smoothing_fwhm)
    return img, indices, fwhm, check_dtype(dtype), clean_args


#: The array-level core names its inputs as nilearn does; the users of this module gave files.
_FILE_NAMES = (("labels_img", "labels_file"), ("maps_img", "maps_file"), ("mask_img", "mask_file"))


@contextmanager
def file_terms(names: Sequence[tuple[str, str]] = _FILE_NAMES) -> Iterator[None]:
    """Re-raise the core's ValueErrors naming the files (``labels_file``, not ``labels_img``)."""
    try:
        yield
    except ValueError as exc:
        message = str(exc)
        for core_name, file_name in names:
            message = message.replace(core_name, file_name)
        raise ValueError(message) from exc


def _spheres_error(exc: ValueError) -> ValueError:
    """The core's seed errors, with the input they are about and what is expected."""
    message = str(exc)
    if message.startswith("seeds outside the image"):
        message += ("; expected every seed inside in_file's field of view (x, y, z in mm, in "
                    "the world space of in_file)")
    elif message.startswith("empty spheres"):
        message += ("; expected at least one voxel of mask_file in each sphere: move the seed "
                    "into the mask or increase the radius")
    elif not message.startswith("spheres "):
        return ValueError(message.replace("mask_img", "mask_file"))
    return ValueError("seeds: " + message.replace("mask_img", "mask_file"))


def _voxel_volume(affine) -> float:
    return float(abs(np.linalg.det(np.asarray(affine)[:3, :3])))


def labels_masker(
    img: ImageLike, labels_img: ImageLike, *, mask: ImageLike | None = None,
    background_label: int = 0, resampling_target: str | None = "data", strategy: str = "mean",
    names: Sequence[str] | None = None, lut: dict[int, str] | None = None,
    min_coverage: float | None = None, drop_empty: bool = False, smoothing_fwhm: Fwhm = None,
    volumes=None, dtype: DTypeLike = np.float32, clean_args: dict[str, Any] | None = None,
    name: str = "in_file", n_threads: int | None = None, masked: MaskedRun | None = None,
) -> RegionSignals:
    """nilearn's ``NiftiLabelsMasker(...).fit_transform``, one column per atlas label.

    Parameters
    ----------
    img : path or image
        3D or 4D data.
    labels_img : path or image
        3D integer atlas.
    mask : path or image, optional
        Voxels outside it are left out of every region.
    background_label : int
        The label of "no region" (0).
    resampling_target : {'data', 'labels', None}
        'data': atlas and mask resampled (nearest) onto the data; 'labels': data (cubic,
        clipped) and mask (nearest) onto the atlas; None: the grids must match.
    strategy : {'mean', 'median', 'sum', 'minimum', 'maximum', 'standard_deviation', \
'variance'}
        The reduction over each region's voxels.
    names, lut
        Region names: a list (nilearn's positional rule over the sorted labels) or a
        {label: name} table (BIDS ``dseg.tsv``).
    min_coverage : float, optional
        Regions whose coverage (the fraction of their atlas volume kept by the mask and inside
        the data's field of view) is below it become NaN columns.
    drop_empty : bool
        Drop NaN columns (nilearn's behaviour) instead of keeping the columns stable.
    smoothing_fwhm, volumes, dtype, n_threads
        As :func:`~nipype_maskers.core.voxels.masker.mask_volumes`.
    clean_args : dict, optional
        Keyword arguments for :func:`~.signal.cleaning.clean` (None: no cleaning).
    masked : MaskedRun, optional
        ``img``'s volumes already read (masked and smoothed with ``smoothing_fwhm``): their
        rows are used instead of streaming ``img`` again (same numbers, bit for bit). ``img``
        still gives the grid and the header; the regions must lie inside ``masked``'s mask,
        and ``img`` must not be resampled (``resampling_target='labels'`` onto another grid
        is refused).
    """
    img, indices, fwhm, out_dtype, clean_args = _prepare(img, volumes, smoothing_fwhm, dtype,
                                                         clean_args, name, masked)
    atlas = load_img(labels_img, name="labels_file")
    if len(atlas.shape) == 4 and atlas.shape[3] > 1:
        raise ImageError(
            f"labels_file: a 4D image ({atlas.shape[3]} volumes); a labels atlas is one 3D "
            "image of integer labels (4D probability maps go to NiftiMapsMasker's maps_file)"
        )
    atlas_data = np.asanyarray(atlas.dataobj).reshape(atlas.shape[:3])
    with file_terms():  # the atlas's own regions (before mask and resampling)
        all_labels, atlas_sizes = atlas_labels(atlas_data, background_label=background_label)
    labels_names = region_names(all_labels, names=names, lut=lut,
                                background_label=background_label)
    mask_img = None if mask is None else load_img(mask, name="mask_file")
    grids = _choose_grid(img, {"labels_file": atlas, "mask_file": mask_img},
                         resampling_target, ("data", "labels", None))
    fov = None
    if not same_grid(atlas.shape, atlas.affine, grids.shape, grids.affine):
        atlas_data = _resample_nearest(atlas_data, atlas.affine, grids.affine, grids.shape)
    _check_not_resampled(grids, masked, "labels")
    if grids.data_target is not None:
        from ..spatial.resampling import resample_volume

        fov = resample_volume(np.ones(img.shape[:3], np.float32), img.affine, grids.affine,
                              grids.shape, interpolation="nearest", clip=False) > 0
    mask_data = mask_on_grid(mask, grids.affine, grids.shape)
    with file_terms():
        regions = prepare_labels(atlas_data, mask_data, background_label=background_label)
    if not regions.sizes.any():
        raise ValueError("no region left after masking: the mask and the atlas do not overlap")
    columns = np.searchsorted(all_labels, regions.labels)
    found = (columns < all_labels.size) & (all_labels[np.minimum(columns, all_labels.size - 1)]
                                           == regions.labels)
    sizes = np.zeros(all_labels.size, dtype=np.int64)
    sizes[columns[found]] = regions.sizes[found]
    kept = np.zeros(all_labels.size)
    kept[columns[found]] = (region_coverage(regions, fov) * regions.atlas_sizes)[found]
    coverage = np.minimum(
        kept * _voxel_volume(grids.affine) / (atlas_sizes * _voxel_volume(atlas.affine)), 1.0)

    def reduce(block):
        values = labels_signals(block, regions, strategy)
        out = np.full((values.shape[0], all_labels.size), np.nan)
        out[:, columns[found]] = values[:, found]
        return out

    sigma = fwhm_to_sigma(fwhm, grids.affine) if fwhm is not None else None
    signals = _extract(img, indices, regions.voxel_index, reduce, all_labels.size,
                       grids=grids, sigma=sigma, out_dtype=out_dtype, name=name,
                       n_threads=n_threads, masked=masked, per_volume=True)
    return _finish(signals, labels_names, all_labels, sizes, coverage, indices,
                   min_coverage=min_coverage, drop_empty=drop_empty, clean_args=clean_args)


def _map_supports(maps_data, mask_data) -> tuple[NDArray, NDArray]:
    """Non-zero voxels of each map, in all and inside the mask (one z-slice at a time)."""
    total = np.zeros(maps_data.shape[3], dtype=np.int64)
    sizes = np.zeros_like(total)
    for z in range(maps_data.shape[2]):
        slab = np.asarray(maps_data[:, :, z, :])
        # NaN counts as 0, as nilearn's ensure_finite makes it (inf is not 0: kept)
        support = slab != 0
        if slab.dtype.kind == "f":
            support &= slab == slab
        total += np.count_nonzero(support, axis=(0, 1))
        if mask_data is not None:
            support &= mask_data[:, :, z, None]
        sizes += np.count_nonzero(support, axis=(0, 1))
    return total, sizes


def maps_masker(
    img: ImageLike, maps_img: ImageLike, *, mask: ImageLike | None = None,
    allow_overlap: bool = True, resampling_target: str | None = "data",
    names: Sequence[str] | None = None, min_coverage: float | None = None,
    drop_empty: bool = False, smoothing_fwhm: Fwhm = None, volumes=None,
    dtype: DTypeLike = np.float32, clean_args: dict[str, Any] | None = None,
    name: str = "in_file", n_threads: int | None = None, masked: MaskedRun | None = None,
) -> RegionSignals:
    """nilearn's ``NiftiMapsMasker(...).fit_transform``: least-squares map signals.

    ``resampling_target``: 'data' (maps linear and mask nearest onto the data), 'mask' (maps
    and data onto the mask), 'maps' (mask and data onto the maps), None (grids must match).
    Coverage is the fraction of a map's non-zero voxels kept by the mask. Maps emptied by the
    mask stay as NaN columns (nilearn drops them, which breaks its inverse_transform).
    The other parameters are :func:`labels_masker`'s.
    """
    img, indices, fwhm, out_dtype, clean_args = _prepare(img, volumes, smoothing_fwhm, dtype,
                                                         clean_args, name, masked)
    maps = load_img(maps_img, name="maps_file")
    if len(maps.shape) == 3:
        raise ImageError(
            f"maps_file: a 3D image {tuple(maps.shape)}; maps are a 4D image with one map per "
            "volume (a 3D integer atlas goes to NiftiLabelsMasker's labels_file)"
        )
    mask_img = None if mask is None else load_img(mask, name="mask_file", ndim=3)
    if resampling_target == "mask" and mask_img is None:
        raise ValueError("resampling_target='mask' needs mask_file")
    grids = _choose_grid(img, {"maps_file": maps, "mask_file": mask_img}, resampling_target,
                         ("data", "mask", "maps", None))
    _check_not_resampled(grids, masked, resampling_target)
    if same_grid(maps.shape, maps.affine, grids.shape, grids.affine):
        maps_data = read_data(maps, name="maps_file")
    else:
        from ..spatial.resampling import resample_img

        maps_data = np.asanyarray(resample_img(maps, target_affine=grids.affine,
                                               target_shape=grids.shape,
                                               interpolation="linear").dataobj)
    mask_data = mask_on_grid(mask, grids.affine, grids.shape)
    # float64 data or output: solve in float64 (nilearn's lstsq upcasts float32 maps to the
    # float64 data; a float32 operator loses ~1e-4 once detrending removes the mean).
    double = np.float64 in (out_dtype, compute_dtype(img))
    with file_terms():
        regions = prepare_maps(maps_data, mask_data, allow_overlap=allow_overlap,
                               dtype=np.float64 if double else None)
    map_names = list(names) if names is not None else [str(i) for i in range(regions.n_maps)]
    _check_names(map_names, regions.n_maps, "maps")
    total, sizes = _map_supports(maps_data, mask_data)
    coverage = np.divide(sizes, total, out=np.zeros(sizes.size), where=total > 0)
    sigma = fwhm_to_sigma(fwhm, grids.affine) if fwhm is not None else None
    signals = _extract(img, indices, regions.voxel_index, lambda b: maps_signals(b, regions),
                       regions.n_maps, grids=grids, sigma=sigma, out_dtype=out_dtype, name=name,
                       n_threads=n_threads, masked=masked)
    return _finish(signals, map_names, np.arange(regions.n_maps), sizes, coverage, indices,
                   min_coverage=min_coverage, drop_empty=drop_empty, clean_args=clean_args)


def spheres_masker(
    img: ImageLike, seeds: NDArray, *, radius: float | None = None,
    mask: ImageLike | None = None, allow_overlap: bool = False,
    names: Sequence[str] | None = None, smoothing_fwhm: Fwhm = None, volumes=None,
    dtype: DTypeLike = np.float32, clean_args: dict[str, Any] | None = None,
    name: str = "in_file", n_threads: int | None = None, masked: MaskedRun | None = None,
) -> RegionSignals:
    """nilearn's ``NiftiSpheresMasker(...).fit_transform``: the mean of each sphere's voxels.

    The mask, if any, is resampled (nearest) onto the data. Coverage is the fraction of each
    sphere's voxels kept by the mask. The other parameters are :func:`labels_masker`'s.
    """
    img, indices, fwhm, out_dtype, clean_args = _prepare(img, volumes, smoothing_fwhm, dtype,
                                                         clean_args, name, masked)
    shape = tuple(img.shape[:3])
    mask_data = mask_on_grid(mask, img.affine, shape)
    try:
        regions = prepare_spheres(seeds, radius, img.affine, shape, mask_data=mask_data,
                                  allow_overlap=allow_overlap)
    except ValueError as exc:
        raise _spheres_error(exc) from exc
    seed_names = list(names) if names is not None else [str(i) for i in range(regions.n_seeds)]
    _check_names(seed_names, regions.n_seeds, "seeds")
    coverage = np.ones(regions.n_seeds)
    if mask_data is not None:
        whole = prepare_spheres(seeds, radius, img.affine, shape, allow_overlap=True)
        coverage = regions.sizes / np.maximum(whole.sizes, 1)
    sigma = fwhm_to_sigma(fwhm, img.affine) if fwhm is not None else None
    signals = _extract(img, indices, regions.voxel_index, lambda b: spheres_signals(b, regions),
                       regions.n_seeds, grids=_Grids(img.affine, shape, None), sigma=sigma,
                       out_dtype=out_dtype, name=name,
                       n_threads=n_threads, masked=masked)
    return _finish(signals, seed_names, np.arange(regions.n_seeds), regions.sizes, coverage,
                   indices, min_coverage=None, drop_empty=False, clean_args=clean_args)


def _check_not_resampled(grids: _Grids, masked: MaskedRun | None, target) -> None:
    if masked is not None and grids.data_target is not None:
        raise ValueError(
            f"resampling_target={target!r} resamples in_file's volumes onto another grid, "
            "which its masked rows (masked_file) cannot give; expected resampling_target="
            "'data' (or leave masked_file unset)")


def _check_names(names: Sequence[str], n: int, what: str) -> None:
    if len(names) != n:
        raise ValueError(
            f"labels: {len(names)} names for {n} {what}; expected one name per "
            f"{what[:-1]} ({n} names, in the order of the {what})"
        )
