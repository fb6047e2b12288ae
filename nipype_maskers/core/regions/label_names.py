"""Names of the regions of a labels atlas: nilearn's ``labels`` list, or a look-up table.

:func:`region_names` gives one name per column of the labels signals and, unlike nilearn
0.14.1 (bug B7), never shifts names silently; :func:`read_lut` reads a BIDS ``dseg.tsv``. Both
are re-exported by :mod:`nipype_maskers.core.regions.labels`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..io.tables import read_table

__all__ = ["read_lut", "region_names"]


def _check_background(background_label: float) -> int:
    value = np.asarray(background_label)
    if value.ndim != 0 or value.dtype.kind not in "biuf":
        raise TypeError(f"background_label must be a number; got {background_label!r}")
    if not np.isfinite(value) or value != np.round(value):
        raise ValueError(f"background_label must be an integer value; got {background_label!r}")
    return int(value)


def _label_str(value: int) -> str:
    return str(int(value))


def _names_from_list(labels: np.ndarray, names: list[str], background: int) -> list[str]:
    n_regions = labels.size
    names = list(names)
    if "background" in names:  # nilearn renames the first one
        names[names.index("background")] = "Background"
    if len(names) == n_regions and "Background" not in names:
        return names  # one name per region: 1:1, whatever the values
    position = int(np.searchsorted(labels, background))  # of background in the sorted values
    if len(names) == n_regions + 1:
        # One name per atlas value, background included: the entry at the background's position
        # names the background, whatever it says ("bg", "Unknown"...). nilearn inserts
        # "Background" in front of such a list and shifts every name (bug B7).
        return names[:position] + names[position + 1 :]
    # nilearn's positional rule over the sorted values, background included.
    if "Background" not in names:
        names.insert(position, "Background")
    n_values = n_regions + 1
    if len(names) > n_values:
        warnings.warn(
            f"labels has {len(names)} names (background included) for {n_values} label values "
            f"(background and {n_regions} regions); dropping the last {len(names) - n_values}",
            UserWarning,
            stacklevel=3,
        )
        names = names[:n_values]
    elif len(names) < n_values:
        warnings.warn(
            f"labels has {len(names)} names (background included) for {n_values} label values "
            f"(background and {n_regions} regions); naming the last {n_values - len(names)} "
            "regions 'unknown'",
            UserWarning,
            stacklevel=3,
        )
        names += ["unknown"] * (n_values - len(names))
    return names[:position] + names[position + 1 :]


def region_names(
    labels: ArrayLike,
    *,
    names: Sequence[str] | None = None,
    lut: Mapping[int, str] | None = None,
    background_label: float = 0,
) -> list[str]:
    """One name per region, in the order of ``labels``.

    Parameters
    ----------
    labels : array of int, shape (n_regions,)
        The non-background label values, ascending (``LabelRegions.labels``).
    names : sequence of str, optional
        nilearn's ``labels``. With exactly one name per region (and no ``'Background'`` entry)
        they map 1:1. With one more name, the list covers the sorted label values *including
        the background*, and the entry at the background's position is dropped whatever it
        says. Any other length follows nilearn's positional rule over the sorted values
        including the background (``'Background'`` inserted when absent, too many names
        dropped, too few padded with ``'unknown'``), with a warning. nilearn instead always
        inserts ``'Background'``, so a list starting with ``'bg'`` or ``'Unknown'`` is shifted
        by one (bug B7, issues #3085, #5542, #5544).
    lut : mapping {int: str}, optional
        A look-up table (e.g. from :func:`read_lut`). Labels missing from it are named by their
        value (``'17'``; nilearn says ``'unknown'``, which makes duplicate names); rows absent
        from the atlas are ignored.
    background_label : int
        The label value of "no region". It is assumed to be among the atlas values.

    Returns
    -------
    list of str
        Without ``names`` or ``lut``: each label value as a string.

    Examples
    --------
    >>> region_names([1, 5], names=["Background", "left", "right"])
    ['left', 'right']
    >>> region_names([1, 5], lut={1: "left", 3: "other"})
    ['left', '5']
    """
    values = np.asarray(labels)
    if values.ndim != 1 or values.dtype.kind not in "biuf":
        raise ValueError(f"labels must be a 1D array of label values; got {labels!r}")
    background = _check_background(background_label)
    if names is not None and lut is not None:
        raise ValueError("Pass either names (nilearn's labels) or lut, not both")
    if names is not None:
        if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
            raise TypeError(f"labels must be a list of str; got {type(names).__name__}")
        if not all(isinstance(name, str) for name in names):
            kinds = sorted({type(name).__name__ for name in names})
            raise TypeError(f"labels must be a list of str; got elements of type {kinds}")
        return _names_from_list(values, list(names), background)
    if lut is not None:
        if not isinstance(lut, Mapping):
            raise TypeError(f"lut must be a mapping {{index: name}}; got {type(lut).__name__}")
        table = {int(index): name for index, name in lut.items()}
        if not all(isinstance(name, str) for name in table.values()):
            raise TypeError("lut must map each index to a name of type str")
        return [table.get(int(value), _label_str(value)) for value in values]
    return [_label_str(value) for value in values]


def read_lut(path: str | os.PathLike) -> dict[int, str]:
    """Read a BIDS ``dseg.tsv`` look-up table.

    Parameters
    ----------
    path : str or os.PathLike
        A tab-separated file whose header has the columns ``index`` (integers) and ``name``;
        other columns (``color``...) are ignored.

    Returns
    -------
    dict {int: str}
        Name of each index, in file order.

    Raises
    ------
    ValueError
        A missing column, a non-integer or duplicate index, an empty name, a row with another
        number of cells than the header, or no rows (read by
        :func:`~nipype_maskers.core.io.tables.read_table`: a header, tabs, ``n/a``).
    """
    lut = read_table(path, name="lut_file", header=True, delimiter="\t", numeric=False)
    missing = [column for column in ("index", "name") if column not in lut.columns]
    if missing:
        raise ValueError(
            f"{lut.source}: the header has no column {' or '.join(missing)}; expected a "
            f"tab-separated header with 'index' and 'name', got {lut.columns}"
        )
    table: dict[int, str] = {}
    for line, text, name in zip(lut.lines, lut.text("index"), lut.text("name"), strict=True):
        where = f"{lut.source}: line {line}"
        try:
            index = int(text)
        except ValueError:
            raise ValueError(f"{where}: index {text!r} is not an integer; expected integer "
                             "label values") from None
        if not name:
            raise ValueError(f"{where}: empty name for index {index}; expected a name")
        if index in table:
            raise ValueError(f"{where}: duplicate index {index} (first named "
                             f"{table[index]!r}); expected each index once")
        table[index] = name
    if not table:
        raise ValueError(f"{lut.source}: a header but no rows; expected one row per label")
    return table
