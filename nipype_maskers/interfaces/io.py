"""File I/O shared by the interfaces: output naming, reading matrices and tables, ``.npy``.

Every output is written through :mod:`nipype_maskers.files` (the interfaces import its
writers from there): to a hidden temporary file in the destination folder renamed into place,
so a crash or a kill never leaves a partial file under the final name, and gzipped without
time stamp or file name, so reruns give the same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..bids import derived_name
from ..core.io.tables import Table, read_table
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
