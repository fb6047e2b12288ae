"""The one reader and the one writer of every TSV/CSV table the package reads or writes.

:func:`read_table` reads a delimited text file into a :class:`Table` (column names, float64
values, raw text cells); :func:`format_table` turns columns and rows into BIDS TSV text. The
rules, the same for every table:

- **Missing values**: written ``n/a`` (BIDS); read as NaN from ``n/a`` and the other strings
  pandas reads as missing by default (:data:`NA_VALUES`: ``NaN``, ``NA``, empty...).
- **Header**: the caller says which form the file has. ``header=True``: the first row names the
  columns, numbers included (a table this package wrote always has a header, and a labels
  masker's columns are named by label values such as ``24``). ``header=False``: every row is
  data. ``header='infer'`` is only for user files of unknown form (nilearn-style confounds or
  seeds): the first row is a header when one of its cells is not a number (a missing-value
  marker counts as a number).
- **Delimiter**: given (``'\\t'`` for a TSV we wrote), or taken from the first line: a tab,
  else a comma, else a semicolon, else runs of whitespace (SPM's ``rp_*.txt``). Blank lines
  are skipped; cells are stripped of surrounding spaces.
- **Errors**: one :class:`ValueError` style, ``"<name> '<path>': <what is wrong>; <what is
  expected>"``, where ``name`` is the input's name (``confounds_file``, ``lut_file``...).

Reading a file is the only file access here (the core never writes): callers write the text
of :func:`format_table` themselves, atomically.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from .float_text import float32_lines

__all__ = ["MISSING", "NA_VALUES", "Table", "format_table", "is_number", "read_table"]

#: Cell values read as missing (NaN): pandas' default ``na_values``.
NA_VALUES = frozenset(
    {
        "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
        "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    }
)  # fmt: skip

#: How a missing value is written (BIDS).
MISSING = "n/a"

_SNIFFED = ("\t", ",", ";")
_FORBIDDEN = ("\t", "\n", "\r")


class Table(NamedTuple):
    """A table read by :func:`read_table`.

    Attributes
    ----------
    columns : list of str
        The header's names, as written; without a header, ``'0'``, ``'1'``... (the default
        region names of the maps and spheres maskers).
    values : ndarray of float64, shape (n_rows, n_columns)
        Every cell as a number (NaN for a missing value) when read with ``numeric=True``;
        shape ``(n_rows, 0)`` with ``numeric=False`` (use :meth:`numbers` for some columns).
    cells : list of list of str
        The data rows' cells as text (stripped), for text columns (names of a LUT...).
    lines : list of int
        The file line (from 1) of each data row, for error messages.
    has_header : bool
        Whether the first row was read as the header.
    source : str
        ``"<name> '<path>'"``, the start of every error message about this table.
    """

    columns: list[str]
    values: NDArray[np.float64]
    cells: list[list[str]]
    lines: list[int]
    has_header: bool
    source: str

    def position(self, column: str) -> int:
        """The index of ``column``; ValueError listing the available columns if absent."""
        try:
            return self.columns.index(column)
        except ValueError:
            raise ValueError(
                f"{self.source}: columns [{column!r}] not found; available columns: "
                f"{self.columns}"
            ) from None

    def text(self, column: str) -> list[str]:
        """The cells of one column, as text."""
        i = self.position(column)
        return [row[i] for row in self.cells]

    def numbers(self, columns: Sequence[str]) -> NDArray[np.float64]:
        """Some columns as float64, shape ``(n_rows, len(columns))``, NaN for missing values.

        Raises
        ------
        ValueError
            A column is absent (the message lists them all), or a cell is not a number.
        """
        if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
            raise TypeError(f"columns must be a list of column names (str), got {columns!r}")
        unknown = [c for c in columns if c not in self.columns]
        if unknown:
            raise ValueError(
                f"{self.source}: columns {unknown} not found; available columns: "
                f"{self.columns}"
            )
        index = [self.columns.index(c) for c in columns]
        rows = [[row[i] for i in index] for row in self.cells]
        return _to_numbers(rows, list(columns), self.lines, self.source)


def is_number(cell: str) -> bool:
    """Whether a (stripped) cell reads as a number; a missing-value marker counts as one
    (the header rule of ``header='infer'``)."""
    if cell in NA_VALUES:
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _to_numbers(rows: list[list[str]], columns: list[str], lines: list[int], source: str
                ) -> NDArray[np.float64]:  # fmt: skip
    """Rows of cells as a float64 array; NA markers -> NaN; one clear error otherwise."""
    values = []
    for row, line in zip(rows, lines, strict=True):
        try:  # the fast path: a row of plain numbers
            values.append(list(map(float, row)))
            continue
        except ValueError:
            pass
        parsed = []
        for column, cell in zip(columns, row, strict=True):
            if cell in NA_VALUES:
                parsed.append(math.nan)
                continue
            try:
                parsed.append(float(cell))
            except ValueError:
                raise ValueError(
                    f"{source}: line {line}: {cell!r} in column {column!r} is not a number; "
                    f"expected a number or {MISSING}"
                ) from None
        values.append(parsed)
    return np.array(values, dtype=np.float64).reshape(len(rows), len(columns))


def _split(lines: list[str], delimiter: str | None) -> list[list[str]]:
    """Split lines into stripped cells (``None``: runs of whitespace)."""
    if delimiter is None:
        return [line.split() for line in lines]
    if delimiter == "\t":  # BIDS TSV: no quoting, a tab is never inside a cell
        return [[cell.strip() for cell in line.split("\t")] for line in lines]
    return [[cell.strip() for cell in row] for row in csv.reader(lines, delimiter=delimiter)]


def read_table(
    path: str | os.PathLike,
    *,
    name: str,
    header: bool | Literal["infer"],
    delimiter: str | None = None,
    comment: str | None = None,
    numeric: bool = True,
) -> Table:
    r"""Read a TSV, CSV or whitespace-delimited text table.

    Parameters
    ----------
    path : str or os.PathLike
        The file (UTF-8, a byte-order mark is ignored).
    name : str
        The input's name, at the start of every error message (``'confounds_file'``...).
    header : True, False or 'infer'
        Whether the first row names the columns. ``'infer'`` only for user files of unknown
        form: a header when one of its cells is not a number (``n/a`` counts as a number).
    delimiter : str, optional
        The cell separator (``'\t'`` for a BIDS TSV: no quoting then). Default: a tab if the
        first line has one, else a comma, else a semicolon (quoted cells as in CSV), else runs
        of whitespace.
    comment : str, optional
        Lines starting with this (after spaces) are skipped, e.g. ``'#'``.
    numeric : bool, default=True
        Every cell must be a number or a missing-value marker (``values`` holds them). False
        for tables with text columns: ``values`` is empty, :meth:`Table.numbers` converts some
        columns.

    Returns
    -------
    Table

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is empty or not text, a row has another number of cells than the header (or
        the first row), or (``numeric=True``) a cell is not a number.

    Examples
    --------
    A labels masker's table without a look-up table: its columns are label values.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "signals.tsv"
    >>> _ = path.write_text("24\t27\n1.5\tn/a\n")
    >>> table = read_table(path, name="in_file", header=True, delimiter="\t")
    >>> table.columns, table.values.tolist()
    (['24', '27'], [[1.5, nan]])
    >>> read_table(path, name="in_file", header="infer").values.shape
    (2, 2)
    """
    if header not in (True, False, "infer"):
        raise ValueError(f"header must be True, False or 'infer', got {header!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(path).__name__}")
    path = Path(path)
    source = f"{name} '{path}'"
    if not path.is_file():
        raise FileNotFoundError(f"{source}: the file does not exist; expected a text table")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not UTF-8 text ({exc}); expected a text table") from None
    numbered = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not (comment and line.lstrip().startswith(comment))
    ]
    if not numbered:
        wanted = "a header row" if header is True else "rows of values"
        raise ValueError(f"{source}: the file is empty; expected {wanted}")
    if delimiter is None:
        delimiter = next((d for d in _SNIFFED if d in numbered[0][1]), None)
    rows = _split([line for _, line in numbered], delimiter)
    lines = [number for number, _ in numbered]
    has_header = header is True or (
        header == "infer" and not all(is_number(cell) for cell in rows[0])
    )
    width = len(rows[0])
    bad = [(line, len(row)) for line, row in zip(lines, rows, strict=True) if len(row) != width]
    if bad:
        line, got = bad[0]
        first = "the header" if has_header else "the first row"
        raise ValueError(
            f"{source}: line {line} has {got} cells, {first} has {width} ({len(bad)} such "
            "row(s)); expected one cell per column in every row"
        )
    if has_header:
        columns, rows, lines = rows[0], rows[1:], lines[1:]
    else:
        columns = [str(i) for i in range(width)]
    values = (_to_numbers(rows, columns, lines, source) if numeric
              else np.empty((len(rows), 0), dtype=np.float64))  # fmt: skip
    return Table(columns, values, rows, lines, has_header, source)


def _format_cell(value: Any, where: str) -> str:
    """One cell as text: numbers in their shortest round-trip form, NaN and None as n/a."""
    if value is None:
        return MISSING
    if isinstance(value, str):
        if any(c in value for c in _FORBIDDEN):
            raise ValueError(f"{where}: {value!r} holds a tab or a line break; expected text "
                             "without them (a TSV cannot hold them)")
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        # str() of a numpy float is the shortest text that reads back to the same value in
        # its own precision (float32 is not padded with float64 digits)
        return MISSING if math.isnan(value) else str(value)
    raise TypeError(f"{where}: {type(value).__name__} {value!r}; expected a number or text")


def _format_array(array: NDArray) -> Iterable[str]:
    """The lines of a 2D numeric array."""
    if array.dtype.kind == "b":
        array = array.astype(np.int64)
    if array.dtype.kind in "iu":
        for row in array.tolist():
            yield "\t".join(map(str, row))
    elif array.dtype == np.float64:  # Python floats print as numpy's float64 does, faster
        for row in array.tolist():
            yield "\t".join(MISSING if v != v else repr(v) for v in row)
    else:  # float16 (float32 goes to float32_lines)
        for row in array:
            yield "\t".join(MISSING if v != v else str(v) for v in row)


def format_table(columns: Sequence[str], rows: NDArray | Iterable[Sequence[Any]], *,
                 name: str = "table") -> str:  # fmt: skip
    """A BIDS TSV as text: a header row, then tab-separated cells, ``n/a`` for missing values.

    Parameters
    ----------
    columns : sequence of str
        The header (always written, see :func:`read_table`'s ``header=True``).
    rows : 2D numeric array, or rows of cells
        An array of shape ``(n_rows, len(columns))`` (integers, floats, booleans as 0/1), or an
        iterable of rows whose cells are numbers, text, or None (written ``n/a``).
    name : str
        What the table is, for error messages.

    Returns
    -------
    str
        The text, ending with a line break; floats in the shortest form that reads back to
        the same value in their own precision, NaN as ``n/a``.

    Raises
    ------
    ValueError
        No column, an empty name, a row of another length, or text with a tab or line break.

    Examples
    --------
    >>> format_table(['24', '27'], np.array([[1.5, np.nan]])).splitlines()
    ['24\\t27', '1.5\\tn/a']
    >>> format_table(['index', 'name'], [(1, 'left'), (2, 'right')])
    'index\\tname\\n1\\tleft\\n2\\tright\\n'
    >>> format_table(['x'], np.array([[0.1]], dtype=np.float32)).splitlines()[1]
    '0.1'
    """
    columns = list(columns)
    if not columns:
        raise ValueError(f"{name}: no column; expected at least one column name")
    for column in columns:
        if not isinstance(column, str) or not column:
            raise ValueError(f"{name}: column name {column!r}; expected non-empty text")
        _format_cell(column, f"{name}: column name")
    lines = ["\t".join(columns)]
    if isinstance(rows, np.ndarray):
        if rows.ndim != 2 or rows.shape[1] != len(columns) or rows.dtype.kind not in "biuf":
            raise ValueError(
                f"{name}: a {rows.dtype} array of shape {rows.shape}; expected a numeric array "
                f"of shape (n_rows, {len(columns)}), one column per name"
            )
        if rows.dtype == np.float32:  # every masker's signals: formatted in bulk
            return lines[0] + "\n" + float32_lines(rows, MISSING)
        lines.extend(_format_array(rows))
    else:
        for number, row in enumerate(rows, start=1):
            row = list(row)
            if len(row) != len(columns):
                raise ValueError(f"{name}: row {number} has {len(row)} cells, the header has "
                                 f"{len(columns)}; expected one cell per column")
            lines.append("\t".join(_format_cell(v, f"{name}: row {number}") for v in row))
    return "\n".join(lines) + "\n"
