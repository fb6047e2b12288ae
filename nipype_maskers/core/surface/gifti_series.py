"""The time series of a GIFTI pair, streamed volume by volume (see :mod:`.gifti` for the
rules of a pair and of ``TimeStep``, :mod:`.gifti_stream` for the reader)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.gifti import GiftiImage
from numpy.typing import NDArray

from .gifti import (
    _INTENT_LABEL,
    _check_order,
    _hemisphere,
    _structure,
    _vector,
    check_pair_paths,
    load_gifti,
    series_t_r,
    t_r_from_time_steps,
)
from .gifti_stream import GiftiStream, Unstreamable

__all__ = ["SeriesPair", "read_series_pair", "time_series_t_r"]


class _Hemisphere:
    """One hemisphere's time series: streamed (:class:`.gifti_stream.GiftiStream`), or loaded
    by nibabel for the files the stream does not read (then released array by array)."""

    def __init__(self, path: str, *, name: str) -> None:
        self.filename = Path(path).name
        self.name = name
        stream = None
        if self.filename.endswith(".gii") and Path(path).is_file():
            try:
                stream = GiftiStream(path, name=name)
            except Unstreamable:
                stream = None
        if stream is not None:
            self.structure = (stream.meta.get("AnatomicalStructurePrimary")
                              or stream.first_meta.get("AnatomicalStructurePrimary"))
            intent, self.n_volumes = stream.intent, stream.n_darrays
            self.size, self.dtype, self.time_step = stream.size, stream.dtype, stream.time_step
            self._arrays: Iterator[NDArray] = iter(stream)
        else:
            img = load_gifti(path, name=name)
            self.structure = _structure(img)
            intent = nib.nifti1.intent_codes.label[img.darrays[0].intent]
            columns = _hemisphere_columns(img, name=name, filename=self.filename)
            self.n_volumes, self.size = len(columns), int(columns[0].size)
            self.dtype = np.result_type(*{c.dtype for c in columns})
            self.time_step = (img.darrays[0].meta or {}).get("TimeStep")
            self._arrays = _released(columns)
            del img  # the columns are the only reference left to the decoded data
        self.stream = stream  # None: loaded by nibabel
        try:
            if self.filename.endswith(".label.gii") or intent == _INTENT_LABEL:
                raise ValueError(f"{name}: {self.filename} is a label file (NIFTI_INTENT_LABEL)"
                                 "; expected BOLD time series (.func.gii, one data array per "
                                 "volume)")
            self.hemi = _hemisphere(self.structure, self.filename, name=name)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the file being streamed (nothing to do for a loaded one)."""
        if self.stream is not None:
            self.stream.close()

    def arrays(self) -> Iterator[NDArray]:
        """The volumes in file order, each checked to hold one value per vertex."""
        count = 0
        for count, values in enumerate(self._arrays, start=1):
            if values.size != self.size:
                raise ValueError(f"{self.name}: {self.filename} data array {count - 1} has "
                                 f"{values.size} values, array 0 {self.size}; expected one "
                                 "value per vertex in every array")
            yield values
        if count != self.n_volumes:
            raise ValueError(f"{self.name}: {self.filename} ends after {count} data arrays, "
                             f"its header says {self.n_volumes}; the file is truncated")


def _released(columns: list[NDArray]) -> Iterator[NDArray]:
    for i in range(len(columns)):
        values, columns[i] = columns[i], None  # drop the decoded array once it is used
        yield values


def _hemisphere_columns(img: GiftiImage, *, name: str, filename: str) -> list[NDArray]:
    """A loaded time series' volumes: one per data array, or the columns of one 2D array."""
    if len(img.darrays) == 1 and np.ndim(img.darrays[0].data) == 2:
        data = np.asarray(img.darrays[0].data)  # one (vertices, volumes) array
        if data.dtype.kind not in "biuf":
            raise ValueError(f"{name}: {filename} has dtype {data.dtype}; expected numbers")
        return [data[:, i] for i in range(data.shape[1])]
    return [_vector(d, name=name, filename=filename, index=i) for i, d in enumerate(img.darrays)]


class SeriesPair:
    """The time series of a pair, read once, volume by volume, left and right in step.

    Opening reads each file's header and first data array only (the checks below); the data
    are decoded as :meth:`blocks` asks for them and dropped once gathered, so the full time
    series is never in memory (nor twice).

    Attributes
    ----------
    sizes : tuple of 2 int
        Vertices of the left and right hemispheres.
    n_volumes : int
    dtype : numpy dtype
        The data's (float32 stays float32: never upcast here).
    t_r : float or None
        From the first data arrays' ``TimeStep`` (see the module docstring), in seconds.
    """

    def __init__(self, paths: Sequence[str], *, name: str) -> None:
        hemis: list[_Hemisphere] = []
        try:
            for path in paths:
                hemis.append(_Hemisphere(path, name=name))
            _check_order([h.hemi for h in hemis], paths, name=name)
            if hemis[0].n_volumes != hemis[1].n_volumes:
                raise ValueError(f"{name}: {hemis[0].n_volumes} volumes in the left file, "
                                 f"{hemis[1].n_volumes} in the right; expected the same "
                                 "volumes in both")
        except BaseException:
            for hemi in hemis:  # no file left open behind an error
                hemi.close()
            raise
        self._hemis = hemis
        self.sizes = (hemis[0].size, hemis[1].size)
        self.n_volumes = int(hemis[0].n_volumes)
        dtypes = [np.dtype(h.dtype) for h in hemis]
        self.dtype = (np.result_type(*dtypes, np.float32) if all(d.kind in "biu" for d in dtypes)
                      else np.result_type(*dtypes))
        self.t_r = t_r_from_time_steps([h.time_step for h in hemis])
        self._consumed = False
        self._rows = None  # a matrix read instead of the files (see rows_from)

    @property
    def n_vertices(self) -> int:
        """Vertices of both hemispheres."""
        return int(sum(self.sizes))

    def close(self) -> None:
        """Close the files (done by :meth:`blocks` once read; needed when it is not used)."""
        for hemi in self._hemis:
            hemi.close()

    def rows_from(self, rows, *, name: str = "masked_file") -> None:
        """Take the volumes from ``rows`` (the pair already read, e.g. SurfaceMasker's matrix)
        instead of decoding the files, which are closed: only their headers were read.

        ``rows`` is any 2D array-like of shape (volumes, vertices left then right) whose
        ``rows[a:b]`` gives volumes a to b-1 (an array, or a reader of a ``.npy``). Its dtype
        must hold the pair's values exactly (the pair's dtype or wider): :meth:`blocks` then
        gives the numbers the files give, bit for bit.
        """
        shape = tuple(int(n) for n in rows.shape)
        if shape != (self.n_volumes, self.n_vertices):
            raise ValueError(f"{name}: a {shape[0]} x {shape[1]} matrix; in_file holds "
                             f"{self.n_volumes} volumes of {self.n_vertices} vertices "
                             f"({self.sizes[0]} left, {self.sizes[1]} right); expected the "
                             "matrix of every volume and vertex of in_file")
        if not np.can_cast(self.dtype, rows.dtype, "safe"):
            raise ValueError(f"{name}: {np.dtype(rows.dtype)} values, in_file holds "
                             f"{self.dtype}; expected a matrix that keeps in_file's precision "
                             "(SurfaceMasker's dtype='auto')")
        self.close()
        self._rows = rows

    def __enter__(self) -> SeriesPair:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def blocks(self, volumes: NDArray[np.intp], gather: NDArray[np.intp], *,
               block_rows: int = 32, dtype=None) -> Iterator[NDArray]:
        """Blocks ``(rows, gather.size)`` of the vertices ``gather`` (left then right) of
        ``volumes``, which must be ascending and unique; reading stops after the last one.

        The pair is read once: a second call is an error.
        """
        if self._consumed:
            raise RuntimeError("SeriesPair.blocks: the pair has already been read")
        self._consumed = True
        volumes = np.asarray(volumes)
        if volumes.size == 0:
            return
        if np.any(np.diff(volumes) <= 0):
            raise ValueError("SeriesPair.blocks: volumes must be ascending and unique")
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        if self._rows is not None:
            yield from self._matrix_blocks(volumes, gather, block_rows, dtype)
            return
        needed = np.zeros(self.n_volumes, dtype=bool)
        needed[volumes] = True
        last = int(volumes[-1])
        n_left = self.sizes[0]
        row = np.empty(self.n_vertices, dtype=self.dtype)
        block = np.empty((min(block_rows, volumes.size), gather.size), dtype=dtype)
        filled = 0
        pairs = zip(self._hemis[0].arrays(), self._hemis[1].arrays(), strict=False)
        try:
            for volume, (left, right) in enumerate(pairs):
                if needed[volume]:
                    row[:n_left], row[n_left:] = left, right
                    block[filled] = row[gather]
                    filled += 1
                    if filled == block.shape[0]:
                        yield block
                        block = np.empty_like(block)
                        filled = 0
                if volume == last:  # the rest of the files is not needed
                    break
        finally:
            self.close()
        if filled:
            yield block[:filled]

    def _matrix_blocks(self, volumes: NDArray[np.intp], gather: NDArray[np.intp],
                       block_rows: int, dtype: np.dtype) -> Iterator[NDArray]:
        """:meth:`blocks` from :meth:`rows_from`'s matrix: the same blocks (rows, values)."""
        for start in range(0, volumes.size, block_rows):
            chunk = volumes[start:start + block_rows]
            first = int(chunk[0])
            span = self._rows[first:int(chunk[-1]) + 1]  # read once, then gathered
            # through the pair's dtype, as the files' values are (exact: checked wider)
            values = span[np.ix_(chunk - first, gather)].astype(self.dtype, copy=False)
            yield values.astype(dtype, copy=False)


def read_series_pair(paths, *, name: str = "in_file") -> SeriesPair:
    """Open and check a pair of time series files (``.func.gii``); see :class:`SeriesPair`."""
    return SeriesPair(check_pair_paths(paths, name=name), name=name)


def time_series_t_r(path: str | os.PathLike) -> float | None:
    """The TR (seconds) of one time series file from its first data array's ``TimeStep``,
    reading that array only (the whole file when the stream cannot read it), or None."""
    try:
        stream = GiftiStream(path, name="in_file")
    except Unstreamable:
        return series_t_r([load_gifti(path, name="in_file")])
    stream.close()
    return t_r_from_time_steps([stream.time_step])
