"""Confound tables: read TSV/CSV/whitespace text files and locate fMRIPrep outputs.

This module holds the file side of confound loading (numpy and the standard
library only, no pandas):

- :func:`read_confounds_table` reads a delimited text table into a float64
  array and its column names, as :func:`pandas.read_csv` or nilearn's
  ``signal.clean(confounds=<path>)`` would (through the package's one table
  reader, :func:`~nipype_maskers.core.io.tables.read_table`);
- :func:`find_confounds_file`, :func:`find_tedana_files` and
  :func:`check_bold_file` resolve fMRIPrep / tedana file names as
  ``nilearn.interfaces.fmriprep`` does.

The strategies themselves (``load_confounds``, ``load_confounds_strategy``)
live in :mod:`nipype_maskers.core.confounds.strategies`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ..io.tables import NA_VALUES, Table, is_number, read_table

__all__ = [
    "NA_VALUES",
    "ConfoundsTable",
    "MissingConfoundsError",
    "check_bold_file",
    "find_confounds_file",
    "find_tedana_files",
    "read_confounds_table",
    "read_confounds_text",
    "read_fmriprep_table",
]

_FMRIPREP_SUFFIXES = ("_timeseries.tsv", "_regressors.tsv")
_TEDANA_SUFFIXES = ("_mixing.tsv", "_metrics.tsv")
# nilearn's ``img_file_patterns`` (load_confounds_utils.py)
_BOLD_PATTERNS = {
    "aroma": ("_desc-smoothAROMAnonaggr_bold", "the full ICA-AROMA strategy needs the "
              "'..._desc-smoothAROMAnonaggr_bold' image"),
    "tedana": ("_desc-optcom_bold.nii.gz", "the tedana strategy needs the "
               "'..._desc-optcom_bold.nii.gz' image (denoised tedana outputs are not supported)"),
    "nii.gz": ("(_space-.*)?_desc-preproc_bold.nii.gz", "a NIfTI BOLD file must be named "
               "'..._desc-preproc_bold.nii.gz'"),
    "dtseries.nii": ("(_space-.*)?_bold.dtseries.nii", "a CIFTI BOLD file must be named "
                     "'..._bold.dtseries.nii'"),
    "func.gii": ("_hemi-[LR](_space-.*)?_bold.func.gii", "a GIfTI BOLD file must be named "
                 "'..._hemi-L|R..._bold.func.gii'"),
}  # fmt: skip


class ConfoundsTable(NamedTuple):
    """A numeric table read from a text file.

    Attributes
    ----------
    data : ndarray of shape (n_volumes, n_columns), float64
        The values; NaN where the file holds a missing-value marker
        (see :data:`NA_VALUES`).
    columns : list of str
        The column names (``'confound_0'``, ``'confound_1'``... when the
        file has no header).
    """

    data: NDArray[np.float64]
    columns: list[str]


class MissingConfoundsError(ValueError):
    """Columns needed by a confound strategy are absent from the confounds file.

    Parameters
    ----------
    message : str
        The error message.
    columns : list of str
        The missing column names.
    components : list of str
        The strategy components for which no column at all was found.
    """

    def __init__(self, message: str, columns: Sequence[str] = (), components: Sequence[str] = ()):
        super().__init__(message)
        self.columns = list(columns)
        self.components = list(components)


# --------------------------------------------------------------------------------------------
# Reading text tables
# --------------------------------------------------------------------------------------------
def _as_path(path: Any, name: str) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path`, or raise a TypeError."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(path).__name__}")
    return Path(path)


def _unique_names(names: list[str]) -> list[str]:
    """Rename duplicated column names ``x, x`` to ``x, x.1`` as pandas does."""
    counts: dict[str, int] = {}
    out = []
    for name in names:
        count = counts.get(name, 0)
        while count > 0:
            counts[name] = count + 1
            name = f"{name}.{count}"
            count = counts.get(name, 0)
        out.append(name)
        counts[name] = count + 1
    return out


def read_confounds_text(path: str | os.PathLike, *, name: str = "confounds_file") -> Table:
    """A confounds table as text cells, with nilearn's header rule and pandas' column names.

    The header is inferred (a user file of unknown form): the first row is a header when one
    of its cells is not a number. Duplicated names become ``x.1``, ``x.2``... as in pandas;
    without a header the columns are ``'confound_0'``, ``'confound_1'``... Convert columns
    with :meth:`~nipype_maskers.core.io.tables.Table.numbers`.
    """
    table = read_table(path, name=name, header="infer", numeric=False)
    if table.has_header:
        return table._replace(columns=_unique_names(table.columns))
    return table._replace(columns=[f"confound_{i}" for i in range(len(table.columns))])


def read_confounds_table(path: str | os.PathLike, *, columns: Sequence[str] | None = None,
                         name: str = "confounds_file") -> ConfoundsTable:  # fmt: skip
    r"""Read a confounds table from a TSV, CSV or whitespace-delimited text file.

    Parameters
    ----------
    path : str or os.PathLike
        The file. The delimiter is guessed from the first non-blank line: a
        tab, else a comma, else a semicolon, else runs of whitespace (SPM's
        ``rp_*.txt``). Blank lines are skipped.
    columns : sequence of str, optional
        Keep only these columns, in this order. Without a header the names are
        ``'confound_0'``, ``'confound_1'``...
    name : str, default='confounds_file'
        The input's name, at the start of error messages.

    Returns
    -------
    ConfoundsTable
        ``data`` (n_rows, n_columns) float64 and ``columns``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is empty, its rows have different lengths, a cell is not a
        number, or a requested column does not exist.

    Notes
    -----
    Read by :func:`~nipype_maskers.core.io.tables.read_table` with
    ``header='infer'``: the first row is a header when it is not all numbers
    (nilearn's rule in ``signal.clean``, where a NaN first value means a
    header); the missing-value markers of :data:`NA_VALUES` (``'n/a'``,
    ``'NaN'``, empty...) count as numbers there and read as NaN everywhere.
    Duplicated header names are renamed ``x.1``, ``x.2``... as pandas does.
    Unlike pandas, which fills short rows with NaN, rows of different lengths
    are an error.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp()) / "conf.tsv"
    >>> _ = tmp.write_text("a\tb\n1\tn/a\n3\t4\n")
    >>> table = read_confounds_table(tmp)
    >>> table.columns, table.data.tolist()
    (['a', 'b'], [[1.0, nan], [3.0, 4.0]])
    """
    table = read_confounds_text(path, name=name)
    names = list(table.columns) if columns is None else list(columns)
    return ConfoundsTable(table.numbers(names), names)


# --------------------------------------------------------------------------------------------
# fMRIPrep / tedana file names
# --------------------------------------------------------------------------------------------
def _entities(path: Path) -> dict[str, str | None]:
    """BIDS entities of a file name, in order (nilearn's ``parse_bids_filename``)."""
    parts = path.name.split("_")
    entities: dict[str, str | None] = {}
    for part in parts[:-1]:
        key, *label = part.split("-")
        entities[key] = label[0] if label else None
    return entities


def _candidate_names(path: Path, descs: Sequence[str], suffixes: Sequence[str]) -> list[str]:
    """File names nilearn tries: every entity subset with ``desc``, each suffix.

    Sorted by decreasing length (more retained entities first), as nilearn does.
    """
    names = set()
    for desc in descs:
        entities = dict(_entities(path))
        entities["desc"] = desc
        keys = list(entities)
        for n in range(1, len(keys) + 1):
            for subset in itertools.combinations(keys, n):
                if "desc" in subset:
                    stem = "_".join(f"{k}-{entities[k]}" for k in subset)
                    names.update(stem + suffix for suffix in suffixes)
    return sorted(names, key=len, reverse=True)


def find_confounds_file(bold_file: str | os.PathLike | Sequence[str | os.PathLike]
                        ) -> tuple[Path, Path | None]:  # fmt: skip
    """Locate the fMRIPrep confounds TSV (and its JSON sidecar) of a BOLD file.

    Parameters
    ----------
    bold_file : str or os.PathLike, or a pair of them
        A preprocessed BOLD file in an fMRIPrep derivatives folder (NIfTI,
        CIFTI, or one GIfTI hemisphere; for a pair of GIfTI files the first is
        used, as in nilearn).

    Returns
    -------
    confounds_file : Path
        The ``*_desc-confounds_timeseries.tsv`` (fMRIPrep >= 20.2) or
        ``*_desc-confounds_regressors.tsv`` (older) file next to the image.
    sidecar : Path or None
        The JSON file with the same name, if it exists.

    Raises
    ------
    FileNotFoundError
        If no candidate exists (the message lists the names searched).
    ValueError
        If several candidates exist (the message lists them).

    Notes
    -----
    As nilearn: the BIDS entities of the image name, with ``desc`` set to
    ``confounds``, every subset of them that keeps ``desc``, and both suffixes
    are tried in the image's folder; exactly one file must exist.
    """
    if isinstance(bold_file, (list, tuple)) and bold_file:
        bold_file = bold_file[0]
    path = _as_path(bold_file, "bold_file")
    candidates = _candidate_names(path, ["confounds"], _FMRIPREP_SUFFIXES)
    found = [path.parent / name for name in candidates if (path.parent / name).is_file()]
    if not found:
        raise FileNotFoundError(
            f"no fMRIPrep confounds file found for bold_file {str(path)!r} in "
            f"{str(path.parent)!r}; searched {len(candidates)} names: {candidates}"
        )
    if len(found) > 1:
        raise ValueError(
            f"found {len(found)} confounds files for bold_file {str(path)!r}, expected one: "
            f"{[str(f) for f in found]}"
        )
    sidecar = found[0].with_suffix(".json")
    return found[0], (sidecar if sidecar.is_file() else None)


def find_tedana_files(path: str | os.PathLike) -> tuple[Path, Path]:
    """Locate tedana's ICA mixing and metrics tables next to a file.

    Parameters
    ----------
    path : str or os.PathLike
        Any file whose name carries the run's BIDS entities, in the tedana
        output folder: the ``*_desc-optcom_bold.nii.gz`` image (as in nilearn),
        the ``*_desc-ICA_mixing.tsv`` table or a confounds TSV. It need not
        exist; only its folder and entities are used.

    Returns
    -------
    mixing, metrics : Path
        ``*_desc-ICA_mixing.tsv`` and ``*_desc-tedana_metrics.tsv``.

    Raises
    ------
    FileNotFoundError
        If either table is missing (the message lists the names searched).
    ValueError
        If more than one mixing or metrics table matches.

    Notes
    -----
    As nilearn: ``desc`` is set to ``confounds``, ``ICA`` and ``tedana`` in
    turn, every entity subset that keeps ``desc`` is tried with the suffixes
    ``_mixing.tsv`` and ``_metrics.tsv``.
    """
    path = _as_path(path, "path")
    candidates = _candidate_names(path, ["confounds", "ICA", "tedana"], _TEDANA_SUFFIXES)
    found = [path.parent / name for name in candidates if (path.parent / name).is_file()]
    out = []
    for suffix in _TEDANA_SUFFIXES:
        matches = [f for f in found if f.name.endswith(suffix)]
        searched = [c for c in candidates if c.endswith(suffix)]
        if not matches:
            raise FileNotFoundError(
                f"no tedana '*{suffix}' file found for {str(path)!r} in "
                f"{str(path.parent)!r}; searched {searched}"
            )
        if len(matches) > 1:
            raise ValueError(
                f"found {len(matches)} tedana '*{suffix}' files for {str(path)!r}, expected "
                f"one: {[str(f) for f in matches]}"
            )
        out.append(matches[0])
    return out[0], out[1]


def read_fmriprep_table(path: Path, *, name: str = "confounds_file") -> Table:
    """Read an fMRIPrep confounds TSV as text cells; reject old or header-less files."""
    table = read_confounds_text(path, name=name)
    if not table.has_header or is_number(table.columns[0]):
        raise ValueError(
            f"{table.source}: the file has no header row; expected column names to select "
            "confounds by (fMRIPrep >= 1.2 writes them; is this an old fMRIPrep output?)"
        )
    camel = [c for c in table.columns if c != c.lower() and c != c.upper() and "_" not in c]
    if camel:
        raise ValueError(
            f"{table.source}: camel-case column names {camel[:5]}, as written by fMRIPrep "
            "1.0.x/1.1.x; expected fMRIPrep >= 1.2.0 outputs (snake_case names such as "
            "'trans_x')"
        )
    return table


def _load_sidecar(sidecar: Any, confounds_file: Path) -> dict | None:
    """Return the JSON sidecar as a dict (None when absent and not given)."""
    if isinstance(sidecar, Mapping):
        return dict(sidecar)
    if sidecar is None:
        path = confounds_file.with_suffix(".json")
        if not path.is_file():
            return None
    else:
        path = _as_path(sidecar, "sidecar")
        if not path.is_file():
            raise FileNotFoundError(f"sidecar {str(path)!r} does not exist")
    try:
        with path.open("rb") as stream:
            meta = json.load(stream)
    except json.JSONDecodeError as err:
        raise ValueError(f"sidecar {str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"sidecar {str(path)!r} must hold a JSON object, got "
                         f"{type(meta).__name__}")  # fmt: skip
    return meta


def check_bold_file(bold_file: str | os.PathLike | Sequence[str | os.PathLike], *,
                    ica_aroma_full: bool = False, tedana: bool = False) -> None:  # fmt: skip
    """Check that a BOLD file name suits the confound strategy (nilearn's ``_check_images``).

    Parameters
    ----------
    bold_file : str or os.PathLike, or a pair of GIfTI paths
        The image whose confounds are loaded.
    ica_aroma_full : bool, default=False
        ``'ica_aroma'`` is in the strategy with ``ica_aroma='full'``: the image
        must be fMRIPrep's ``*_desc-smoothAROMAnonaggr_bold`` output.
    tedana : bool, default=False
        ``'tedana'`` is in the strategy: the image must be tedana's
        ``*_desc-optcom_bold.nii.gz`` (takes precedence over
        ``ica_aroma_full``).

    Raises
    ------
    ValueError
        If the name does not match the expected fMRIPrep pattern.
    """
    if isinstance(bold_file, (list, tuple)):
        names = [str(_as_path(f, "bold_file")) for f in bold_file]
        kind = "func.gii"
        if len(names) != 2:
            raise ValueError(f"bold_file: expected one image or a pair of GIfTI files, "
                             f"got {len(names)} files")  # fmt: skip
    else:
        names = [str(_as_path(bold_file, "bold_file"))]
        kind = ("tedana" if tedana else "aroma" if ica_aroma_full
                else ".".join(names[0].split(".")[-2:]))  # fmt: skip
    if kind not in _BOLD_PATTERNS:
        raise ValueError(
            f"bold_file {names[0]!r}: unsupported extension '.{kind}'; expected one of "
            f"{['.nii.gz', '.dtseries.nii', '.func.gii']}"
        )
    pattern, expected = _BOLD_PATTERNS[kind]
    if not all(re.search(pattern, name) for name in names):
        raise ValueError(f"bold_file {names}: {expected}")
