"""Writing files: atomically, and byte for byte the same on the same data.

Every file the package writes goes through here:

- :func:`atomic_path` hands out a hidden temporary file beside the target
  (``.<name>.<8 hex>.part``) and renames it onto the target only when the writing succeeded,
  so a crash or a kill never leaves a partial file under the final name (and a killed run's
  leftovers are recognisable by their name: :func:`temporary_target`);
- :func:`open_atomic`, its stream form, compresses ``.gz`` names into gzip members that hold
  no time stamp and no file name (the BIDS validator warns about both, and they made two
  runs on the same inputs differ), with ISA-L's gzip when installed (the ``fast`` extra:
  several times faster than zlib);
- :func:`save_nifti` and :func:`save_nifti_volumes` write NIfTI images (whole, or one volume
  at a time) through both.

Standard library, numpy and nibabel only: the interfaces, the BIDS writer and the demo use it.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import nibabel as nib
from numpy.typing import NDArray

try:  # ISA-L's gzip compresses several times faster than zlib (the optional "fast" extra)
    from isal import igzip as _gzip_module
except ImportError:  # pragma: no cover - depends on the environment
    import gzip as _gzip_module

#: gzip level of written files: level 1 is several times faster than nibabel's default 6 for
#: files about 10% larger with zlib (BOLD data compress poorly at any level), and with ISA-L
#: as small as zlib's 6.
COMPRESS_LEVEL = 1

#: The one definition of a temporary file's name, ``.<name>.<8 hex>.part``: written by
#: :func:`temporary_beside`, read back by :func:`temporary_target` (a killed run's leftovers).
_TEMPORARY_NAME = ".{name}.{token}.part"
_TEMPORARY_PATTERN = re.compile(r"\.(?P<name>[^/]+)\.[0-9a-f]{8}\.part")


def temporary_target(name: str) -> str | None:
    """The file name a temporary file of :func:`temporary_beside` stands for; None when
    ``name`` is not such a temporary file.

    Examples
    --------
    >>> import tempfile
    >>> tmp = temporary_beside(Path(tempfile.mkdtemp()) / 'sub-01_bold.nii.gz')
    >>> temporary_target(tmp.name)
    'sub-01_bold.nii.gz'
    >>> temporary_target('sub-01_bold.nii.gz') is None
    True
    """
    match = _TEMPORARY_PATTERN.fullmatch(name)
    return None if match is None else match["name"]


def temporary_beside(path: str | os.PathLike) -> Path:
    """Create an empty hidden file ``.<name>.<8 hex>.part`` beside ``path`` and return it.

    Its mode comes from the umask, as a plain ``open()`` would give (not ``mkstemp``'s
    0600), so the renamed file is readable as any other output.
    """
    path = Path(path)
    for _ in range(100):
        token = secrets.token_hex(4)  # 8 hex digits, as _TEMPORARY_PATTERN reads them
        tmp = path.with_name(_TEMPORARY_NAME.format(name=path.name, token=token))
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"could not create a temporary file beside '{path}'")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    On any exception the temporary file is removed and the exception raised: ``path`` is
    left as it was (absent, or its previous content).
    """
    tmp = temporary_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def open_atomic(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary stream whose content becomes ``path`` when the ``with`` block ends without
    error (:func:`atomic_path`); gzip for names ending in ``.gz``.

    The gzip member has mtime 0 and no file name, so the same data give the same bytes
    whatever the time and the temporary name; level :data:`COMPRESS_LEVEL`, with ISA-L when
    installed.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        if not str(path).endswith(".gz"):
            yield raw
            return
        with _gzip_module.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                   compresslevel=COMPRESS_LEVEL) as stream:
            yield stream


def write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Write bytes atomically (gzipped, reproducibly, for a ``.gz`` name)."""
    with open_atomic(path) as stream:
        stream.write(data)
    return Path(path)


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file (TSV, JSON, HTML, SVG) atomically, as UTF-8."""
    return write_bytes(text.encode("utf-8"), path)


def save_nifti(img: nib.Nifti1Image, path: str | os.PathLike) -> Path:
    """Write a NIfTI image atomically (``.nii.gz``: reproducible gzip, :data:`COMPRESS_LEVEL`).

    The image goes to the stream through nibabel's ``to_file_map``, so its header, scaling
    and data are exactly what ``nibabel.save`` would write.
    """
    with open_atomic(path) as stream:
        img.to_file_map({"image": nib.FileHolder(fileobj=stream)})
    return Path(path)


def save_nifti_volumes(header: nib.Nifti1Header, volumes: Iterable[NDArray],
                       path: str | os.PathLike) -> Path:
    """Write a NIfTI file from its header and its volumes, one at a time, atomically.

    Only one volume is in memory at a time (nibabel's ``save`` needs the whole array). The
    volumes must be arrays in the header's dtype and 3D shape, as many as the header's fourth
    dimension; they are written in Fortran order.

    Raises
    ------
    ValueError
        When a volume has another shape or dtype, or the count differs from the header's
        (nothing is left at ``path`` then).
    """
    header = header.copy()
    header["vox_offset"] = 0  # write_to then puts the data right after the header
    shape = header.get_data_shape()
    dtype = header.get_data_dtype()
    written = 0
    with open_atomic(path) as stream:
        header.write_to(stream)
        stream.write(b"\0" * (int(header.get_data_offset()) - stream.tell()))
        for volume in volumes:
            if volume.shape != tuple(shape[:3]) or volume.dtype != dtype:
                raise ValueError(
                    f"volume {written}: expected shape {tuple(shape[:3])} and dtype {dtype}, "
                    f"got {volume.shape} {volume.dtype}"
                )
            stream.write(memoryview(volume.reshape(-1, order="F")).cast("B"))
            written += 1
        if written != (shape[3] if len(shape) > 3 else 1):
            raise ValueError(f"got {written} volumes for a header of shape {tuple(shape)}")
    return Path(path)
