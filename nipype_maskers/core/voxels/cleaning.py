"""Voxel-wise cleaning of a 4D image: mask -> ``clean`` -> back to volumes.

nilearn does this as ``NiftiMasker(mask_img, <cleaning options>).fit_transform(img)`` followed
by ``inverse_transform``: the 4D image is loaded whole, copied, masked, cleaned (with float64
temporaries) and unmasked into a new dense 4D array. Here the volumes are streamed into one
``(n_volumes, n_voxels)`` matrix (:func:`~nipype_maskers.core.voxels.masker.mask_volumes`),
cleaned in place block by block (:func:`~nipype_maskers.core.signal.cleaning.clean` with
``copy=False``), and given back either as an image (:func:`clean_img`) or one volume at a time
(:func:`unmasked_volumes`), so that a caller can write the output file without ever holding the
dense 4D result.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any, NamedTuple

import nibabel as nib
import numpy as np
from numpy.typing import DTypeLike, NDArray

from ..io.images import ImageLike, load_img, n_volumes, new_img_like
from ..io.streaming import blas_threads, check_threads
from ..signal.cleaning import clean
from ..signal.inputs import as_confounds, check_options, check_sample_mask, split_runs
from ..spatial.masking import flat_indices, load_mask
from .masked_run import MaskedRun
from .masker import check_dtype, mask_volumes

__all__ = [
    "CleanedSignals",
    "check_clean_args",
    "clean_img",
    "clean_masked",
    "output_header",
    "unmasked_volumes",
]


class CleanedSignals(NamedTuple):
    """What :func:`clean_masked` returns."""

    signals: NDArray  #: (n_kept_volumes, n_voxels), the mask's voxels in C order
    mask: NDArray[np.bool_]  #: the 3D binary mask
    header: nib.Nifti1Header  #: header of the output 4D image (shape, dtype, affine, TR)


def check_clean_args(clean_args: dict[str, Any], n_volumes: int) -> None:
    """Check the keyword arguments of :func:`~.signal.cleaning.clean` against a number of volumes.

    Everything ``clean`` would refuse (unknown options, ``high_pass >= low_pass``, filtering
    without ``t_r``, confounds or ``runs`` of the wrong length, a bad ``sample_mask``) is
    refused here, before any data are read. Warnings (a cutoff clamped to Nyquist) are left
    to ``clean``, which emits them once.

    Raises
    ------
    ValueError, TypeError
        With ``clean``'s messages, which name the argument.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_options(
            clean_args.get("standardize", "zscore_sample"),
            clean_args.get("filter", "butterworth"),
            clean_args.get("low_pass"), clean_args.get("high_pass"),
            clean_args.get("t_r", 2.5), clean_args.get("butterworth_order", 5),
            clean_args.get("butterworth_padtype", "odd"), clean_args.get("butterworth_padlen"),
        )  # fmt: skip
    as_confounds(clean_args.get("confounds"), n_volumes)
    run_rows, _ = split_runs(clean_args.get("runs"), n_volumes)
    check_sample_mask(clean_args.get("sample_mask"), run_rows, n_volumes)


def output_header(
    ref: nib.spatialimages.SpatialImage,
    affine: NDArray,
    shape: tuple[int, ...],
    dtype: DTypeLike,
    *,
    t_r: float | None = None,
) -> nib.Nifti1Header:
    """The header of a float image derived from ``ref``: ``ref``'s header, new data layout.

    The codes, description, units and extensions of a NIfTI ``ref`` are kept; the shape,
    dtype and affine are set; scaling and display range are removed; the byte order is
    native. With ``t_r``, the fourth zoom is
    ``t_r`` and the time unit seconds, so the TR actually used travels with the data.
    """
    source = ref.header if isinstance(ref.header, nib.Nifti1Header) else None
    header = nib.Nifti1Header() if source is None else source.copy()
    if header.endianness != nib.volumeutils.native_code:
        header = header.as_byteswapped(nib.volumeutils.native_code)
    img = nib.Nifti1Image(np.zeros((1,) * len(shape), dtype=dtype), affine, header)
    header = img.header
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_slope_inter(None, None)
    header["cal_min"] = header["cal_max"] = 0  # the input's display range does not apply
    header["vox_offset"] = 0  # recomputed when written
    if t_r is not None and len(shape) == 4:
        space_unit, _ = header.get_xyzt_units()
        header.set_xyzt_units(space_unit if space_unit != "unknown" else "mm", "sec")
        header["pixdim"][4] = t_r
    return header


def clean_masked(
    img: ImageLike,
    mask: ImageLike,
    *,
    clean_args: dict[str, Any] | None = None,
    dtype: DTypeLike = np.float32,
    n_threads: int | None = None,
    masked: MaskedRun | None = None,
) -> CleanedSignals:
    """Mask a 4D image and clean the voxel time series, without building 4D arrays.

    Parameters
    ----------
    img : path or image
        4D data.
    mask : path or image
        A binary mask on the data's grid.
    clean_args : dict, optional
        Keyword arguments of :func:`~nipype_maskers.core.signal.cleaning.clean` (``t_r``,
        ``detrend``, ``standardize``, ``low_pass``, ``confounds``, ``sample_mask``...).
        None: no cleaning, the masked data are returned as they are.
    dtype : {'float32', 'float64'}
        Dtype of the matrix (and of the output image); the cleaning itself works on float64
        blocks of columns whatever this is.
    n_threads : int, optional
        Threads for reading (:func:`~nipype_maskers.core.voxels.masker.mask_volumes`) and for
        BLAS in the cleaning.
    masked : MaskedRun, optional
        ``img``'s volumes already read in ``mask`` (unsmoothed): its rows are cleaned instead
        of streaming ``img`` again (same numbers, bit for bit); ``img`` gives the header.

    Returns
    -------
    CleanedSignals
        ``signals`` (n_kept_volumes, n_voxels), the binary ``mask``, and the output
        ``header`` (the input's header, on the mask's affine, one volume per kept volume,
        the ``t_r`` of ``clean_args`` as the fourth zoom).

    Notes
    -----
    Peak memory is the ``(n_volumes, n_voxels)`` matrix in ``dtype`` plus a few volumes and
    8 MB column blocks: the image is streamed into the matrix, and ``clean`` overwrites it.
    The cleaning options are checked (:func:`check_clean_args`) before the data are read.
    """
    img = load_img(img, name="in_file", ndim=4)
    out_dtype = check_dtype(dtype)
    binary, affine = load_mask(mask, name="mask_file")
    if clean_args is not None:
        check_clean_args(clean_args, n_volumes(img))
    if masked is not None:
        masked.check_source(img)
        masked.check_smoothing(None)
        if not np.array_equal(masked.mask, binary):
            raise ValueError("mask_file: not the mask of masked_file's rows; expected the mask "
                             "they were read in (NiftiMasker's mask_file)")
        signals = masked.take(np.arange(masked.n_volumes)).astype(out_dtype, copy=False)
    else:
        signals = mask_volumes(img, new_img_like(None, binary.astype(np.int8), affine),
                               dtype=out_dtype, n_threads=n_threads).signals
    if clean_args is not None:
        with blas_threads(check_threads(n_threads)):
            signals = clean(signals, **clean_args, copy=False)
    t_r = None if clean_args is None else clean_args.get("t_r")
    header = output_header(img, affine, (*binary.shape, signals.shape[0]), out_dtype, t_r=t_r)
    return CleanedSignals(signals, binary, header)


def unmasked_volumes(signals: NDArray, mask: NDArray[np.bool_]) -> Iterator[NDArray]:
    """Yield each row of ``signals`` as a 3D volume (0 outside ``mask``), in order.

    The volume is a reused Fortran-ordered buffer, overwritten at the next step: write or
    copy it before asking for the next one. ``volume.reshape(-1, order='F')`` is a view, in
    NIfTI's on-disk voxel order.
    """
    if signals.ndim != 2 or signals.shape[1] != int(mask.sum()):
        raise ValueError(
            f"signals: expected (n_volumes, {int(mask.sum())}) values (one column per mask "
            f"voxel), got shape {signals.shape}"
        )
    volume = np.zeros(mask.shape, dtype=signals.dtype, order="F")
    flat = volume.reshape(-1, order="F")
    positions = flat_indices(mask)
    for row in signals:
        flat[positions] = row
        yield volume


def clean_img(
    img: ImageLike,
    mask: ImageLike,
    *,
    clean_args: dict[str, Any] | None = None,
    dtype: DTypeLike = np.float32,
    n_threads: int | None = None,
) -> nib.Nifti1Image:
    """Clean the voxel time series of a 4D image inside a mask.

    The same numbers as ``nilearn.maskers.NiftiMasker(mask_img, **options)
    .fit_transform(img)`` then ``inverse_transform``, with the fixes of
    :func:`~nipype_maskers.core.signal.cleaning.clean`.

    Parameters
    ----------
    img, mask, clean_args, dtype, n_threads
        As :func:`clean_masked`.

    Returns
    -------
    nibabel.Nifti1Image
        4D, on the mask's grid, one volume per kept volume, 0 outside the mask, in ``dtype``.

    Notes
    -----
    This builds the dense 4D result in memory (on top of the matrix). To write it to a file,
    iterate :func:`unmasked_volumes` over :func:`clean_masked`'s output instead, as the
    ``CleanImage`` interface does: peak memory then drops by the size of the 4D result.

    Examples
    --------
    >>> data = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    >>> out = clean_img(nib.Nifti1Image(data, np.eye(4)),
    ...                 nib.Nifti1Image(np.ones((2, 3, 4), np.int8), np.eye(4)),
    ...                 clean_args={"detrend": True, "standardize": None})
    >>> out.shape, bool(np.allclose(out.get_fdata(), 0, atol=1e-4))
    ((2, 3, 4, 5), True)
    """
    cleaned = clean_masked(img, mask, clean_args=clean_args, dtype=dtype, n_threads=n_threads)
    data = np.empty(cleaned.header.get_data_shape(), dtype=cleaned.signals.dtype, order="F")
    for t, volume in enumerate(unmasked_volumes(cleaned.signals, cleaned.mask)):
        data[..., t] = volume
    return nib.Nifti1Image(data, cleaned.header.get_best_affine(), cleaned.header)
