"""Selecting the volumes of an image and reading them one at a time, in file order.

:func:`resolve_volumes` reads a volume selection as ``nilearn.image.index_img`` does (an
index, a slice, indices, or a boolean mask with one entry per volume); :func:`iter_volumes`
streams the selected volumes of a 4D image in file order, one volume's bytes at a time, so
that no caller ever needs the whole 4D array in memory (a ``.nii.gz`` is decompressed exactly
once, through :func:`~.hashing.open_binary`, so that a step that asked for the file's SHA-256
gets it from this one read); :func:`index_img` builds an image of the selected volumes.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import nibabel as nib
import numpy as np
from nibabel.spatialimages import SpatialImage
from numpy.typing import NDArray

from .hashing import open_binary
from .images import ImageError, ImageLike, load_img, n_volumes, natural_dtype, new_img_like

try:  # ISA-L's gzip decompresses about twice as fast as zlib; an optional extra ("fast").
    from isal import igzip as _fast_gzip
except ImportError:  # pragma: no cover - depends on the environment
    _fast_gzip = None


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
        None selects every volume. Negative integers count from the end. Booleans (a list
        or a numpy bool array) are a selection mask with one entry per volume, as numpy
        indexing reads them.
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
        # booleans are a selection mask (numpy's reading, hence nilearn's), never the
        # indices 0 and 1
        if arr.ndim != 1:
            raise ValueError(
                f"{name}: booleans select volumes as a mask, one entry per volume; got "
                f"{'a single boolean' if arr.ndim == 0 else f'an array of shape {arr.shape}'}"
                f" for an image with {n} volumes; expected a list of {n} booleans"
            )
        if arr.size != n:
            raise ValueError(
                f"{name}: a boolean mask needs one entry per volume; got {arr.size} booleans "
                f"for an image with {n} volumes"
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


def read_data(img: SpatialImage, *, name: str = "in_file") -> NDArray:
    """The whole data array (Fortran order), as ``np.asanyarray(img.dataobj)`` gives it.

    Read with this module's streaming reader: a ``.nii.gz`` decompressed by ISA-L when
    installed, about twice as fast as nibabel's zlib (a 64-map MNI 2 mm atlas: 0.3 s less).
    """
    if len(img.shape) == 3 or not _streamable(img):
        return np.asanyarray(img.dataobj)
    return _volumes_array(img, np.arange(n_volumes(img)), natural_dtype(img), name)


def _volumes_array(img: SpatialImage, indices: NDArray[np.intp], dtype: np.dtype, name: str
                   ) -> NDArray:
    """The selected volumes as one 4D Fortran-ordered array, one volume per index."""
    from .streaming import prefaulted_empty  # (streaming imports this module)

    # its pages mapped up front: hundreds of MB for a probabilistic atlas
    data = prefaulted_empty((len(indices), *img.shape[:3][::-1]), dtype).T
    for positions, volume in iter_volumes(img, indices, dtype=dtype, name=name):
        for position in positions:
            data[..., position] = volume
    return data


def index_img(img: ImageLike, index) -> nib.Nifti1Image:
    """Select volumes of a 4D image, like ``nilearn.image.index_img``.

    An int gives a 3D image, anything else a 4D image. Only the selected volumes are read.
    """
    img = load_img(img, name="img")
    indices = resolve_volumes(index, n_volumes(img), name="index")
    data = _volumes_array(img, indices, natural_dtype(img), "img")
    if isinstance(index, (int, np.integer)):
        data = data[..., 0]
    return new_img_like(img, data)


def _open_stream(filename: str) -> BinaryIO:
    """The file's data stream (decompressed); closing it closes the file.

    The file is opened with :func:`~.hashing.open_binary`, so that a step that asked for the
    file's SHA-256 (:func:`~.hashing.hash_reads`) gets it from this one read.
    """
    raw = open_binary(filename)
    if not filename.endswith(".gz"):
        return raw
    try:
        stream = (_fast_gzip or gzip).open(raw, "rb")
    except BaseException:
        raw.close()
        raise
    # a GzipFile closes its ``myfileobj`` (the file it opened itself when given a name):
    # given a file object, it must own it the same way
    stream.myfileobj = raw
    return stream


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
