"""Gaussian smoothing of volumes, as ``nilearn.image.smooth_array`` does it."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d

_FWHM_OVER_SIGMA = np.sqrt(8 * np.log(2))

Fwhm = float | Sequence[float | None] | None


def check_fwhm(fwhm: Fwhm, *, name: str = "smoothing_fwhm") -> NDArray[np.float64] | None:
    """Validate a FWHM (mm) and return it as 3 values, or None for no smoothing.

    A scalar applies to all three axes; None or 0 on an axis means no smoothing along it.
    ``0`` overall warns and means no smoothing, as in nilearn.

    Examples
    --------
    >>> check_fwhm(6).tolist()
    [6.0, 6.0, 6.0]
    >>> check_fwhm([4, None, 0]).tolist()
    [4.0, 0.0, 0.0]
    """
    if fwhm is None:
        return None
    if isinstance(fwhm, str):
        raise ValueError(f"{name}: expected a number of mm or 3 of them, got {fwhm!r}")
    values = np.atleast_1d(np.asarray(fwhm, dtype=object))
    if values.ndim != 1 or values.size not in (1, 3):
        raise ValueError(f"{name}: expected one FWHM in mm or three (one per axis), got {fwhm!r}")
    try:
        values = np.array([0.0 if v is None else float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected numbers (mm), got {fwhm!r}") from None
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"{name}: the FWHM must be finite and >= 0 mm, got {fwhm!r}")
    if not np.any(values > 0):
        warnings.warn(
            f"{name} is {fwhm!r}: no smoothing will be performed", UserWarning, stacklevel=2
        )
        return None
    return np.broadcast_to(values, (3,)).copy()


def fwhm_to_sigma(fwhm: NDArray, affine: NDArray) -> NDArray[np.float64]:
    """Gaussian sigma in voxels along each array axis for a FWHM in mm.

    The voxel size along an axis is the norm of the affine's column for that axis, so oblique
    and non-cubic voxels are handled (nilearn's rule).

    Examples
    --------
    >>> fwhm_to_sigma(np.array([6.0, 6.0, 6.0]), np.diag([2.0, 2.0, 3.0, 1.0])).round(4).tolist()
    [1.274, 1.274, 0.8493]
    """
    voxel_size = np.sqrt(np.sum(np.asarray(affine, dtype=np.float64)[:3, :3] ** 2, axis=0))
    return np.asarray(fwhm, dtype=np.float64) / (_FWHM_OVER_SIGMA * voxel_size)


def kernel_radius(sigma: float, truncate: float = 4.0) -> int:
    """Half-width in voxels of scipy's Gaussian kernel (``gaussian_filter1d``'s ``lw``)."""
    return int(truncate * float(sigma) + 0.5)


def smooth_volume(volume: NDArray, sigma: NDArray,
                  needed: tuple[NDArray, NDArray] | None = None) -> NDArray:
    """Smooth one float volume in place, axis by axis (``gaussian_filter1d``, mode 'reflect').

    Non-finite values must have been set to 0 by the caller (nilearn does so first).

    Parameters
    ----------
    volume : numpy.ndarray
        3D float volume, modified in place.
    sigma : array of 3 floats
        Gaussian sigma in voxels per axis (0: that axis is not smoothed).
    needed : (lower corner, upper corner), optional
        The inclusive bounding box of the voxels whose smoothed values the caller will read
        (a mask's voxels). Each pass then filters only the box its successors need: the box
        widened by the kernel radius along the axes still to be filtered. Inside ``needed``
        the result is identical to smoothing the whole volume (every kernel reads the same
        input; at the array's faces the crop and the array share their edge); outside it,
        values are left partly smoothed.
    """
    if needed is None:
        for axis, s in enumerate(sigma):
            if s > 0.0:
                gaussian_filter1d(volume, s, axis=axis, output=volume)
        return volume
    low, high = (np.asarray(c, dtype=int) for c in needed)
    radius = np.array([kernel_radius(s) if s > 0 else 0 for s in sigma])
    for axis, s in enumerate(sigma):
        if s <= 0.0:
            continue
        # axes already filtered need only the box itself; this and later axes need the margin
        margin = np.where(np.arange(3) >= axis, radius, 0)
        start = np.maximum(low - margin, 0)
        stop = np.minimum(high + 1 + margin, volume.shape)
        box = volume[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))]
        gaussian_filter1d(box, s, axis=axis, output=box)
    return volume
