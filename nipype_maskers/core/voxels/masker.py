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
    load_img,
    n_volumes,
    new_img_like,
    same_grid,
)
from ..io.streaming import (
    Grid,
    blas_threads,
    check_threads,
    data_range,
    prefaulted_empty,
    stream_rows,
)
from ..io.volumes import resolve_volumes
from ..signal.cleaning import clean
from ..spatial.masking import (
    MaskError,
    MeanVolume,
    check_same_grid,
    compute_mask,
    flat_indices,
    load_mask,
    mean_volume,
)
from ..spatial.smoothing import Fwhm, check_fwhm, fwhm_to_sigma


class MaskedSignals(NamedTuple):
    """What :func:`mask_volumes` returns."""

    signals: NDArray          #: (n_volumes, n_voxels), the mask's voxels in C order
    mask: nib.Nifti1Image     #: the mask actually used, on the output grid
    volumes: NDArray[np.intp]  #: the indices of the input volumes, one per row


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
) -> tuple[nib.Nifti1Image, MeanVolume | None]:
    """The mask NiftiMasker would use, on the output grid, and the mean if one was computed.

    A given mask is validated; a computed one uses ``mask_strategy`` on the selected volumes
    in the image's own space. Either is then resampled (nearest) to ``target_affine`` /
    ``target_shape`` as ``NiftiMasker.fit`` does.
    """
    mean = None
    if mask is None:
        if not mask_strategy.endswith("-template"):
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
    indices = resolve_volumes(volumes, n_volumes(img), name="volumes")
    if indices.size == 0:
        raise ValueError("volumes: the selection is empty; select at least one volume")
    clean_args = select_clean_args(clean_args, indices, n_volumes(img))
    mask_img, mean = prepare_mask(
        img, mask, indices, mask_strategy=mask_strategy, mask_args=mask_args,
        target_affine=target_affine, target_shape=target_shape, name=name,
        n_threads=n_threads,
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
    for positions, row in stream_rows(img, indices, flat_indices(binary), target=grid,
                                      sigma=sigma, clip_range=clip_range,
                                      observed_range=observed if clip_at_end else None,
                                      n_threads=n_threads, name=name):
        for position in positions:
            signals[position] = row
    if clip_at_end:
        np.clip(signals, min(observed[0], 0), max(observed[1], 0), out=signals)
    if clean_args:
        with blas_threads(n_threads):
            signals = clean(signals, copy=False, **clean_args)
        indices = kept_volumes(indices, clean_args)
    return MaskedSignals(signals, mask_img, indices)
