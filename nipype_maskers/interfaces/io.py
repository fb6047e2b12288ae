"""File I/O shared by the interfaces: output naming, reading matrices and tables, ``.npy``.

Every output is written through :mod:`nipype_maskers.files` (the interfaces import its
writers from there): to a hidden temporary file in the destination folder renamed into place,
so a crash or a kill never leaves a partial file under the final name, and gzipped without
time stamp or file name, so reruns give the same bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..bids import derived_name
from ..core.io.streaming import prefaulted_empty
from ..core.io.tables import Table, read_table
from ..core.voxels.masked_run import MaskedRun
from ..files import open_atomic


def split_ext(path: str | os.PathLike) -> tuple[str, str]:
    """File stem and extension, with double extensions (``.nii.gz``, ``.tsv.gz``) kept whole.

    Examples
    --------
    >>> split_ext('/data/sub-01_bold.nii.gz')
    ('sub-01_bold', '.nii.gz')
    >>> split_ext('x.npy')
    ('x', '.npy')
    """
    name = Path(path).name
    for ext in (".nii.gz", ".tsv.gz", ".dtseries.nii"):
        if name.endswith(ext):
            return name[: -len(ext)], ext
    stem, ext = os.path.splitext(name)
    return stem, ext


def output_path(source: str | os.PathLike, newpath: str | os.PathLike, *,
                suffix: str | None = None, extension: str | None = None,
                **entities: str | None) -> Path:
    """Name an interface's output after its input, inside ``newpath`` (a node's folder).

    The name is :func:`nipype_maskers.bids.derived_name`'s: the input's entities with those
    given replaced (None removes one), in BIDS order, then ``suffix`` and ``extension``.

    Examples
    --------
    >>> output_path('/d/sub-01_task-rest_desc-preproc_bold.nii.gz', '/o', desc='labels',
    ...             suffix='timeseries', extension='.tsv').as_posix()
    '/o/sub-01_task-rest_desc-labels_timeseries.tsv'
    """
    return Path(newpath) / derived_name(source, suffix=suffix, extension=extension, **entities)


def save_npy(array: NDArray, path: str | os.PathLike) -> Path:
    """Write a ``.npy`` atomically."""
    with open_atomic(path) as stream:
        np.save(stream, array, allow_pickle=False)
    return Path(path)


def read_text_table(path: str | os.PathLike, *, name: str = "in_file") -> Table:
    """Read a text table of numbers, its form decided by its extension (the interfaces' rule).

    A ``.tsv`` is a BIDS table, as every table this package writes: tab-separated with a header
    row, also when the names are numbers (a labels masker's columns are label values). Other
    text files (``.csv``, ``.txt``) are user files of unknown form: the delimiter is sniffed
    and the header inferred (a first row with a cell that is not a number).
    """
    if split_ext(path)[1] == ".tsv":
        return read_table(path, name=name, header=True, delimiter="\t")
    return read_table(path, name=name, header="infer")


def read_matrix(path: str | os.PathLike, *, name: str = "in_file"
                ) -> tuple[NDArray, list[str] | None]:
    """Read a ``.npy`` or a text table of numbers (see :func:`read_text_table`; ``n/a`` is NaN).

    Returns the array (1D or 2D as stored; a one-column text file without header is 1D) and
    the header names, or None without a header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name} '{path}': the file does not exist; expected a matrix")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{name} '{path}': not a readable .npy array ({exc}); expected "
                             "a numeric array") from exc
        if array.ndim not in (1, 2) or array.dtype.kind not in "fiu":
            raise ValueError(
                f"{name} '{path}': a {array.ndim}D {array.dtype} array; expected a 1D or 2D "
                "numeric array (samples x features)"
            )
        return array, None
    table = read_text_table(path, name=name)
    if not table.has_header and table.values.shape[1] == 1:
        return table.values[:, 0], None
    return table.values, (table.columns if table.has_header else None)


# --------------------------------------------------------------------------------------------
# The masked rows of a run: NiftiMasker's matrix, read by the steps after it
# --------------------------------------------------------------------------------------------
#: The ``masked_file`` input of the steps that can take the run's masked rows.
MASKED_FILE_DESC = (
    "in_file already read: NiftiMasker's out_file of in_file (dtype='auto', no cleaning, every "
    "volume, mask_file's mask, smoothing_fwhm's smoothing). Its rows are read instead of "
    "decompressing in_file again: the same numbers, bit for bit. in_file still gives the "
    "header and the output names")

#: What a masked matrix says of itself (its trailer), checked by :func:`read_masked_matrix`.
MASKED_RUN_KEYS = ("Source", "SourceSize", "SourceModified", "SourceSHA256", "MaskShape",
                   "MaskAffine", "MaskBytes", "SmoothingFWHM", "AllVolumes", "Cleaned",
                   "Resampled")
#: The last bytes of a masked matrix: the trailer's length (8 bytes) then this mark.
_TRAILER_MARK = b"NMRUN001"


def _source_facts(source) -> tuple[list[str], list[int], list[int]]:
    """Names, sizes and modification times of a run's file(s) (a GIFTI run is a pair)."""
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    stats = [os.stat(path) for path in paths]
    return ([Path(path).name for path in paths], [st.st_size for st in stats],
            [st.st_mtime_ns for st in stats])


def save_masked_matrix(signals: NDArray, path: str | os.PathLike, *, mask: NDArray | None,
                       affine: NDArray | None, source, source_sha256,
                       smoothing_fwhm=None, all_volumes: bool = True, cleaned: bool = False,
                       resampled: bool = False) -> Path:
    """Write a run's matrix as a ``.npy`` that describes itself, atomically.

    After the array (which ``numpy.load`` reads as any ``.npy``: it stops at the array's
    end) come its mask (packed bits), a JSON block (the run it was read from: name, size,
    modification time, SHA-256, one each per file of the run; the mask's shape and affine;
    the smoothing; whether it holds every volume, uncleaned, on the run's own grid), the
    block's length and a mark. One file: a Nipype node that keeps only its connected outputs
    keeps all of it. ``mask`` None: the columns are every vertex or grayordinate of the run
    (surfaces); ``source`` and ``source_sha256`` may then be lists (a GIFTI pair).
    """
    names, sizes, times = _source_facts(source)
    bits = (b"" if mask is None else
            np.packbits(np.asarray(mask, dtype=bool).reshape(-1, order="C")).tobytes())
    fields = dict(zip(MASKED_RUN_KEYS, (
        names, sizes, times, source_sha256,
        None if mask is None else [int(n) for n in mask.shape],
        None if affine is None else np.asarray(affine, dtype=float).tolist(), len(bits),
        None if smoothing_fwhm is None else np.broadcast_to(
            np.asarray(smoothing_fwhm, dtype=float), 3).tolist(),
        bool(all_volumes), bool(cleaned), bool(resampled)), strict=True))
    block = json.dumps(fields).encode("utf-8")
    with open_atomic(path) as stream:
        np.save(stream, signals, allow_pickle=False)
        stream.write(bits)
        stream.write(block)
        stream.write(len(block).to_bytes(8, "little") + _TRAILER_MARK)
    return Path(path)


class NpyRows:
    """Rows of a 2D ``.npy`` file, read on demand (``rows[start:stop]``) into new arrays.

    Plain reads, not a memory map: a step that goes through the file block by block keeps
    only its block in memory (the pages of a map would count in its resident memory).
    """

    def __init__(self, path: str | os.PathLike, *, name: str = "masked_file") -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as stream:
                version = np.lib.format.read_magic(stream)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(stream)
                self.offset = stream.tell()
        except (ValueError, OSError) as exc:
            raise ValueError(f"{name} '{path}': not a readable .npy matrix ({exc})") from exc
        if len(shape) != 2 or fortran or dtype.kind != "f":
            raise ValueError(f"{name} '{path}': a {len(shape)}D {dtype} array"
                             f"{' in Fortran order' if fortran else ''}; expected NiftiMasker's "
                             "2D float matrix (volumes x voxels)")
        self.shape, self.dtype, self.ndim = tuple(int(n) for n in shape), np.dtype(dtype), 2
        self.row_bytes = self.shape[1] * self.dtype.itemsize
        self.end = self.offset + self.shape[0] * self.row_bytes
        if self.path.stat().st_size < self.end:
            raise ValueError(f"{name} '{path}': truncated ({self.path.stat().st_size} of "
                             f"{self.end} bytes)")

    def __getitem__(self, rows: slice) -> NDArray:
        return self.read(rows)

    def read(self, rows: slice, out: NDArray | None = None) -> NDArray:
        """Rows ``rows`` (consecutive), into ``out`` when given (a buffer to reuse: the
        first rows of it are filled and returned)."""
        start, stop, step = rows.indices(self.shape[0])
        if step != 1:
            raise IndexError("NpyRows reads consecutive rows only")
        n_rows = max(stop - start, 0)
        if out is None:
            # a whole matrix at once is large: its pages mapped up front (prefaulted_empty)
            out = prefaulted_empty((n_rows, self.shape[1]), self.dtype)
        else:
            out = out[:n_rows]
        with open(self.path, "rb", buffering=0) as stream:
            stream.seek(self.offset + start * self.row_bytes)
            view, got = memoryview(out).cast("B"), 0
            while got < out.nbytes:
                more = stream.readinto(view[got:])
                if not more:
                    raise ValueError(f"'{self.path}': ends inside row "
                                     f"{start + got // self.row_bytes}")
                got += more
        return out


def _masked_trailer(rows: NpyRows, writer: str) -> tuple[dict, NDArray[np.bool_] | None]:
    """The JSON block and the mask that :func:`save_masked_matrix` put after the array."""
    not_ours = ValueError(
        f"masked_file '{rows.path}': a .npy without {writer}'s description of the run it "
        f"holds; expected {writer}'s out_file (written since version 0.2)")
    with open(rows.path, "rb") as stream:
        size = stream.seek(0, os.SEEK_END)
        if size < rows.end + 16:
            raise not_ours
        stream.seek(size - 16)
        tail = stream.read(16)
        length = int.from_bytes(tail[:8], "little")
        if tail[8:] != _TRAILER_MARK or size - 16 - length < rows.end:
            raise not_ours
        stream.seek(size - 16 - length)
        fields = json.loads(stream.read(length))
        if any(key not in fields for key in MASKED_RUN_KEYS):
            raise not_ours
        if fields["MaskShape"] is None:
            return fields, None
        stream.seek(size - 16 - length - fields["MaskBytes"])
        bits = np.frombuffer(stream.read(fields["MaskBytes"]), dtype=np.uint8)
    shape = tuple(fields["MaskShape"])
    mask = np.unpackbits(bits, count=int(np.prod(shape))).astype(bool).reshape(shape)
    return fields, mask


def read_masked_matrix(masked_file: str | os.PathLike, source, *, writer: str = "NiftiMasker"
                       ) -> tuple[NpyRows, dict, NDArray[np.bool_] | None]:
    """A run's matrix (its rows, on demand), what it says of itself, and its mask.

    Refused, with what to do, when it was read from other files than ``source`` (one path,
    or a GIFTI pair; names, sizes or modification times differ), or holds a volume
    selection, cleaned or resampled rows: only the plain matrix stands for the run itself.
    ``writer`` names the interface that writes such matrices, for the messages.
    """
    rows = NpyRows(masked_file)
    fields, mask = _masked_trailer(rows, writer)
    facts = _source_facts(source)
    if (fields["Source"], fields["SourceSize"], fields["SourceModified"]) != facts:
        raise ValueError(
            f"masked_file: read from {', '.join(fields['Source'])} ({fields['SourceSize']} "
            f"bytes), not from in_file {', '.join(facts[0])} as it is now; expected the matrix "
            f"of this in_file (rerun its {writer})")
    for key, problem in (("Cleaned", "cleaned rows"), ("Resampled", "rows resampled onto "
                                                                    "a target grid")):
        if fields[key]:
            raise ValueError(f"masked_file: {problem}; expected {writer}'s plain matrix "
                             "(no cleaning, no target grid)")
    if not fields["AllVolumes"]:
        raise ValueError("masked_file: a selection of volumes; expected every volume (no "
                         f"{writer} volumes input)")
    return rows, fields, mask


def read_masked_run(masked_file: str | os.PathLike, in_file: str | os.PathLike
                    ) -> tuple[MaskedRun, str]:
    """NiftiMasker's matrix of ``in_file`` as a :class:`MaskedRun`, and ``in_file``'s SHA-256
    (see :func:`read_masked_matrix` for what is refused)."""
    rows, fields, mask = read_masked_matrix(masked_file, in_file)
    if mask is None:
        raise ValueError(f"masked_file '{masked_file}': a surface run's matrix; expected "
                         "NiftiMasker's out_file of a volume run")
    return (MaskedRun(rows, mask, np.asarray(fields["MaskAffine"]), fields["SmoothingFWHM"]),
            str(fields["SourceSHA256"]))
