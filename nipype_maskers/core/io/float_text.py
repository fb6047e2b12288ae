"""Float32 arrays as TSV text in bulk: each value in numpy's own text (``str(np.float32(v))``).

numpy prints a float32 in the shortest decimal that reads back to the same float32
(Dragon4), positionally when ``1e-4 <= |v| < 1e6`` or ``v == 0`` (``'1013.2'``, ``'-0.0'``),
else in scientific notation (``'1e-05'``). Formatting value by value costs ~0.45 us each:
~0.2 s for a 1,200 x 400 table, which every region masker writes. Here the positional cells
(nearly all of a BOLD signal table) are formatted with whole-array arithmetic:

1. the shortest decimal: for p = 1..9 significant digits, the p-digit decimals nearest to
   ``v`` (and the next one up: at a power of two the interval above ``v`` is twice the one
   below) are computed in float64, exactly (``v * 10**k`` is exact for ``k <= 12``, and one
   correctly rounded division gives the float64 of the decimal), and the first that reads
   back to ``v`` wins;
2. its digits are laid out in a fixed-width byte grid (sign, integer part right-aligned,
   point, fraction), and the unused bytes are dropped in one masked copy.

The other cells (scientific, non-finite) take ``str()`` one by one, NaN is ``n/a``. The text
is the same as ``'\\t'.join(str(v) ...)``; ``tests/test_tables.py`` checks it against numpy
on random bit patterns.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["float32_lines"]

#: Cells formatted at once (~1.5 MB of float64 temporaries: ~1.3x faster than one pass).
_CHUNK_CELLS = 1 << 16
_POSITIONAL = (1e-4, 1e6)  # numpy's range of positional float32 text
_INT_DIGITS = 6  # below 1e6
_FRACTION_DIGITS = 13  # down to 1e-4, 9 significant digits
#: A cell's bytes: sign, integer digits, point, fraction digits, separator.
_WIDTH = 1 + _INT_DIGITS + 1 + _FRACTION_DIGITS + 1
_POWERS = 10 ** np.arange(_FRACTION_DIGITS + 1, dtype=np.int64)
#: The fraction's digits are split in two numbers below 2**32: 6 then 7 digits.
_SPLIT_DIGITS = 7
_SPLIT = 10**_SPLIT_DIGITS


def _shortest_decimals(magnitudes: NDArray[np.float32]
                       ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """``(digits, k)``: each magnitude's shortest round-trip decimal is ``digits * 10**-k``
    (magnitudes in the positional range, not zero)."""
    if not magnitudes.size:  # every value was zero
        return np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)
    exact = magnitudes.astype(np.float64)
    exponent = np.floor(np.log10(exact)).astype(np.int64)
    exponent += exact >= 10.0 ** (exponent + 1)  # log10 is not exact at powers of ten
    exponent -= exact < 10.0 ** exponent
    # only at a power of two can a decimal farther than the nearest one read back
    power_of_two = (magnitudes.view(np.uint32) & 0x7FFFFF) == 0
    digits = np.zeros(magnitudes.size, dtype=np.float64)
    scale = np.zeros(magnitudes.size, dtype=np.int64)
    for e in range(int(exponent.min()), int(exponent.max()) + 1):  # scalar powers of ten
        todo = np.flatnonzero(exponent == e)
        values, targets, special = exact[todo], magnitudes[todo], power_of_two[todo]
        for p in range(1, 10):  # float32 needs 9 digits at most
            if not todo.size:
                break
            k = p - 1 - e
            up, down = 10.0 ** max(k, 0), 10.0 ** max(-k, 0)
            scaled = values * up / down
            candidate = np.rint(scaled)
            reads_back = (candidate / up * down).astype(np.float32) == targets
            above = ~reads_back & special
            if above.any():  # the next decimal up (the interval above is twice the one below)
                next_up = np.floor(scaled[above]) + 1
                candidate[above] = next_up
                reads_back[above] = (next_up / up * down).astype(np.float32) == targets[above]
            if reads_back.any():  # record and drop the values done (rare below 7 digits)
                done = todo[reads_back]
                digits[done], scale[done] = candidate[reads_back], k
                left = ~reads_back
                todo, values, targets, special = (todo[left], values[left], targets[left],
                                                  special[left])
    for _ in range(9):  # a carried candidate (99 -> 100) ends in zeros: drop them
        zero = (digits % 10 == 0) & (scale > 0)
        if not zero.any():
            break
        digits[zero] /= 10
        scale[zero] -= 1
    return digits, scale


def _put_digits(rows: NDArray[np.uint8], number: NDArray[np.uint32]) -> None:
    """Add the decimal digits of ``number`` to ``rows`` (ASCII '0's), one row per digit,
    the last row for the units."""
    for row in rows[::-1]:
        quotient = number // 10
        row += (number - quotient * 10).astype(np.uint8)
        number = quotient


def _positional_cells(values: NDArray[np.float32]) -> tuple[NDArray[np.uint8], NDArray]:
    """The positional text of ``values`` in a (_WIDTH, n) byte grid (a cell per column), and
    which bytes count (the last byte of a cell, its separator, is left for the caller)."""
    n = values.size
    grid = np.full((_WIDTH, n), ord("0"), dtype=np.uint8)
    used = np.zeros((_WIDTH, n), dtype=bool)
    digits = np.zeros(n, dtype=np.float64)
    scale = np.zeros(n, dtype=np.int64)
    nonzero = values != 0
    digits[nonzero], scale[nonzero] = _shortest_decimals(np.abs(values[nonzero]))
    # integer arithmetic (numpy divides by a scalar fast): the integer part below 1e6, the
    # fraction as _FRACTION_DIGITS digits, left-aligned, in two parts below 1e7
    digits = digits.astype(np.int64)
    fraction_digits = np.maximum(scale, 0)
    power = _POWERS[fraction_digits]
    integer = (digits // power * _POWERS[np.maximum(-scale, 0)]).astype(np.uint32)
    fraction = digits % power * _POWERS[_FRACTION_DIGITS - fraction_digits]
    high = fraction // _SPLIT
    low = (fraction - high * _SPLIT).astype(np.uint32)
    high = high.astype(np.uint32)
    grid[0] = ord("-")
    used[0] = np.signbit(values)
    point = 1 + _INT_DIGITS
    _put_digits(grid[point - _INT_DIGITS:point], integer)
    for j in range(1, _INT_DIGITS):  # no leading zeros, but one digit at least
        used[point - 1 - j] = integer >= _POWERS[j]
    used[point - 1] = True
    grid[point] = ord(".")
    used[point] = True
    middle = point + 1 + _FRACTION_DIGITS - _SPLIT_DIGITS
    _put_digits(grid[point + 1:middle], high)
    _put_digits(grid[middle:point + 1 + _FRACTION_DIGITS], low)
    shown = np.maximum(fraction_digits, 1)  # '1.0': one digit at least
    for j in range(_FRACTION_DIGITS):
        used[point + 1 + j] = shown > j
    return grid, used


def float32_lines(array: NDArray[np.float32], missing: str) -> str:
    """The rows of a 2D float32 array as TSV lines (each ending with a line break), values as
    ``str(np.float32)`` writes them, NaN as ``missing``."""
    step = max(1, _CHUNK_CELLS // max(array.shape[1], 1))  # temporaries stay in the cache
    return "".join(_lines(array[start:start + step], missing)
                   for start in range(0, array.shape[0], step))


def _lines(array: NDArray[np.float32], missing: str) -> str:
    n_rows, n_columns = array.shape
    values = np.ascontiguousarray(array).reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        magnitude = np.abs(values.astype(np.float64))
        positional = ((magnitude >= _POSITIONAL[0]) & (magnitude < _POSITIONAL[1])) | (values == 0)
        if positional.all():
            grid, used = _positional_cells(values)
        else:
            grid = np.zeros((_WIDTH, values.size), dtype=np.uint8)
            used = np.zeros((_WIDTH, values.size), dtype=bool)
            grid[:, positional], used[:, positional] = _positional_cells(values[positional])
    for i in np.flatnonzero(~positional).tolist():  # scientific or not finite: one by one
        value = values[i]
        text = (missing if value != value else str(value)).encode("ascii")
        grid[:len(text), i] = np.frombuffer(text, dtype=np.uint8)
        used[:len(text), i] = True
    grid[-1] = ord("\t")
    grid[-1].reshape(n_rows, n_columns)[:, -1] = ord("\n")
    used[-1] = True
    return grid.T[used.T].tobytes().decode("ascii")
