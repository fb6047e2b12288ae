"""Loading NIfTI images, checking them, and reading them one volume at a time.

Everything that turns a path into an image, or an image into arrays, passes through here:
:func:`load_img` checks the file before any data is read (missing, not an image, a header that
claims more data than the file can hold, the wrong number of dimensions), and
:func:`iter_volumes` streams the volumes of a 4D image in file order so that no caller ever
needs the whole 4D array in memory.
"""

from __future__ import annotations

import gzip
import os
import warnings
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.spatialimages import SpatialImage
from numpy.typing import NDArray

try:  # ISA-L's gzip decompresses about twice as fast as zlib; an optional extra ("fast").
    from isal import igzip as _fast_gzip
except ImportError:  # pragma: no cover - depends on the environment
    _fast_gzip = None

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


def resolve_volumes(
    volumes: int | slice | Sequence[int] | Sequence[bool] | NDArray | None,
    n: int,
    *,
    name: str = "volumes",
) -> NDArray[np.intp]:
    """Turn a volume selection into explicit indices, as ``nilearn.image.index_img`` reads it.

    Parameters
    ----------
    volumes : int, slice, sequence of int, sequence of bool, or None
        None selects every volume. Negative integers count from the end. A boolean sequence
        must have one entry per volume.
    n : int
        Number of volumes in the image.

    Returns
    -------
    numpy.ndarray of intp
        The selected indices, in the order requested (repeats allowed, as in numpy indexing).

    Examples
    --------
    >>> resolve_volumes(slice(0, 100), 300)[-1].item()
    99
    >>> resolve_volumes([True, False, True], 3).tolist()
    [0, 2]
    >>> resolve_volumes(-1, 5).tolist()
    [4]
    """
    if volumes is None:
        return np.arange(n)
    if isinstance(volumes, slice):
        return np.arange(n)[volumes]
    arr = np.asarray(volumes)
    if arr.dtype == bool:
        if arr.ndim != 1 or arr.size != n:
            raise ValueError(
                f"{name}: a boolean selection needs one entry per volume ({n}), got shape "
                f"{arr.shape}"
            )
        return np.flatnonzero(arr)
    if arr.ndim > 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        if arr.size and np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.intp)
        else:
            raise ValueError(
                f"{name}: expected an int, a slice, a list of ints or of booleans, got {volumes!r}"
            )
    arr = np.atleast_1d(arr).astype(np.intp)
    bad = (arr < -n) | (arr >= n)
    if bad.any():
        raise ValueError(
            f"{name}: index {int(arr[bad][0])} is out of range for an image with {n} volumes "
            f"(valid: {-n} to {n - 1})"
        )
    return np.where(arr < 0, arr + n, arr)


def index_img(img: ImageLike, index) -> nib.Nifti1Image:
    """Select volumes of a 4D image, like ``nilearn.image.index_img``.

    An int gives a 3D image, anything else a 4D image. Only the selected volumes are read.
    """
    img = load_img(img, name="img")
    indices = resolve_volumes(index, n_volumes(img), name="index")
    dtype = natural_dtype(img)
    data = np.empty(img.shape[:3] + (len(indices),), dtype=dtype, order="F")
    for positions, volume in iter_volumes(img, indices, dtype=dtype):
        for position in positions:
            data[..., position] = volume
    if isinstance(index, (int, np.integer)):
        data = data[..., 0]
    header = img.header.copy() if isinstance(img, nib.Nifti1Image) else None
    return nib.Nifti1Image(data, img.affine, header)


def _open_stream(filename: str):
    if filename.endswith(".gz"):
        return (_fast_gzip or gzip).open(filename, "rb")
    return open(filename, "rb")


def _streamable(img: SpatialImage) -> bool:
    proxy = img.dataobj
    return (
        nib.is_proxy(proxy)
        and isinstance(img, (nib.Nifti1Image, nib.Nifti2Image))
        and isinstance(getattr(proxy, "file_like", None), str)
        and getattr(proxy, "order", "F") == "F"
        and proxy.file_like.endswith((".nii", ".nii.gz"))
    )


class VolumeSource:
    """The selected volumes of an image, loaded one at a time in file order.

    :meth:`read` must be called for steps 0, 1, 2... in order (a ``.nii.gz`` is one sequential
    stream, decompressed exactly once); :meth:`convert` (scaling, dtype) may run anywhere.
    ``slots`` raw buffers are kept: the raw data of a step stays valid until its slot is read
    into again. Use as a context manager (it owns the open file).
    """

    def __init__(self, img: SpatialImage, indices: NDArray[np.intp], dtype: np.dtype,
                 name: str, slots: int = 1) -> None:
        order = np.argsort(indices, kind="stable")
        self.wanted, starts = np.unique(indices[order], return_index=True)
        self.groups = np.split(order, starts[1:]) if self.wanted.size else []
        self.img, self.dtype, self.name = img, dtype, name
        self.streamed = _streamable(img)
        self._stream = None
        self._position = 0
        if not self.streamed:
            return
        proxy = img.dataobj
        self.filename = proxy.file_like
        self.raw_dtype = np.dtype(proxy.dtype)
        self.shape3d = tuple(int(s) for s in img.shape[:3])
        self.nbytes = int(np.prod(self.shape3d)) * self.raw_dtype.itemsize
        self.slope, self.inter = float(proxy.slope), float(proxy.inter)
        self.scaled = not (self.slope == 1.0 and self.inter == 0.0)
        self._buffers = [bytearray(self.nbytes) for _ in range(slots if self.wanted.size else 0)]

    def __enter__(self) -> VolumeSource:
        if self.streamed and self.wanted.size:
            self._stream = _open_stream(self.filename)
            try:
                self._stream.seek(int(self.img.dataobj.offset))
            except (zlib.error, gzip.BadGzipFile, OSError) as exc:
                self._stream.close()
                raise self._corrupt(exc) from exc
        return self

    def __exit__(self, *exc_info) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def read(self, step: int, slot: int = 0) -> NDArray:
        """The raw data of volume ``wanted[step]`` (in-memory images: already a copy)."""
        volume_index = int(self.wanted[step])
        if not self.streamed:
            proxy = self.img.dataobj
            data = proxy if len(self.img.shape) == 3 else proxy[..., volume_index]
            # always a copy: callers work in place, and an in-memory array is the caller's
            return np.array(np.asanyarray(data), dtype=self.dtype, order="F", copy=True)
        try:
            if volume_index > self._position:
                _skip(self._stream, (volume_index - self._position) * self.nbytes,
                      self.filename)
            view = memoryview(self._buffers[slot])
            got = 0
            while got < self.nbytes:
                more = self._stream.readinto(view[got:])
                if not more:
                    raise EOFError(
                        f"volume {volume_index} of {n_volumes(self.img)} ends after {got} of "
                        f"its {self.nbytes} bytes"
                    )
                got += more
        except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
            raise self._corrupt(exc) from exc
        self._position = volume_index + 1
        return np.frombuffer(self._buffers[slot], dtype=self.raw_dtype).reshape(
            self.shape3d, order="F")

    def convert(self, raw: NDArray) -> NDArray:
        """The volume in the requested dtype, read scaling applied (may be ``raw`` itself)."""
        if not self.streamed:
            return raw
        if self.scaled:
            volume = raw.astype(np.result_type(self.dtype, np.float64))
            volume *= self.slope
            volume += self.inter
            return volume.astype(self.dtype, copy=False)
        return raw if self.raw_dtype == self.dtype else raw.astype(self.dtype)

    def _corrupt(self, exc: Exception) -> ImageError:
        return ImageError(
            f"{self.name}: '{self.filename}' is truncated or corrupt ({exc}); expected "
            f"{n_volumes(self.img)} volumes of shape {self.shape3d} ({self.raw_dtype})"
        )


def iter_volumes(
    img: SpatialImage,
    indices: Sequence[int] | NDArray | None = None,
    *,
    dtype: np.dtype | type | None = None,
    name: str = "in_file",
    n_threads: int = 2,
) -> Iterator[tuple[NDArray[np.intp], NDArray]]:
    """Read the volumes of an image one at a time, in file order.

    A NIfTI file on disk is read sequentially from its (possibly gzipped) stream, one volume's
    bytes at a time: peak memory is one volume, whatever the number of volumes, and a
    ``.nii.gz`` is decompressed exactly once.

    Parameters
    ----------
    img : SpatialImage
        A 3D or 4D image from :func:`load_img`.
    indices : sequence of int, optional
        Volumes to read (from :func:`resolve_volumes`); every volume when None. Repeated or
        unsorted indices are allowed.
    dtype : numpy dtype, optional
        Dtype of the yielded volumes (read scaling applied first); the image's
        :func:`natural_dtype` when None.
    name : str
        Name of the input for error messages.
    n_threads : int
        2 or more: the next volume is decompressed in a thread while the caller works on this
        one (zlib and ISA-L release the GIL while inflating). 1: everything in the calling
        thread.

    Yields
    ------
    positions : numpy.ndarray of intp
        The positions in ``indices`` this volume fills (several when an index is repeated).
    volume : numpy.ndarray
        The 3D volume, Fortran-ordered. It may be a reused buffer: copy it to keep it.

    Raises
    ------
    ImageError
        The file ends early or its compressed stream is corrupt.
    """
    indices = (np.arange(n_volumes(img)) if indices is None
               else np.asarray(indices, dtype=np.intp))
    dtype = natural_dtype(img) if dtype is None else np.dtype(dtype)
    read_ahead = n_threads > 1 and _streamable(img)
    with VolumeSource(img, indices, dtype, name, slots=2 if read_ahead else 1) as source:
        steps = len(source.groups)
        if not read_ahead:
            for step, positions in enumerate(source.groups):
                yield positions, source.convert(source.read(step))
            return
        # two slots alternate, hence a yielded raw view stays valid until the caller asks for
        # the next volume
        with ThreadPoolExecutor(1) as reader:
            pending = reader.submit(source.read, 0, 0) if steps else None
            for step, positions in enumerate(source.groups):
                raw = pending.result()
                if step + 1 < steps:
                    pending = reader.submit(source.read, step + 1, (step + 1) % 2)
                yield positions, source.convert(raw)


def _skip(stream, nbytes: int, filename: str) -> None:
    if not filename.endswith(".gz"):
        stream.seek(nbytes, os.SEEK_CUR)
        return
    chunk = bytearray(min(nbytes, 1 << 22))
    left = nbytes
    while left:
        got = stream.readinto(memoryview(chunk)[: min(left, len(chunk))])
        if not got:
            raise EOFError("the compressed stream ended early")
        left -= got


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


def new_img_like(ref: SpatialImage, data: NDArray, affine: NDArray | None = None
                 ) -> nib.Nifti1Image:
    """A Nifti1Image holding ``data`` with the header of ``ref`` (scaling reset)."""
    header = ref.header.copy() if isinstance(ref, nib.Nifti1Image) else None
    out = nib.Nifti1Image(data, ref.affine if affine is None else affine, header)
    out.header.set_data_dtype(data.dtype)
    out.header.set_slope_inter(None, None)
    return out
