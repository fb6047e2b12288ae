"""Censored volumes put back: the kept rows at their positions, NaN rows in between.

``clean`` drops the volumes its ``sample_mask`` censors (nilearn's behaviour). A task
analysis needs one row per volume instead, so that onsets stay aligned: these functions
put the kept rows back at the positions of their volumes and fill the censored ones. The
cleaning is unchanged (the kept rows are the very rows ``clean`` returned).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["kept_positions", "reinsert_censored", "with_censored"]

T = TypeVar("T")


def kept_positions(kept_volumes: ArrayLike, selected_volumes: ArrayLike) -> NDArray[np.intp]:
    """The output position of each kept row: where its volume is in ``selected_volumes``.

    Parameters
    ----------
    kept_volumes : array of int
        The input volume of each kept row, in row order (a masker's ``volumes`` output).
    selected_volumes : array of int
        The input volume of each output row, censored ones included (every volume, or a
        ``volumes`` selection; a volume selected twice is kept or censored twice).

    Returns
    -------
    numpy.ndarray of intp
        Increasing positions in ``[0, len(selected_volumes))``, one per kept row.

    Raises
    ------
    ValueError
        When the kept volumes are not, in order, the selected volumes that were kept.

    Examples
    --------
    >>> kept_positions([0, 2, 3], [0, 1, 2, 3]).tolist()
    [0, 2, 3]
    >>> kept_positions([5, 5], [5, 7, 5]).tolist()
    [0, 2]
    """
    kept = np.asarray(kept_volumes, dtype=np.intp).reshape(-1)
    selected = np.asarray(selected_volumes, dtype=np.intp).reshape(-1)
    positions = np.flatnonzero(np.isin(selected, kept))
    if positions.size != kept.size or not np.array_equal(selected[positions], kept):
        raise ValueError(
            f"kept volumes {kept[:10].tolist()}... are not, in order, the kept ones of the "
            f"{selected.size} selected volumes {selected[:10].tolist()}...; expected the rows "
            "of a cleaning with sample_mask, in volume order"
        )
    return positions


def reinsert_censored(kept_rows: NDArray, positions: ArrayLike, n_rows: int, *,
                      fill: float = np.nan) -> NDArray:
    """One row per volume: ``kept_rows`` at ``positions``, ``fill`` (NaN) elsewhere.

    Parameters
    ----------
    kept_rows : numpy.ndarray
        (n_kept, ...) rows, e.g. cleaned signals.
    positions : array of int
        The position of each kept row (:func:`kept_positions`, or a sorted sample mask).
    n_rows : int
        Number of rows of the output (the volumes before censoring).
    fill : float
        Value of the censored rows.

    Returns
    -------
    numpy.ndarray
        (n_rows, ...) in ``kept_rows``'s dtype (float: NaN must fit).

    Examples
    --------
    >>> reinsert_censored(np.array([[1.0], [3.0]]), [0, 2], 4)[:, 0].tolist()
    [1.0, nan, 3.0, nan]
    """
    positions = _check_positions(positions, len(kept_rows), n_rows)
    out = np.full((n_rows, *np.shape(kept_rows)[1:]), fill, dtype=np.result_type(kept_rows,
                                                                                    np.float32))
    out[positions] = kept_rows
    return out


def with_censored(kept_items: Iterable[T], positions: ArrayLike, n_rows: int, fill: T
                  ) -> Iterator[T]:
    """Yield ``n_rows`` items: the kept ones at ``positions``, ``fill`` at the others.

    The lazy form of :func:`reinsert_censored`, for outputs written one volume at a time
    (a denoised 4D image): no (n_rows, ...) array is built.

    Examples
    --------
    >>> list(with_censored(['a', 'b'], [1, 2], 4, '-'))
    ['-', 'a', 'b', '-']
    """
    positions = _check_positions(positions, None, n_rows)
    items = iter(kept_items)
    next_kept = 0
    for row in range(n_rows):
        if next_kept < positions.size and positions[next_kept] == row:
            next_kept += 1
            yield next(items)
        else:
            yield fill


def _check_positions(positions: ArrayLike, n_kept: int | None, n_rows: int
                     ) -> NDArray[np.intp]:
    positions = np.asarray(positions, dtype=np.intp).reshape(-1)
    if n_kept is not None and positions.size != n_kept:
        raise ValueError(f"positions: {positions.size} positions for {n_kept} kept rows; "
                         "expected one per kept row")
    if positions.size and (positions[0] < 0 or positions[-1] >= n_rows
                           or np.any(np.diff(positions) <= 0)):
        raise ValueError(f"positions: expected increasing positions in [0, {n_rows - 1}], "
                         f"got {positions[:10].tolist()}")
    return positions
