"""Stream the data arrays of a GIFTI time series one at a time.

nibabel decodes a whole GIFTI file when it loads it: a fsaverage5 x 1200-volume hemisphere is
49 MB of float32, held until the image is dropped. This reader parses the XML in chunks with
expat and decodes each ``DataArray`` as its ``</Data>`` arrives (base64, then zlib: ISA-L's
when installed, 2x faster), so a caller that gathers or reduces each volume right away holds
one volume at a time. It reads the common case only: 1D arrays (or ``Dim1 == 1``) encoded
``Base64Binary`` or ``GZipBase64Binary``; anything else (ASCII, external files, 2D arrays)
raises :class:`Unstreamable` and the caller loads the file with nibabel instead.
"""

from __future__ import annotations

import binascii
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from xml.parsers import expat

import numpy as np
from numpy.typing import NDArray

from ..io.hashing import open_binary

try:  # ISA-L's zlib decompresses about twice as fast (the optional "fast" extra)
    from isal.isal_zlib import decompress as _decompress
except ImportError:  # pragma: no cover - depends on the environment
    from zlib import decompress as _decompress

__all__ = ["GiftiStream", "Unstreamable"]

_DTYPES = {"NIFTI_TYPE_UINT8": "u1", "NIFTI_TYPE_INT8": "i1", "NIFTI_TYPE_INT16": "i2",
           "NIFTI_TYPE_UINT16": "u2", "NIFTI_TYPE_INT32": "i4", "NIFTI_TYPE_UINT32": "u4",
           "NIFTI_TYPE_INT64": "i8", "NIFTI_TYPE_UINT64": "u8", "NIFTI_TYPE_FLOAT32": "f4",
           "NIFTI_TYPE_FLOAT64": "f8"}
_ENCODINGS = {"Base64Binary": False, "GZipBase64Binary": True}
_ENDIAN = {"LittleEndian": "<", "BigEndian": ">"}
#: Bytes of XML fed to the parser at once.
_CHUNK = 1 << 20
#: Bytes fed first, doubled until the first data array is decoded: opening a file (for its
#: header, e.g. when the data come from a matrix read before) then decodes one or two arrays,
#: not every array of the first megabyte.
_FIRST_CHUNK = 1 << 14


class Unstreamable(Exception):
    """The file uses a GIFTI feature this reader leaves to nibabel (not an input error)."""


class GiftiStream:
    """The data arrays of one GIFTI file, decoded one by one in file order.

    Opening parses the file up to the end of its first data array, so that ``meta``,
    ``n_darrays``, ``intent``, ``size``, ``dtype`` and ``time_step`` are known before the data
    are read. Iterate (once) for the arrays: each is a fresh 1D array of ``size`` values.

    Raises
    ------
    Unstreamable
        See the module docstring; the file is then read with nibabel.
    ValueError
        The file is not well-formed GIFTI XML (naming ``name`` and the file).
    """

    def __init__(self, path: str | os.PathLike, *, name: str) -> None:
        self.path, self.name = Path(path), name
        self.filename = self.path.name
        self.meta: dict[str, str] = {}
        self.n_darrays: int | None = None
        self._ready: deque[tuple[NDArray, dict[str, str], dict[str, str]]] = deque()
        self._darray: dict[str, str] | None = None
        self._darray_meta: dict[str, str] = {}
        self._text: list[str] | None = None
        self._md: dict[str, str] = {}
        self._data: list[str] | None = None
        self._parser = expat.ParserCreate()
        self._parser.buffer_text = True
        self._parser.buffer_size = _CHUNK
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._parser.CharacterDataHandler = self._chars
        # closed at the end of the stream, or on error; open_binary: a hash_reads digest of
        # the file is fed by this one read
        self._file = open_binary(self.path)
        self._done = False
        size = min(_FIRST_CHUNK, _CHUNK)
        try:
            while not self._ready and not self._done:
                self._feed(size)
                size = min(2 * size, _CHUNK)
        except BaseException:
            self.close()
            raise
        if not self._ready:
            self.close()
            raise ValueError(f"{name}: {self.filename} holds no data array; expected GIFTI "
                             "time series (.func.gii)")
        first, self.first_meta, attrs = self._ready[0]
        self.size = int(first.size)
        self.dtype = first.dtype.newbyteorder("=")
        self.intent = attrs.get("Intent", "")
        self.time_step = self.first_meta.get("TimeStep")

    # ------------------------------------------------------------------ expat handlers

    def _start(self, tag: str, attrs: dict[str, str]) -> None:
        if tag == "GIFTI":
            if "NumberOfDataArrays" not in attrs:  # needed before the arrays are read
                raise Unstreamable("no NumberOfDataArrays")
            self.n_darrays = int(attrs["NumberOfDataArrays"])
        elif tag == "DataArray":
            self._check_streamable(attrs)
            self._darray, self._darray_meta = dict(attrs), {}
        elif tag in ("Name", "Value"):
            self._text = []
        elif tag == "Data" and self._darray is not None:
            self._data = []

    def _chars(self, text: str) -> None:
        if self._data is not None:
            self._data.append(text)
        elif self._text is not None:
            self._text.append(text)

    def _end(self, tag: str) -> None:
        if tag in ("Name", "Value"):
            self._md[tag] = "".join(self._text or ()).strip()
            self._text = None
        elif tag == "MD":
            target = self.meta if self._darray is None else self._darray_meta
            target[self._md.get("Name", "")] = self._md.get("Value", "")
            self._md = {}
        elif tag == "Data" and self._data is not None:
            self._ready.append((self._decode("".join(self._data)), self._darray_meta,
                                self._darray))
            self._data = None
        elif tag == "DataArray":
            self._darray = None

    def _check_streamable(self, attrs: dict[str, str]) -> None:
        dims = int(attrs.get("Dimensionality", 1))
        if attrs.get("Encoding") not in _ENCODINGS or attrs.get("ExternalFileName"):
            raise Unstreamable(f"encoding {attrs.get('Encoding')}")
        if attrs.get("DataType") not in _DTYPES:
            raise Unstreamable(f"data type {attrs.get('DataType')}")
        if dims != 1 and not (dims == 2 and attrs.get("Dim1") == "1"):
            raise Unstreamable(f"{dims}D data array")

    def _decode(self, text: str) -> NDArray:
        attrs = self._darray or {}
        raw = binascii.a2b_base64(text)
        if _ENCODINGS[attrs["Encoding"]]:
            raw = _decompress(raw)
        dtype = np.dtype(_ENDIAN.get(attrs.get("Endian", "LittleEndian"), "<")
                         + _DTYPES[attrs["DataType"]])
        values = np.frombuffer(raw, dtype=dtype)
        expected = int(attrs.get("Dim0", values.size))
        if values.size != expected:
            raise ValueError(f"{self.name}: {self.filename} data array holds {values.size} "
                             f"values where its Dim0 says {expected}; the file is corrupt")
        return values

    # ------------------------------------------------------------------ reading

    def _feed(self, size: int | None = None) -> None:
        chunk = self._file.read(size or _CHUNK)
        self._done = not chunk
        try:
            self._parser.Parse(chunk, self._done)
        except expat.ExpatError as exc:
            raise ValueError(f"{self.name}: {self.filename} is not valid GIFTI XML ({exc}); "
                             "expected a GIFTI file") from None
        if self._done:
            self.close()

    def __iter__(self) -> Iterator[NDArray]:
        """The data arrays in file order, each decoded when its turn comes."""
        while True:
            while self._ready:
                yield self._ready.popleft()[0]
            if self._done:
                return
            self._feed()

    def close(self) -> None:
        """Close the file (also done at the end of the stream)."""
        self._file.close()
