"""Loading NIfTI images, checking them, and building them from arrays.

Everything that turns a path into an image passes through here: :func:`load_img` checks the
file before any data is read (missing, not an image, a header that claims more data than the
file can hold, the wrong number of dimensions). :func:`new_img_like` is the one way the core
builds an image from an array, :func:`same_grid` its one grid comparison. Reading the volumes
of an image (one at a time, in file order) is :mod:`.volumes`'s.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.spatialimages import SpatialImage
from numpy.typing import NDArray

ImageLike = str | os.PathLike | SpatialImage

#: gzip cannot compress better than about 1032:1, so a header claiming more data than that
#: is impossible for the file and must be refused before anything is allocated.
_MAX_GZIP_RATIO = 1100


class ImageError(ValueError):
    """An input image that cannot be used: missing, unreadable, corrupt or of the wrong shape."""


def _describe(img: ImageLike) -> str:
    if isinstance(img, (str, os.PathLike)):
        return f"'{os.fspath(img)}'"
    filename = img.get_filename() if isinstance(img, SpatialImage) else None
    return f"'{filename}'" if filename else f"an in-memory {type(img).__name__}"


def load_img(img: ImageLike, *, name: str = "img", ndim: int | None = None) -> SpatialImage:
    """Load an image from a path (lazily) or check an already loaded one.

    Parameters
    ----------
    img : str, os.PathLike or nibabel.spatialimages.SpatialImage
        The image. A path is opened with :func:`nibabel.load`, which reads only the header:
        the data stays behind a lazy proxy.
    name : str
        The name of the input, used in error messages (``'in_file'``, ``'mask_file'``...).
    ndim : {None, 3, 4}
        Required number of dimensions. A 4D image with one volume is accepted as 3D; a 3D image
        is accepted as 4D with one volume (nilearn's ``atleast_4d``) only when ``ndim`` is None.

    Returns
    -------
    nibabel.spatialimages.SpatialImage

    Raises
    ------
    ImageError
        The file is missing, is not an image nibabel can read, claims more data than it can
        hold, or has the wrong number of dimensions.
    """
    if isinstance(img, (str, os.PathLike)):
        path = Path(img)
        if not path.exists():
            raise ImageError(f"{name}: no such file '{path}'")
        if path.is_dir():
            raise ImageError(f"{name}: '{path}' is a folder; expected a NIfTI file")
        try:
            img = nib.load(path)
        except Exception as exc:  # nibabel raises several types for unreadable files
            raise ImageError(
                f"{name}: '{path}' is not a readable NIfTI image ({exc}); "
                "expected a .nii or .nii.gz file"
            ) from exc
        _check_claimed_size(img, name)
    elif not isinstance(img, SpatialImage):
        raise TypeError(
            f"{name}: expected a path or a nibabel image, got {type(img).__name__}"
        )
    shape = img.shape
    if len(shape) < 3 or len(shape) > 4 or any(int(s) < 1 for s in shape):
        raise ImageError(
            f"{name}: {_describe(img)} has shape {tuple(shape)}; expected a 3D or 4D image"
        )
    if ndim == 3 and len(shape) == 4 and shape[3] != 1:
        raise ImageError(
            f"{name}: {_describe(img)} is 4D with {shape[3]} volumes; expected a 3D image "
            "(select one volume first)"
        )
    if ndim == 4 and len(shape) == 3:
        raise ImageError(
            f"{name}: {_describe(img)} is 3D with shape {tuple(shape)}; expected a 4D image "
            "(a time series)"
        )
    return img


def _check_claimed_size(img: SpatialImage, name: str) -> None:
    """Refuse a header that claims more data than the file can possibly hold."""
    proxy = img.dataobj
    filename = getattr(proxy, "file_like", None)
    if not nib.is_proxy(proxy) or not isinstance(filename, str):
        return
    try:
        claimed = int(getattr(proxy, "offset", 0)) + int(
            np.prod(proxy.shape, dtype=np.float64) * np.dtype(proxy.dtype).itemsize
        )
    except (TypeError, ValueError):
        return
    on_disk = os.path.getsize(filename)
    limit = on_disk * _MAX_GZIP_RATIO if filename.endswith(".gz") else on_disk
    if claimed > limit:
        raise ImageError(
            f"{name}: the header of '{filename}' claims shape {tuple(proxy.shape)} of "
            f"{np.dtype(proxy.dtype)} ({claimed / 2**20:.1f} MiB of data), more than the "
            f"{on_disk / 2**20:.1f} MiB file can hold; the file is truncated or its header "
            "is corrupt"
        )


def n_volumes(img: SpatialImage) -> int:
    """Number of volumes: the 4th dimension, or 1 for a 3D image."""
    return int(img.shape[3]) if len(img.shape) == 4 else 1


def natural_dtype(img: SpatialImage) -> np.dtype:
    """The dtype of ``np.asanyarray(img.dataobj)``, which nilearn computes in.

    The on-disk type when the header has no scaling; float64 when it scales (nibabel's
    read scaling promotes to the float64 of the slope).
    """
    proxy = img.dataobj
    if nib.is_proxy(proxy):
        slope = getattr(proxy, "slope", 1.0)
        inter = getattr(proxy, "inter", 0.0)
        if slope == 1.0 and inter == 0.0:
            return np.dtype(np.dtype(proxy.dtype).newbyteorder("="))
        return np.dtype(np.float64)
    return np.asanyarray(proxy).dtype


def compute_dtype(img: SpatialImage) -> np.dtype:
    """The float dtype a volume is processed in: float images keep theirs, integers -> float32.

    This is nilearn's rule (``apply_mask``'s ``dtype='f'`` and ``smooth_array``); int64 data
    goes to float64 to keep its precision.
    """
    dtype = natural_dtype(img)
    if dtype.kind == "f":
        return np.dtype(np.float64) if dtype.itemsize > 4 else np.dtype(np.float32)
    if dtype.kind in "iub" and dtype.itemsize >= 8:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def finite_range(volume: NDArray) -> tuple[float, float]:
    """Min and max of the finite values ((inf, -inf) when there are none).

    Plain min/max first: only a volume that holds NaN or inf pays for the masked pass.
    """
    low, high = volume.min(), volume.max()
    if volume.dtype.kind != "f" or (np.isfinite(low) and np.isfinite(high)):
        return float(low), float(high)
    finite = volume[np.isfinite(volume)]
    if not finite.size:
        return np.inf, -np.inf
    return float(finite.min()), float(finite.max())


def find_nonfinite(volume: NDArray, *, zero: bool = True) -> NDArray[np.bool_] | None:
    """Where ``volume`` holds NaN or inf; None when every value is finite.

    With ``zero`` those values are set to 0 in place (nilearn does so before smoothing and
    masking). Thread-safe: the caller adds up the masks, for one warning at the end of a pass
    (:func:`warn_nonfinite`).
    """
    if volume.dtype.kind != "f":
        return None
    # a finite sum proves every value finite: one fast pass in the common case (an overflow
    # to inf only sends us to the exact check below)
    if np.isfinite(volume.sum()):
        return None
    bad = ~np.isfinite(volume)
    if not bad.any():
        return None
    if zero:
        volume[bad] = 0
    return bad


def warn_nonfinite(name: str, nonfinite_voxels: NDArray[np.bool_], values: int) -> None:
    """One warning for a whole pass: how many voxels held NaN or inf, and that they became 0."""
    if values:
        warnings.warn(
            f"{name}: {int(nonfinite_voxels.sum())} voxels held NaN or inf values "
            f"({values} values over all volumes); they were set to 0, as nilearn does",
            RuntimeWarning,
            stacklevel=3,
        )


def same_grid(shape_a: Sequence[int], affine_a: NDArray, shape_b: Sequence[int],
              affine_b: NDArray) -> bool:
    """Whether two images share a voxel grid: nilearn's ``check_same_fov`` (equal 3D shapes
    and ``np.allclose`` affines). The one grid comparison of the package.

    Examples
    --------
    >>> same_grid((7, 8, 9, 20), np.eye(4), (7, 8, 9), np.eye(4) + 1e-9)
    True
    >>> same_grid((7, 8, 9), np.eye(4), (7, 8, 9), np.diag([2, 2, 2, 1]))
    False
    """
    return (tuple(int(s) for s in shape_a[:3]) == tuple(int(s) for s in shape_b[:3])
            and np.shape(affine_a) == np.shape(affine_b)
            and bool(np.allclose(affine_a, affine_b)))


def _downcast_int64(data: NDArray) -> NDArray:
    """nilearn's ``new_img_like``: 64-bit integers become int32 when the values fit."""
    if data.dtype not in (np.int64, np.uint64):
        return data
    info = np.iinfo(np.int32)
    if data.size and info.min <= data.min() and data.max() <= info.max:
        warnings.warn(
            "The image data has 64-bit integers; they fit in int32 and are stored as "
            "int32 (many tools cannot read int64 NIfTI)", UserWarning, stacklevel=3,
        )
        return data.astype(np.int32)
    return data


def new_img_like(ref: SpatialImage | None, data: NDArray, affine: NDArray | None = None
                 ) -> SpatialImage:
    """An image holding ``data``: the one way the core builds an image from an array.

    With ``ref`` (nilearn's ``new_img_like``): an image of ``ref``'s class with a copy of its
    header, scaling and display range reset, on ``affine`` (``ref``'s when None). Unlike
    nilearn, the header's data dtype is set to the array's: nilearn keeps the source's (an
    int16 header on float32 resampled data), so saving the image would quantize the values
    back into int16 with a scale factor (nilearn issue #3161).

    Without ``ref`` (masks, means, painted regions): a new Nifti1Image on ``affine``, spatial
    unit mm (and seconds for a 4D image).

    In both cases 64-bit integers that fit are stored as int32 (with a warning, as nilearn).

    Examples
    --------
    >>> mask = new_img_like(None, np.ones((2, 3, 4), np.int8), np.eye(4))
    >>> mask.get_data_dtype().name, mask.header.get_xyzt_units()
    ('int8', ('mm', 'unknown'))
    >>> new_img_like(mask, np.zeros((2, 3, 4), np.float32)).get_data_dtype().name
    'float32'
    """
    data = _downcast_int64(np.asanyarray(data))
    if ref is None:
        if affine is None:
            raise ValueError("affine: required to build an image without a reference image")
        out = nib.Nifti1Image(data, affine)
        out.header.set_data_dtype(data.dtype)
        out.header.set_xyzt_units("mm", "sec" if data.ndim == 4 else "unknown")
        return out
    affine = ref.affine if affine is None else affine
    header = ref.header.copy() if ref.header is not None else None
    if header is not None:
        fields = header.keys() if hasattr(header, "keys") else ()
        for field, value in (("scl_slope", 0.0), ("scl_inter", 0.0), ("glmax", 0.0),
                             ("cal_max", np.max), ("cal_min", np.min)):
            if field in fields:
                header[field] = (value(data) if data.size else 0.0) if callable(value) else value
        try:
            header.set_data_dtype(data.dtype)
        except Exception:  # a header class that cannot store this dtype keeps its own
            pass
    klass = nib.Nifti1Image if ref.__class__ is nib.Nifti1Pair else ref.__class__
    return klass(data, affine, header=header)


def mean_image(mean: NDArray, img: SpatialImage) -> nib.Nifti1Image:
    """A run's mean over time (3D) as a float32 image with the run's header, unscaled."""
    header = img.header.copy() if isinstance(img, nib.Nifti1Image) else None
    mean_img = nib.Nifti1Image(np.asarray(mean, dtype=np.float32), img.affine, header)
    mean_img.header.set_data_dtype(np.float32)
    mean_img.header.set_slope_inter(None, None)
    return mean_img
