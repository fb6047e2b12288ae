"""Resampling images onto another voxel grid, as ``nilearn.image.resample_img`` does.

The work is split so that a streaming caller never needs a 4D array:

* :func:`resolve_target_grid` turns ``target_affine`` / ``target_shape`` into the output grid
  (nilearn's bounding-box rules for a 3x3 affine or a 4x4 affine without shape);
* :func:`resample_volume` resamples one 3D volume onto that grid, into a buffer the caller may
  reuse;
* :func:`resample_img` and :func:`resample_to_img` are the image-level functions, which read a
  4D file one volume at a time.

The numerics are nilearn 0.14.1's (``force_resample=True``): the same
``scipy.ndimage.affine_transform`` calls with the same arguments (a diagonal transform passed
as a vector), the same NaN/inf handling and the same clipping, hence identical results.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import nibabel as nib
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import linalg
from scipy.ndimage import affine_transform, binary_dilation

from ..io.images import ImageLike, load_img, natural_dtype, new_img_like, same_grid
from ..io.volumes import iter_volumes
from .resampling_checks import (
    check_affine,
    check_anchor,
    check_grid_shape,
    check_interpolation,
    check_resample_options,
    check_targets,
)

Interpolation = Literal["continuous", "linear", "nearest"]

#: Number of voxels compared at a time by the binary-data check (stops at the first non-binary).
_BINARY_CHECK_BLOCK = 1 << 16


class BoundingBoxError(ValueError):
    """The target grid contains none of the source data (all of it at negative indices)."""


# ---------------------------------------------------------------------------------------------
# Grids


def _bounds(shape3d: Sequence[int], affine: NDArray) -> tuple[NDArray, NDArray]:
    """Min and max, per axis, of the 8 corner-voxel centres mapped by ``affine``.

    The same arithmetic as nilearn's ``get_bounds`` (one matrix product on the corners).
    """
    a, b, c = (s - 1 for s in shape3d)
    box = np.array([[0.0, 0, 0, 1], [a, 0, 0, 1], [0, b, 0, 1], [0, 0, c, 1],
                    [a, b, 0, 1], [a, 0, c, 1], [0, b, c, 1], [a, b, c, 1]]).T
    box = np.dot(affine, box)[:3]
    return box.min(axis=-1), box.max(axis=-1)


def resolve_target_grid(
    source_shape3d: Sequence[int],
    source_affine: ArrayLike,
    target_affine: ArrayLike | None = None,
    target_shape: Sequence[int] | None = None,
) -> tuple[NDArray[np.float64], tuple[int, int, int]]:
    """The 4x4 affine and 3D shape of the grid ``resample_img`` would produce.

    Parameters
    ----------
    source_shape3d : sequence of 3 int
        Spatial shape of the source image.
    source_affine : array of shape (4, 4)
        Voxel-to-world affine of the source image.
    target_affine : array of shape (3, 3) or (4, 4), optional
        A 3x3 matrix gives the axes only: the offset and the shape are those of the tightest
        grid around the transformed source field of view. A 4x4 matrix without
        ``target_shape`` keeps its offset (voxel (0, 0, 0)) and the shape extends to the
        last transformed source voxel (``ceil(max) + 1`` per axis).
    target_shape : sequence of 3 int, optional
        Requires a 4x4 ``target_affine``.

    Returns
    -------
    affine : numpy.ndarray of shape (4, 4)
    shape : tuple of 3 int
        The source grid itself when both targets are None.

    Raises
    ------
    ValueError
        Bad affine or shape, or ``target_shape`` without a 4x4 ``target_affine``.
    BoundingBoxError
        The transformed source lies entirely at negative indices of the 4x4 target grid.

    Examples
    --------
    >>> affine, shape = resolve_target_grid((7, 8, 9), np.eye(4), np.diag([2.0, 2.0, 2.0]))
    >>> shape
    (4, 5, 5)
    """
    shape3d = check_grid_shape(source_shape3d, "source_shape3d")
    source_affine = check_affine(source_affine, "source_affine", [(4, 4)])
    if target_shape is not None:
        target_shape = check_grid_shape(target_shape, "target_shape")
        check_anchor(target_affine, target_shape)
    if target_affine is None:
        return source_affine.copy(), shape3d
    target = check_affine(target_affine, "target_affine", [(3, 3), (4, 4)])

    missing_offset = target.shape == (3, 3)
    if missing_offset:
        embedded = np.eye(4)
        embedded[:3, :3] = target
        target = embedded
    lows, highs = _bounds(shape3d, np.linalg.inv(target).dot(source_affine))
    if missing_offset:
        target[:3, 3] = target[:3, :3].dot(lows)
        highs = highs - lows
    if target_shape is None:
        target_shape = tuple(int(np.ceil(h)) + 1 for h in highs)
    if np.any(highs < 0):
        raise BoundingBoxError(
            "target_affine: the target grid contains none of the source data (the transformed "
            f"field of view ends at voxel {np.round(highs, 3).tolist()}); choose a target "
            "affine whose field of view overlaps the image"
        )
    return target, target_shape


def _voxel_transform(source_affine: NDArray, target_affine: NDArray) -> tuple[NDArray, NDArray]:
    """Matrix (a vector when diagonal) and offset mapping target voxels to source voxels."""
    if np.all(target_affine == source_affine):
        transform = np.eye(4)  # nilearn's "more numerically stable" shortcut
    else:
        transform = np.dot(linalg.inv(source_affine), target_affine)
    matrix, offset = transform[:3, :3], transform[:3, 3]
    if np.all(np.diag(np.diag(matrix)) == matrix):
        matrix = np.diag(matrix)  # lets scipy use its faster zoom/shift path, as nilearn does
    return matrix, offset


def resampled_dtype(dtype: np.dtype | type | str, interpolation: Interpolation) -> np.dtype:
    """Output dtype of resampling data of ``dtype``, as in nilearn.

    Continuous interpolation of signed integers gives the float of the same size (float32 at
    least); everything else keeps its dtype. The byte order is always native (nilearn keeps a
    non-native byte order in some cases; the values are the same).

    Examples
    --------
    >>> resampled_dtype(np.int16, "continuous"), resampled_dtype(np.int16, "nearest")
    (dtype('float32'), dtype('int16'))
    """
    check_interpolation(interpolation)
    dtype = np.dtype(dtype)
    if interpolation == "continuous" and dtype.kind == "i":
        return np.dtype(np.float64) if dtype.itemsize >= 8 else np.dtype(np.float32)
    return dtype.newbyteorder("=")


# ---------------------------------------------------------------------------------------------
# One volume


def _extrapolate_out_mask(data: NDArray, mask: NDArray[np.bool_], iterations: int) -> NDArray:
    """nilearn's ``extrapolate_out_mask``: fill the voxels around ``mask`` layer by layer.

    Each iteration gives the voxels of a one-voxel (6-connected) dilation of the mask the mean
    of their in-mask neighbours; voxels further away become 0. Float64 result, as nilearn's,
    with the six neighbours summed in nilearn's order so that the means are bit-identical.
    Only the shell voxels are visited, through flat indices into a NaN-padded copy.
    """
    nx, ny, nz = mask.shape
    steps = np.array([(ny + 2) * (nz + 2), -(ny + 2) * (nz + 2), nz + 2, -(nz + 2), 1, -1])
    for _ in range(iterations):
        new_mask = binary_dilation(mask)
        padded = np.full((nx + 2, ny + 2, nz + 2), np.nan)
        inner = padded[1:-1, 1:-1, 1:-1]
        np.copyto(inner, data, where=mask)
        i, j, k = np.nonzero(new_mask & ~mask)
        flat = ((i + 1) * (ny + 2) + (j + 1)) * (nz + 2) + (k + 1)
        neighbours = padded.ravel()[flat[np.newaxis, :] + steps[:, np.newaxis]]
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.nansum(neighbours, axis=0) / np.sum(np.isfinite(neighbours), axis=0)
        means[~np.isfinite(means)] = 0
        data = np.zeros(mask.shape)
        data[i, j, k] = means
        data[mask] = inner[mask]
        mask = new_mask
    return data


def _is_binary(data: NDArray) -> bool:
    """True if every value is 0 or 1 (stops at the first block that is not)."""
    flat = data.ravel(order="K")  # a view for C- or F-contiguous data
    for start in range(0, flat.size, _BINARY_CHECK_BLOCK):
        block = flat[start : start + _BINARY_CHECK_BLOCK]
        if not ((block == 0) | (block == 1)).all():
            return False
    return True


def _resample_into(
    data: NDArray, matrix: NDArray, offset: NDArray, order: int, fill_value: float, out: NDArray
) -> NDArray:
    """Resample one volume into ``out`` (nilearn's ``_resample_one_img``), no clipping."""
    non_finite = None
    if data.dtype.kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            non_finite = ~finite
            warnings.warn(
                "NaNs or infinite values are present in the data passed to resample. This is "
                "a bad thing as they make resampling ill-defined and much slower.",
                RuntimeWarning, stacklevel=3,
            )
            data = _extrapolate_out_mask(data, finite, iterations=2)
    if order != 0 and _is_binary(data):
        warnings.warn(
            "Resampling binary images with continuous or linear interpolation. This might "
            "lead to unexpected results. You might consider using nearest interpolation "
            "instead.", UserWarning, stacklevel=3,
        )
    affine_transform(
        data, matrix, offset=offset, output_shape=out.shape, output=out, cval=fill_value,
        order=order,
    )
    if non_finite is not None:
        out[
            affine_transform(non_finite, matrix, offset=offset, output_shape=out.shape, order=0)
        ] = np.nan
    return out


def _clip_bounds(vmin, vmax):
    """nilearn's clip range: the data range extended to include 0."""
    return min(vmin, 0), max(vmax, 0)


def _nan_range(data: NDArray):
    """``(nanmin, nanmax)`` in the data's own scalar type (NaN for an all-NaN volume)."""
    if data.dtype.kind != "f":
        return data.min(), data.max()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmin(data), np.nanmax(data)


def _warn_cast(source: np.dtype, target: np.dtype) -> None:
    if np.dtype(source).kind == "i" and target.kind == "f":
        warnings.warn(
            f"Continuous interpolation of {np.dtype(source).name} data: the resampled data "
            f"is {target.name}", UserWarning, stacklevel=3,
        )


def resample_volume(
    data3d: ArrayLike,
    source_affine: ArrayLike,
    target_affine: ArrayLike,
    target_shape: Sequence[int],
    *,
    interpolation: Interpolation = "continuous",
    clip: bool | tuple = True,
    fill_value: float = 0.0,
    out: NDArray | None = None,
) -> NDArray:
    """Resample one 3D volume onto a target grid, as ``nilearn.image.resample_img`` does.

    ``scipy.ndimage.affine_transform`` with spline order 3, 1 or 0, ``mode='constant'`` and
    ``cval=fill_value``. Non-finite values are first replaced by nilearn's two-layer
    extrapolation of their finite neighbours (0 further away), then put back as NaN where an
    order-0 resampling of the non-finite mask lands.

    Parameters
    ----------
    data3d : array of shape (X, Y, Z)
        Bool, integer, float32 or float64 data.
    source_affine : array of shape (4, 4)
    target_affine : array of shape (4, 4)
        The output grid, e.g. from :func:`resolve_target_grid`.
    target_shape : sequence of 3 int
    interpolation : {'continuous', 'linear', 'nearest'}
    clip : bool or (vmin, vmax)
        True clips the result to ``[min(data, 0), max(data, 0)]`` of this volume (NaN
        ignored). To reproduce ``resample_img`` on a 4D image, which clips with the range of
        the whole 4D data, pass that range as a tuple: it is extended to include 0 the same
        way. False does not clip.
    fill_value : float
        Value of the output voxels outside the source field of view.
    out : numpy.ndarray, optional
        Buffer of shape ``target_shape`` and dtype :func:`resampled_dtype` to write into (for
        instance one volume of a preallocated 4D output).

    Returns
    -------
    numpy.ndarray
        ``out`` if given, else a new Fortran-ordered array of dtype
        :func:`resampled_dtype` (continuous interpolation of signed integers gives floats,
        with a warning).
    """
    data = np.asanyarray(data3d)
    if data.ndim != 3:
        raise ValueError(f"data3d: expected a 3D volume, got shape {data.shape}")
    if data.dtype.kind not in "biuf" or data.dtype == np.float16:
        raise TypeError(
            f"data3d: dtype {data.dtype} is not supported; expected bool, integers, float32 "
            "or float64"
        )
    order, clip, fill_value = check_resample_options(interpolation, clip, fill_value)
    source_affine = check_affine(source_affine, "source_affine", [(4, 4)])
    if np.shape(target_affine) == (3, 3):
        raise ValueError(
            "target_affine: resample_volume needs the 4x4 affine of the output grid, got a "
            "3x3 matrix; get the full grid from resolve_target_grid first"
        )
    target_affine = check_affine(target_affine, "target_affine", [(4, 4)])
    target_shape = check_grid_shape(target_shape, "target_shape")
    dtype = resampled_dtype(data.dtype, interpolation)
    if out is None:
        out = np.zeros(target_shape, dtype=dtype, order="F")
    elif not isinstance(out, np.ndarray) or out.shape != target_shape or out.dtype != dtype:
        raise ValueError(
            f"out: expected an array of shape {target_shape} and dtype {dtype}, got "
            f"{getattr(out, 'shape', type(out).__name__)} {getattr(out, 'dtype', '')}".rstrip()
        )
    _warn_cast(data.dtype, dtype)
    matrix, offset = _voxel_transform(source_affine, target_affine)
    _resample_into(data, matrix, offset, order, fill_value, out)
    if clip is True:
        clip = (np.nanmin(data), np.nanmax(data))
    if clip is not False and dtype.kind != "b":
        out.clip(*_clip_bounds(*clip), out=out)
    return out


# ---------------------------------------------------------------------------------------------
# Images


def resample_img(
    img: ImageLike,
    target_affine: ArrayLike | None = None,
    target_shape: Sequence[int] | None = None,
    interpolation: Interpolation = "continuous",
    *,
    clip: bool = True,
    fill_value: float = 0.0,
) -> nib.spatialimages.SpatialImage:
    """Resample a 3D or 4D image, as ``nilearn.image.resample_img`` (0.14.1).

    Semantics of ``force_resample=True, copy_header=True``. A 4D image is resampled volume by
    volume: a file is read one volume at a time and only the output is held in memory, in
    :func:`resampled_dtype` (float32 for int16 or float32 data), never as a float64 copy.

    Parameters
    ----------
    img : str, os.PathLike or nibabel image
        3D or 4D image.
    target_affine : array of shape (3, 3) or (4, 4), optional
        See :func:`resolve_target_grid`.
    target_shape : sequence of 3 int, optional
        Requires a 4x4 ``target_affine``.
    interpolation : {'continuous', 'linear', 'nearest'}
        Spline order 3, 1 or 0.
    clip : bool
        Clip the result to ``[min(data, 0), max(data, 0)]`` over the whole input (NaN
        ignored), which removes the spline's overshoot.
    fill_value : float
        Value outside the source field of view.

    Returns
    -------
    nibabel image
        Of the input's class (a Nifti1Pair gives a Nifti1Image), with the input's header. A
        copy of the input when nothing is to be done: both targets None, or ``target_shape``
        equal to the image's with an ``allclose`` 4x4 ``target_affine``. As in nilearn, a
        4x4 affine equal to the image's but *without* ``target_shape`` is resampled (an
        identity transform).

    Notes
    -----
    Differences from nilearn, deliberate: the header's data dtype is the data's (see
    :func:`~nipype_maskers.core.io.images.new_img_like`); the data are always read from
    ``img.dataobj``, whereas nilearn uses nibabel's cache when ``get_fdata`` was called
    before (then computing in float64); the output byte order is native.
    """
    order, clip, fill_value = check_resample_options(interpolation, clip, fill_value)
    if not isinstance(clip, bool):
        raise TypeError(f"clip: expected a bool, got {clip!r}")
    check_targets(target_affine, target_shape)
    img = load_img(img, name="img")
    source_affine = check_affine(img.affine, "img.affine", [(4, 4)])

    if target_affine is None and target_shape is None:
        return _copy_img(img)
    if hasattr(img, "get_sform") and not img.get_sform(coded=True)[1]:
        warnings.warn(
            "The provided image has no sform in its header. Please check the provided file. "
            "Results may not be as expected.", UserWarning, stacklevel=2,
        )
    if target_shape is not None and same_grid(
        target_shape, np.asarray(target_affine, dtype=np.float64), img.shape, source_affine
    ):
        return _copy_img(img)

    grid_affine, grid_shape = resolve_target_grid(
        img.shape[:3], source_affine, target_affine, target_shape
    )
    matrix, offset = _voxel_transform(source_affine, grid_affine)
    source_dtype = natural_dtype(img)
    dtype = resampled_dtype(source_dtype, interpolation)
    _warn_cast(source_dtype, dtype)

    n_vols = img.shape[3] if len(img.shape) == 4 else None
    out = np.zeros(grid_shape + ((n_vols,) if n_vols else ()), dtype=dtype, order="F")
    lows, highs = [], []
    for index, volume in _volumes(img):
        target = out if n_vols is None else out[..., index]
        _resample_into(volume, matrix, offset, order, fill_value, target)
        if clip:
            low, high = _nan_range(volume)
            lows.append(low)
            highs.append(high)
    if clip and dtype.kind != "b":
        # nilearn's np.nanmin/np.nanmax over the whole input, in the data's scalar type
        out.clip(*_clip_bounds(np.nanmin(np.array(lows)), np.nanmax(np.array(highs))), out=out)
    return new_img_like(img, out, grid_affine)


def _volumes(img: nib.spatialimages.SpatialImage):
    """``(index, volume)`` pairs: a file is streamed, an in-memory array is sliced (no copy)."""
    if len(img.shape) == 3:
        yield 0, np.asanyarray(img.dataobj)
        return
    if nib.is_proxy(img.dataobj):
        for positions, volume in iter_volumes(img, name="img"):
            yield int(positions[0]), volume
        return
    data = np.asanyarray(img.dataobj)
    for index in range(data.shape[3]):
        yield index, data[..., index]


def _copy_img(img: nib.spatialimages.SpatialImage):
    """nilearn's ``copy_img``: a new image with a copy of the data and the header."""
    return new_img_like(img, np.array(np.asanyarray(img.dataobj)), img.affine.copy())


def resample_to_img(
    source_img: ImageLike,
    target_img: ImageLike,
    interpolation: Interpolation = "continuous",
    *,
    clip: bool = False,
    fill_value: float = 0.0,
) -> nib.spatialimages.SpatialImage:
    """Resample ``source_img`` onto the grid of ``target_img``, as nilearn's ``resample_to_img``.

    Only the target's affine and spatial shape (``shape[:3]``) are used; its data are never
    read. Note the default ``clip=False``, unlike :func:`resample_img`.

    Parameters
    ----------
    source_img : str, os.PathLike or nibabel image
        3D or 4D image to resample.
    target_img : str, os.PathLike or nibabel image
        Image whose grid is the output's.
    interpolation : {'continuous', 'linear', 'nearest'}
    clip : bool
    fill_value : float

    Returns
    -------
    nibabel image
    """
    check_interpolation(interpolation)
    target = load_img(target_img, name="target_img")
    return resample_img(
        source_img, target_affine=target.affine, target_shape=target.shape[:3],
        interpolation=interpolation, clip=clip, fill_value=fill_value,
    )
