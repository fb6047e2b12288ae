"""NiftiMasker's transform, streamed: a 4D image to a (volumes x voxels) matrix.

nilearn loads the whole 4D image, copies it to C order, smooths the copy and masks it. Here
each volume goes through resample -> smooth -> mask on its own and lands directly in its row
of the preallocated output, so peak memory is the output matrix plus a few volumes, and a
``.nii.gz`` is decompressed once (twice when the mask is computed from the data's mean).
"""

from __future__ import annotations

from collections.abc import Sequence
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
    natural_dtype,
    new_img_like,
    same_grid,
    warn_nonfinite,
)
from ..io.streaming import (
    Grid,
    VolumeToRow,
    blas_threads,
    check_threads,
    data_range,
    gathered_box,
    map_volumes,
    prefaulted_empty,
    stream_rows,
)
from ..io.volumes import iter_volumes, resolve_volumes
from ..signal.cleaning import clean
from ..spatial.masking import (
    MaskError,
    MeanVolume,
    border_values,
    check_same_grid,
    compute_mask,
    epi_threshold,
    flat_indices,
    load_mask,
    mean_volume,
    strategy_args,
)
from ..spatial.smoothing import Fwhm, check_fwhm, fwhm_to_sigma


class MaskedSignals(NamedTuple):
    """What :func:`mask_volumes` returns."""

    signals: NDArray          #: (n_volumes, n_voxels), the mask's voxels in C order
    mask: nib.Nifti1Image     #: the mask actually used, on the output grid
    volumes: NDArray[np.intp]  #: the indices of the input volumes, one per row
    unsmoothed: NDArray | None = None  #: ``signals`` before smoothing (``keep_unsmoothed``)
    mean: NDArray | None = None  #: the volumes' mean image, float32 (``mean_image``)


def check_dtype(dtype: DTypeLike, *, name: str = "dtype") -> np.dtype:
    """Output dtype: float32 (default) or float64; anything else is refused."""
    try:
        resolved = np.dtype(np.float32 if dtype is None else dtype)
    except TypeError:
        resolved = None
    if resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"{name}: expected 'float32' or 'float64', got {dtype!r}")
    return resolved


def select_clean_args(clean_args: dict[str, Any] | None, indices: NDArray[np.intp],
                      n_total: int) -> dict[str, Any] | None:
    """Cleaning arguments for a volume selection, when they describe the whole image.

    Confounds and ``runs`` with one row per volume of the image keep the selected rows; a
    ``sample_mask`` of the image's volumes keeps the selected volumes it lists (renumbered in
    the selection's order). Arguments already sized for the selection are left as they are.
    """
    if not clean_args or (indices.size == n_total and np.array_equal(indices,
                                                                    np.arange(n_total))):
        return clean_args
    args = dict(clean_args)
    confounds = args.get("confounds")
    if confounds is not None and np.shape(confounds)[0] == n_total != indices.size:
        args["confounds"] = np.asarray(confounds)[indices]
    runs = args.get("runs")
    if runs is not None and len(runs) == n_total != indices.size:
        args["runs"] = np.asarray(runs)[indices]
    sample_mask = args.get("sample_mask")
    if sample_mask is not None:
        kept = np.asarray(sample_mask)
        if kept.dtype == bool:
            kept = np.flatnonzero(kept) if kept.size == n_total else kept
        if kept.dtype != bool:
            args["sample_mask"] = np.flatnonzero(np.isin(indices, kept))
    return args


def kept_volumes(indices: NDArray[np.intp], clean_args: dict[str, Any] | None
                 ) -> NDArray[np.intp]:
    """The input volume of each row left after ``clean``'s ``sample_mask``."""
    if not clean_args or clean_args.get("sample_mask") is None:
        return indices
    keep = np.zeros(indices.size, dtype=bool)
    keep[np.asarray(clean_args["sample_mask"])] = True
    return indices[keep]


def _target_grid(img, target_affine, target_shape):
    if target_affine is None and target_shape is None:
        return None
    from ..spatial.resampling import resolve_target_grid

    affine, shape = resolve_target_grid(img.shape[:3], img.affine, target_affine, target_shape)
    if same_grid(shape, affine, img.shape, img.affine):
        return None  # nilearn's no-op: same grid, nothing resampled or clipped
    return affine, tuple(int(s) for s in shape)


def prepare_mask(
    img: nib.spatialimages.SpatialImage,
    mask: ImageLike | None,
    volumes: NDArray[np.intp],
    *,
    mask_strategy: str = "background",
    mask_args: dict[str, Any] | None = None,
    target_affine: NDArray | None = None,
    target_shape: Sequence[int] | None = None,
    name: str = "in_file",
    n_threads: int = 2,
    mean: MeanVolume | None = None,
) -> tuple[nib.Nifti1Image, MeanVolume | None]:
    """The mask NiftiMasker would use, on the output grid, and the mean if one was computed.

    A given mask is validated; a computed one uses ``mask_strategy`` on the selected volumes
    in the image's own space. Either is then resampled (nearest) to ``target_affine`` /
    ``target_shape`` as ``NiftiMasker.fit`` does. ``mean``: the selected volumes' mean,
    when already computed.
    """
    if mask is None:
        if mean is None and not mask_strategy.endswith("-template"):
            mean = mean_volume(img, volumes, name=name, n_threads=n_threads)
        mask_img = compute_mask(img, mask_strategy, mask_args=mask_args, name=name, mean=mean)
    else:
        binary, affine = load_mask(mask, name="mask_file")
        mask_img = new_img_like(None, binary.astype(np.int8), affine)
    if target_affine is not None or target_shape is not None:
        from ..spatial.resampling import resample_img

        mask_img = resample_img(mask_img, target_affine=target_affine,
                                target_shape=target_shape, interpolation="nearest")
        binary = np.asanyarray(mask_img.dataobj) != 0
        if not binary.any():
            raise MaskError(
                "mask_file: the mask is empty after resampling to target_affine/target_shape; "
                "check that the target grid covers the mask"
            )
        mask_img = new_img_like(None, binary.astype(np.int8), mask_img.affine)
    return mask_img, mean


def mask_volumes(
    img: ImageLike,
    mask: ImageLike | None = None,
    *,
    mask_strategy: str = "background",
    mask_args: dict[str, Any] | None = None,
    smoothing_fwhm: Fwhm = None,
    target_affine: NDArray | None = None,
    target_shape: Sequence[int] | None = None,
    volumes: int | slice | Sequence[int] | NDArray | None = None,
    dtype: DTypeLike = np.float32,
    clean_args: dict[str, Any] | None = None,
    name: str = "in_file",
    n_threads: int | None = None,
    keep_unsmoothed: bool = False,
    mean_image: bool = False,
) -> MaskedSignals:
    """NiftiMasker's ``fit_transform``: volumes to masked (and cleaned) rows.

    Parameters
    ----------
    img : path or image
        3D or 4D data. A 3D image gives one row.
    mask : path or image, optional
        A binary mask on the data's grid (or on the target grid). Computed with
        ``mask_strategy`` / ``mask_args`` when None.
    mask_strategy, mask_args
        As :func:`nipype_maskers.core.spatial.masking.compute_mask`.
    smoothing_fwhm : float or 3 floats, optional
        Gaussian FWHM in mm, applied after resampling and before masking.
    target_affine, target_shape : optional
        Resample the data (cubic spline, clipped to the data's range) and the mask (nearest)
        onto this grid, with ``nilearn.image.resample_img``'s semantics.
    volumes : int, slice, list of int or of bool, optional
        Use only these volumes (``nilearn.image.index_img``'s selection), in this order.
    dtype : {'float32', 'float64'}
        Output dtype. Volumes are processed in float32, or float64 when the data are float64
        (as nilearn does), and cast on output.
    clean_args : dict, optional
        Keyword arguments for :func:`~.signal.cleaning.clean`, applied last and in
        place (no copy of the matrix); None: no cleaning. With a ``sample_mask`` only the kept
        volumes' rows are returned. Confounds, runs and sample_mask may describe the whole
        image: with ``volumes`` they follow the selection (:func:`select_clean_args`).
    n_threads : int, optional
        Threads that read, resample and smooth volumes side by side; None: the CPUs this
        process may use, at most 4 (:func:`~nipype_maskers.core.io.streaming.default_threads`).
        1 keeps everything in the calling thread (one CPU, for running beside other jobs).
    keep_unsmoothed : bool
        With ``smoothing_fwhm`` (and neither target grid nor ``clean_args``), also return
        the rows before smoothing (``unsmoothed``), from the same read: for a run that some
        steps take smoothed and others not.
    mean_image : bool
        Also return the selected volumes' mean image (``mean``: float32, the sum of the
        float32 volumes in float64, as the report's summary computes it) from the same read.
        Not with a target grid.

    Returns
    -------
    MaskedSignals
        ``signals`` (n_rows, n_mask_voxels) in nilearn's voxel order (the mask's C order),
        the mask used, and the input volume of each row.

    Notes
    -----
    Non-finite values become 0 (one warning gives the count). Unlike nilearn, a mask whose
    grid differs from the data's is an error instead of a silent crop-and-resample. With
    ``target_affine`` and smoothing, nilearn's masker smooths on the grid cropped to the
    mask's bounding box, so voxels near that box's faces see reflected data instead of their
    true neighbours; we smooth the whole resampled volume (exactly
    ``smooth_img(resample_img(img, target_affine), fwhm)``, then masked).
    """
    img = load_img(img, name=name)
    out_dtype = check_dtype(dtype)
    fwhm = check_fwhm(smoothing_fwhm)
    n_threads = check_threads(n_threads)
    if volumes is not None and len(img.shape) == 3:
        raise ImageError(
            f"volumes: {name} is a 3D image (one volume); a volume selection needs a 4D image"
        )
    keep_unsmoothed = keep_unsmoothed and fwhm is not None
    if keep_unsmoothed and (clean_args or target_affine is not None
                            or target_shape is not None):
        raise ValueError("keep_unsmoothed: the rows before smoothing are kept without "
                         "cleaning or target grid; expected neither")
    if mean_image and (target_affine is not None or target_shape is not None):
        raise ValueError("mean_image: the mean image is on in_file's grid; expected no "
                         "target grid")
    indices = resolve_volumes(volumes, n_volumes(img), name="volumes")
    if indices.size == 0:
        raise ValueError("volumes: the selection is empty; select at least one volume")
    clean_args = select_clean_args(clean_args, indices, n_volumes(img))
    mean = None
    # (a single volume's "mean" is that volume in its own dtype: mean_volume's own case)
    if (mask is None and not mask_strategy.endswith("-template") and len(img.shape) == 4
            and not (img.shape[3] == 1 and indices.size == 1)
            and target_affine is None and target_shape is None):
        once = _mask_in_one_pass(img, indices, mask_strategy, mask_args, fwhm, out_dtype,
                                 name=name, n_threads=n_threads,
                                 keep_unsmoothed=keep_unsmoothed, mean_image=mean_image)
        if isinstance(once, MaskedSignals):
            return _cleaned(once, clean_args, n_threads)
        mean = once  # the mask reached beyond the gathered voxels: a second pass
    mask_img, mean = prepare_mask(
        img, mask, indices, mask_strategy=mask_strategy, mask_args=mask_args,
        target_affine=target_affine, target_shape=target_shape, name=name,
        n_threads=n_threads, mean=mean,
    )
    target = _target_grid(img, target_affine, target_shape)
    grid_affine, grid_shape = target if target else (img.affine, img.shape[:3])
    check_same_grid(grid_shape, grid_affine, mask_img.shape, mask_img.affine,
                    names=(name if target is None else f"{name} resampled", "mask_file"))

    binary = np.asanyarray(mask_img.dataobj) != 0
    signals = prefaulted_empty((indices.size, int(binary.sum())), out_dtype)
    sigma = fwhm_to_sigma(fwhm, grid_affine) if fwhm is not None else None
    # nilearn clips resampled data to the range of the whole input. Clipping commutes with
    # masking, so without smoothing the rows are clipped once at the end; smoothing needs the
    # range before the pass (from the mask's mean pass, or a pass of its own).
    clip_range = None
    if target is not None and sigma is not None:
        clip_range = (mean[1:] if mean is not None
                      else data_range(img, indices, name=name, n_threads=n_threads))
    grid = Grid(*target) if target is not None else None
    clip_at_end = grid is not None and clip_range is None
    observed = [np.inf, -np.inf]
    unsmoothed = (prefaulted_empty(signals.shape, out_dtype) if keep_unsmoothed else None)
    total = np.zeros(img.shape[:3], dtype=np.float64, order="F") if mean_image else None
    for positions, row in stream_rows(img, indices, flat_indices(binary), target=grid,
                                      sigma=sigma, clip_range=clip_range,
                                      observed_range=observed if clip_at_end else None,
                                      n_threads=n_threads, name=name,
                                      keep_unsmoothed=keep_unsmoothed,
                                      keep_volume=mean_image):
        if keep_unsmoothed or mean_image:
            row, before, volume = row
            if unsmoothed is not None:
                unsmoothed[positions] = before
            if total is not None:
                total += volume  # once per volume read, in file order
        for position in positions:
            signals[position] = row
    if clip_at_end:
        np.clip(signals, min(observed[0], 0), max(observed[1], 0), out=signals)
    return _cleaned(MaskedSignals(signals, mask_img, indices, unsmoothed,
                                  _mean_image(total, indices)), clean_args, n_threads)


def _mean_image(total: NDArray | None, indices: NDArray[np.intp]) -> NDArray | None:
    """The mean of the volumes read (each distinct volume once), float32."""
    if total is None:
        return None
    return (total / np.unique(indices).size).astype(np.float32)


def _cleaned(masked: MaskedSignals, clean_args: dict[str, Any] | None, n_threads: int
             ) -> MaskedSignals:
    """The rows cleaned in place (``clean_args``), and the volumes kept."""
    if not clean_args:
        return masked
    with blas_threads(n_threads):
        signals = clean(masked.signals, copy=False, **clean_args)
    return MaskedSignals(signals, masked.mask, kept_volumes(masked.volumes, clean_args))


def _candidate_voxels(img, first: int, strategy: str, mask_args, *, name: str
                      ) -> NDArray[np.bool_] | None:
    """Where the mask of the run's mean will lie, guessed from one volume, cheaply.

    'epi': the voxels above 0.8 times that volume's own threshold (taken on every second
    voxel); 'background': the voxels that differ from its border's median. Then widened
    by the mask's opening plus one voxel, for the closing of the mask and the run's motion
    (about 1.25 times the mask's voxels on an MNI 2 mm run). None: no guess (the caller
    reads the run twice); a guess that falls short costs a second pass, never other numbers.
    """
    args = strategy_args(strategy, mask_args)
    (_, volume), = iter_volumes(img, [first], dtype=compute_dtype(img), name=name,
                                n_threads=1)
    volume = np.where(np.isfinite(volume), volume, 0)
    try:
        if strategy == "epi":
            epi_args = {k: v for k, v in args.items() if k != "connected"}
            _, threshold = epi_threshold(volume[::2, ::2, ::2], **{**epi_args, "opening": 0})
            guess = volume >= 0.8 * threshold if threshold > 0 else volume != 0
        else:
            guess = volume != np.median(border_values(volume, args["border_size"]))
    except (MaskError, ValueError):
        return None
    if not guess.any():
        return None
    from scipy.ndimage import binary_dilation

    return binary_dilation(guess, iterations=int(args.get("opening") or 0) + 1)


class _MeanAndRow:
    """One volume -> (a copy for the mean, in the data's own dtype; its gathered row)."""

    def __init__(self, work_dtype: np.dtype, to_row: VolumeToRow) -> None:
        self.work_dtype, self.to_row = work_dtype, to_row

    def __call__(self, volume: NDArray):
        for_mean = np.array(volume, order="F")  # the row's work below happens in place
        if volume.dtype != self.work_dtype:  # what a pass in the work dtype would read
            volume = volume.astype(self.work_dtype, order="F")
        row, _, nonfinite = self.to_row(volume)
        return for_mean, row, nonfinite


def _mask_in_one_pass(img, indices: NDArray[np.intp], strategy: str, mask_args, fwhm,
                      out_dtype: np.dtype, *, name: str, n_threads: int,
                      keep_unsmoothed: bool = False, mean_image: bool = False
                      ) -> MaskedSignals | MeanVolume:
    """A mask computed from the run's mean, and the masked rows, from one decompression.

    The mask needs the mean of every volume before a voxel can be chosen. So the pass that
    adds up the mean also gathers the voxels where the mask will lie, guessed from the first
    volume (:func:`_candidate_voxels`, a margin around that volume's own mask); once the
    mask is known, its columns are taken from those rows. The numbers are those of two
    passes (the same mean, summed in the same order as :func:`mean_volume`; the same rows).
    When the mask reaches a voxel outside the guess, the mean is returned for a second pass.
    Memory: the guessed voxels' rows (about 1.25 times the output, compacted into it in
    place), one volume per thread.
    """
    candidates = _candidate_voxels(img, int(indices.min()), strategy, mask_args, name=name)
    if candidates is None:
        return mean_volume(img, indices, name=name, n_threads=n_threads)
    natural = natural_dtype(img)
    # mean_volume's accumulator: the same sums in the same order, the same mean
    accumulate = np.dtype(np.float32) if natural == np.float32 else np.dtype(np.float64)
    total = np.zeros(img.shape[:3], dtype=accumulate, order="F")
    gather = flat_indices(candidates)
    sigma = fwhm_to_sigma(fwhm, img.affine) if fwhm is not None else None
    needed = gathered_box(gather, img.shape[:3]) if sigma is not None else None
    work = compute_dtype(img)
    process = _MeanAndRow(work, VolumeToRow(img.affine, gather, None, sigma, needed, None,
                                             False, None, keep_unsmoothed))
    # the report's mean image: the volumes in float32, summed in float64 (mean_volume's sum,
    # which the mask needs, is in the data's own precision)
    report_total = (np.zeros(img.shape[:3], dtype=np.float64, order="F") if mean_image
                    else None)
    rows = prefaulted_empty((indices.size, gather.size), work)
    before = prefaulted_empty(rows.shape, work) if keep_unsmoothed else None
    nonfinite_voxels = np.zeros(img.shape[:3], dtype=bool)
    nonfinite_values = 0
    with blas_threads(1):
        for positions, (for_mean, row, nonfinite) in map_volumes(
                img, indices, process, dtype=natural, n_threads=n_threads, name=name):
            if before is not None:
                row, unsmoothed_row, _ = row
                before[positions] = unsmoothed_row
            if report_total is not None:
                report_total += for_mean.astype(np.float32, copy=False)
            for position in positions:
                total += for_mean
                rows[position] = row
            if nonfinite is not None:
                nonfinite_values += int(np.count_nonzero(nonfinite))
                nonfinite_voxels |= nonfinite
    total /= accumulate.type(indices.size)
    mean = MeanVolume(total, np.nan, np.nan)  # the data range is for resampling: none here
    mask_img = compute_mask(img, strategy, mask_args=mask_args, name=name, mean=mean)
    binary = np.asanyarray(mask_img.dataobj) != 0
    column_of = np.full(binary.size, -1, dtype=np.intp)
    column_of[gather] = np.arange(gather.size)
    columns = column_of[flat_indices(binary)]
    if (columns < 0).any():
        return mean
    warn_nonfinite(name, nonfinite_voxels, nonfinite_values)
    return MaskedSignals(_keep_columns(rows, columns, out_dtype), mask_img, indices,
                         None if before is None else _keep_columns(before, columns, out_dtype),
                         _mean_image(report_total, indices))


def _keep_columns(rows: NDArray, columns: NDArray[np.intp], dtype: np.dtype) -> NDArray:
    """``rows[:, columns]`` in ``dtype``, for increasing ``columns``: in place (row ``i``
    moves to the front of the buffer, never over a row still to move) when the dtype stays,
    so that memory holds one matrix, not two."""
    if rows.dtype != dtype:
        return rows.take(columns, axis=1).astype(dtype)
    n_rows, width = rows.shape[0], columns.size
    flat = rows.reshape(-1)
    for i in range(n_rows):
        flat[i * width:(i + 1) * width] = rows[i].take(columns)  # take copies first
    return flat[: n_rows * width].reshape(n_rows, width)
