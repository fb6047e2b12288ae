"""File I/O shared by the interfaces: output naming, atomic writes, matrix files.

Every output is written to a hidden temporary file in the destination folder and renamed into
place, so a crash or a kill never leaves a partial file under the final name.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np
from numpy.typing import NDArray

_NIFTI_EXTENSIONS = (".nii.gz", ".nii")
#: gzip level for written NIfTI files: level 1 is several times faster than nibabel's
#: default 6 for files about 10% larger (BOLD data compress poorly at any level).
COMPRESS_LEVEL = 1

try:  # ISA-L's gzip compresses several times faster than zlib (the optional "fast" extra)
    from isal import igzip as _gzip_module
except ImportError:  # pragma: no cover - depends on the environment
    import gzip as _gzip_module


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


def output_path(source: str | os.PathLike, suffix: str, ext: str, newpath: str | os.PathLike
                ) -> Path:
    """Name an output after its input: ``<input stem>_<suffix><ext>`` inside ``newpath``.

    A BIDS ``_bold`` suffix is replaced rather than extended, so
    ``sub-01_task-rest_bold.nii.gz`` gives ``sub-01_task-rest_mask.nii.gz``.
    """
    stem, _ = split_ext(source)
    for bids_suffix in ("_bold", "_timeseries"):
        if stem.endswith(bids_suffix):
            stem = stem[: -len(bids_suffix)]
            break
    return Path(newpath) / f"{stem}_{suffix}{ext}"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    _, ext = split_ext(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{ext}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600; give the file the permissions a plain open() would have
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def open_for_writing(path: str | os.PathLike):
    """A binary stream to ``path``: gzip (ISA-L when installed, level 1) for ``.gz`` names."""
    if str(path).endswith(".gz"):
        return _gzip_module.open(path, "wb", compresslevel=COMPRESS_LEVEL)
    return open(path, "wb")


def save_nifti(img: nib.Nifti1Image, path: str | os.PathLike) -> Path:
    """Write a NIfTI image atomically (``.nii.gz``: fast gzip, level 1)."""
    with atomic_path(path) as tmp, open_for_writing(tmp) as stream:
        img.to_file_map({"image": nib.FileHolder(fileobj=stream)})
    return Path(path)


def save_nifti_volumes(header: nib.Nifti1Header, volumes: Iterable[NDArray],
                       path: str | os.PathLike) -> Path:
    """Write a NIfTI file from its header and its volumes, one at a time, atomically.

    Only one volume is in memory at a time (nibabel's ``save`` needs the whole array). The
    volumes must be Fortran-ordered arrays in the header's dtype and 3D shape, as many as the
    header's fourth dimension.
    """
    header = header.copy()
    header["vox_offset"] = 0
    shape = header.get_data_shape()
    dtype = header.get_data_dtype()
    written = 0
    with atomic_path(path) as tmp, open_for_writing(tmp) as stream:
        header.write_to(stream)
        stream.write(b"\0" * (int(header.get_data_offset()) - stream.tell()))
        for volume in volumes:
            if volume.shape != tuple(shape[:3]) or volume.dtype != dtype:
                raise ValueError(
                    f"volume {written}: expected shape {tuple(shape[:3])} and dtype {dtype}, "
                    f"got {volume.shape} {volume.dtype}"
                )
            stream.write(volume.reshape(-1, order="F").data)
            written += 1
        if written != (shape[3] if len(shape) > 3 else 1):
            raise ValueError(f"got {written} volumes for a header of shape {tuple(shape)}")
    return Path(path)


def save_npy(array: NDArray, path: str | os.PathLike) -> Path:
    """Write a ``.npy`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        np.save(stream, array, allow_pickle=False)
    return Path(path)


def save_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file (TSV, JSON) atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)


def format_tsv(array: NDArray, columns: Sequence[str] | None = None) -> str:
    """A tab-separated table, NaN written ``n/a`` (BIDS).

    Each value is the shortest text that reads back to the same number in the array's own
    precision (float32 values are not padded with float64 digits).

    Examples
    --------
    >>> format_tsv(np.array([[1.5, np.nan]]), ['a', 'b']).splitlines()
    ['a\\tb', '1.5\\tn/a']
    >>> format_tsv(np.array([[0.1]], dtype=np.float32)).strip()
    '0.1'
    """
    out = io.StringIO()
    if columns is not None:
        out.write("\t".join(columns) + "\n")
    array = np.atleast_2d(array)
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    for row in array:
        out.write("\t".join("n/a" if np.isnan(v) else str(v) for v in row) + "\n")
    return out.getvalue()


def read_matrix(path: str | os.PathLike, *, name: str = "in_file"
                ) -> tuple[NDArray, list[str] | None]:
    """Read a ``.npy`` or a TSV/CSV matrix (optional header row; ``n/a`` is NaN).

    Returns the array (1D or 2D as stored; a one-column text file is 1D) and the header
    names, or None without a header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file '{path}'")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{name}: '{path}' is not a readable .npy array ({exc})") from exc
        if array.ndim not in (1, 2) or array.dtype.kind not in "fiu":
            raise ValueError(
                f"{name}: '{path}' holds a {array.ndim}D {array.dtype} array; expected a 1D or "
                "2D numeric array (samples x features)"
            )
        return array, None
    delimiter = "," if path.suffix == ".csv" else "\t"
    with open(path, newline="", encoding="utf-8") as stream:
        rows = [row for row in csv.reader(stream, delimiter=delimiter) if row]
    if not rows:
        raise ValueError(f"{name}: '{path}' is empty; expected a matrix")
    header = None
    if not _is_numeric_row(rows[0]):
        header, rows = rows[0], rows[1:]
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise ValueError(f"{name}: '{path}' has rows of different lengths {sorted(widths)}")
    try:
        array = np.array([[_parse_float(v) for v in r] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{name}: '{path}' has a non-numeric value ({exc})") from exc
    if header is not None and array.size and len(header) != array.shape[1]:
        raise ValueError(
            f"{name}: '{path}' has {len(header)} header names for {array.shape[1]} columns"
        )
    if array.ndim == 2 and array.shape[1] == 1 and header is None:
        array = array[:, 0]
    return array, header


def _parse_float(value: str) -> float:
    value = value.strip()
    if value in ("n/a", "NaN", "nan", ""):
        return np.nan
    return float(value)


def _is_numeric_row(row: Sequence[str]) -> bool:
    try:
        [_parse_float(v) for v in row]
    except ValueError:
        return False
    return True
