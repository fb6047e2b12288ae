"""Validation of the inputs and options of :func:`nipype_maskers.core.signal.cleaning.clean`.

Each function turns one user input into a canonical array or raises a ``ValueError`` /
``TypeError`` whose message names the parameter, says what was given and what is expected.
"""

from __future__ import annotations

import numbers
import os
import warnings

import numpy as np
from numpy.typing import NDArray

from .filtering import PADTYPES, butterworth_sos

STANDARDIZE_OPTIONS = ("zscore_sample", "zscore", "psc", None)
FILTER_OPTIONS = ("butterworth", "cosine", False, None)

__all__ = [
    "FILTER_OPTIONS",
    "STANDARDIZE_OPTIONS",
    "AllVolumesRemovedError",
    "as_confounds",
    "as_signals",
    "check_cutoff",
    "check_options",
    "check_sample_mask",
    "check_t_r",
    "fix_confound_nans",
    "split_runs",
]


class AllVolumesRemovedError(ValueError):
    """``sample_mask`` keeps no volume at all."""


def _short(values, limit: int = 10) -> str:
    """List at most ``limit`` values for an error message."""
    values = [int(v) if isinstance(v, np.integer) else v for v in values]
    if len(values) <= limit:
        return str(values)
    return f"{values[:limit]} ... ({len(values)} in total)"


def as_signals(signals) -> tuple[np.ndarray, bool]:
    """Return ``signals`` as a 2D ndarray (no copy) and whether it was 1D."""
    arr = signals if isinstance(signals, np.ndarray) else np.asarray(signals)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"signals must be a real numeric array; got dtype {arr.dtype}."
        )
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"signals must be 2D (n_volumes, n_features) or 1D; got shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"signals has no volumes (shape {arr.shape}).")
    return (arr[:, None], True) if arr.ndim == 1 else (arr, False)


def check_t_r(t_r) -> float | None:
    """``t_r`` is None or a positive finite number (seconds)."""
    if t_r is None:
        return None
    if isinstance(t_r, bool) or not isinstance(t_r, numbers.Real):
        raise TypeError(f"t_r must be a number of seconds or None; got {t_r!r}.")
    if not (np.isfinite(t_r) and t_r > 0):
        raise ValueError(f"t_r must be a positive number of seconds; got {t_r}.")
    return float(t_r)


def check_cutoff(name: str, value) -> float | None:
    """A cutoff is None or a positive finite frequency in Hz."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a frequency in Hz or None; got {value!r}.")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(
            f"{name} must be a positive frequency in Hz (or None for no filter); "
            f"got {value}."
        )
    return float(value)


def split_runs(runs, n_volumes: int) -> tuple[list[NDArray[np.intp]], list]:
    """Rows of each run, runs in ``np.unique`` order (rows in input order).

    Returns
    -------
    rows : list of 1D int arrays
    labels : list of the run labels
    """
    if runs is None:
        return [np.arange(n_volumes)], [None]
    labels_arr = np.asarray(runs)
    if labels_arr.ndim != 1 or labels_arr.shape[0] != n_volumes:
        raise ValueError(
            f"runs must hold one label per volume ({n_volumes}); got shape "
            f"{labels_arr.shape}."
        )
    labels, inverse = np.unique(labels_arr, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=labels.size))[:-1]
    return np.split(order, bounds), labels.tolist()


def _check_indices(mask, length: int, name: str) -> NDArray[np.intp]:
    """Kept volumes as sorted unique indices in ``[0, length)``."""
    arr = np.asarray(mask)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1D array of kept-volume indices or booleans; got shape "
            f"{arr.shape}."
        )
    if arr.size == 0:
        return np.zeros(0, dtype=np.intp)
    if arr.dtype == bool:
        if arr.size != length:
            raise ValueError(
                f"{name} is a boolean array of length {arr.size}; expected one value per "
                f"volume ({length})."
            )
        return np.flatnonzero(arr)
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must hold integer indices or booleans; got dtype {arr.dtype}."
        )
    bad = arr[(arr < 0) | (arr >= length)]
    if bad.size:
        raise ValueError(
            f"{name} has indices out of range {_short(bad)}; expected indices in "
            f"[0, {length - 1}]."
        )
    sorted_ = np.sort(arr).astype(np.intp)
    dup = np.unique(sorted_[1:][sorted_[1:] == sorted_[:-1]])
    if dup.size:
        raise ValueError(f"{name} has duplicated indices {_short(dup)}.")
    return sorted_


def check_sample_mask(
    sample_mask, run_rows: list[NDArray[np.intp]], n_volumes: int
) -> list[NDArray[np.intp] | None]:
    """Kept volumes of each run, as sorted local indices (None: every volume kept).

    ``sample_mask`` is either one 1D mask over all volumes (indices or booleans), or, as
    in nilearn, a list with one index array per run (runs in sorted label order).
    """
    n_runs = len(run_rows)
    if sample_mask is None:
        return [None] * n_runs
    per_run = isinstance(sample_mask, (list, tuple)) and any(
        np.ndim(m) >= 1 for m in sample_mask
    )
    if per_run:
        if len(sample_mask) != n_runs:
            raise ValueError(
                f"sample_mask is a list of {len(sample_mask)} arrays; expected one per "
                f"run ({n_runs}) or a single 1D mask over all {n_volumes} volumes."
            )
        kept = [
            _check_indices(m, rows.size, f"sample_mask[{i}]")
            for i, (m, rows) in enumerate(zip(sample_mask, run_rows, strict=True))
        ]
    else:
        glob = np.zeros(n_volumes, dtype=bool)
        glob[_check_indices(sample_mask, n_volumes, "sample_mask")] = True
        kept = [np.flatnonzero(glob[rows]) for rows in run_rows]
    if sum(k.size for k in kept) == 0:
        raise AllVolumesRemovedError(
            "sample_mask is empty: every volume was censored, nothing is left to clean."
        )
    return [None if k.size == rows.size else k for k, rows in zip(kept, run_rows, strict=True)]


def as_confounds(confounds, n_volumes: int) -> NDArray[np.float64] | None:
    """Confounds as a new float64 ``(n_volumes, n_confounds)`` array, or None.

    ``confounds`` is an array (1D is one column), anything ``np.asarray`` turns into one
    (e.g. a DataFrame), or a list/tuple of those, stacked side by side.
    """
    if confounds is None:
        return None
    parts = list(confounds) if isinstance(confounds, (list, tuple)) else [confounds]
    columns = []
    for i, part in enumerate(parts):
        name = f"confounds[{i}]" if isinstance(confounds, (list, tuple)) else "confounds"
        if isinstance(part, (str, bytes, os.PathLike)):
            raise TypeError(
                f"{name} is a path ({part!r}); clean takes arrays: load the file first."
            )
        arr = np.asarray(part)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be numeric; got dtype {arr.dtype}.")
        if arr.ndim == 1:
            arr = arr[:, None]
        elif arr.ndim != 2:
            raise ValueError(
                f"{name} must be 1D or 2D (n_volumes, n_confounds); got shape {arr.shape}."
            )
        if arr.shape[0] != n_volumes:
            raise ValueError(
                f"{name} has {arr.shape[0]} rows; signals has {n_volumes} volumes (rows)."
            )
        columns.append(arr.astype(np.float64))
    if not columns:
        return None
    out = np.hstack(columns)
    return out if out.shape[1] else None


def fix_confound_nans(
    conf: NDArray[np.float64], kept: NDArray[np.intp] | None, rows: NDArray[np.intp]
) -> None:
    """Fill or reject the non-finite values of one run's confounds, in place.

    - Leading NaN rows of a column (fMRIPrep writes ``n/a`` in the first row of
      derivative columns) take the column's first finite value, as nilearn's
      ``load_confounds`` does; a warning names the columns and the (kept) rows.
    - Non-finite values in volumes censored by ``sample_mask`` are ignored (set to 0: a
      censored volume of a confound is dropped or re-interpolated before use).
    - Any other non-finite value raises ``ValueError`` naming the columns and rows.

    ``rows`` maps the run's rows to the input's rows for the messages.
    """
    bad = ~np.isfinite(conf)
    if not bad.any():
        return
    n, k = conf.shape
    finite = ~bad
    has_finite = finite.any(axis=0)
    first = np.where(has_finite, finite.argmax(axis=0), 0)
    leading = np.logical_and.accumulate(np.isnan(conf), axis=0) & has_finite
    conf[leading] = np.broadcast_to(conf[first, np.arange(k)], (n, k))[leading]
    kept_rows = np.ones(n, dtype=bool)
    if kept is not None:
        kept_rows[:] = False
        kept_rows[kept] = True
    filled = leading & kept_rows[:, None]
    if filled.any():
        cols = np.flatnonzero(filled.any(axis=0))
        warnings.warn(
            f"confounds columns {_short(cols)} start with NaN in rows "
            f"{_short(rows[np.flatnonzero(filled.any(axis=1))])}; these were filled with "
            "each column's first finite value (as nilearn's load_confounds does).",
            UserWarning,
            stacklevel=4,
        )
    rest = bad & ~leading
    conf[rest & ~kept_rows[:, None]] = 0.0
    wrong = rest & kept_rows[:, None]
    if wrong.any():
        cols = np.flatnonzero(wrong.any(axis=0))
        raise ValueError(
            f"confounds columns {_short(cols)} have non-finite values (NaN or inf) in rows "
            f"{_short(rows[np.flatnonzero(wrong.any(axis=1))])} that are not censored by "
            "sample_mask; only leading NaN rows are filled. Fix or censor these volumes."
        )


def check_options(standardize, filter, low_pass, high_pass, t_r, order, padtype, padlen):
    """Validate and normalise the scalar options of ``clean``.

    Returns a dict with the normalised ``standardize``, ``filter``, cutoffs, ``t_r``, the
    Butterworth options and ``sos`` (the designed filter, or None when not filtering).
    """
    if standardize is True:
        standardize = "zscore_sample"
    elif standardize is False:
        standardize = None
    if standardize not in STANDARDIZE_OPTIONS:
        raise ValueError(
            f"Unknown standardize {standardize!r}. Accepted: {list(STANDARDIZE_OPTIONS)} "
            "(True means 'zscore_sample', False means None)."
        )
    if filter not in FILTER_OPTIONS:
        raise ValueError(f"Unknown filter {filter!r}. Accepted: {list(FILTER_OPTIONS)}.")
    low_pass = check_cutoff("low_pass", low_pass)
    high_pass = check_cutoff("high_pass", high_pass)
    t_r = check_t_r(t_r)
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"butterworth_order must be a positive integer; got {order!r}.")
    if padtype not in PADTYPES:
        raise ValueError(f"Unknown butterworth_padtype {padtype!r}. Accepted: {PADTYPES}.")
    if padlen is not None and (
        isinstance(padlen, bool) or not isinstance(padlen, (int, np.integer)) or padlen < 0
    ):
        raise ValueError(
            f"butterworth_padlen must be None or a non-negative integer; got {padlen!r}."
        )
    sos = None
    if filter in (False, None):
        if low_pass is not None or high_pass is not None:
            warnings.warn(
                f"filter={filter!r} but a cutoff frequency was given: no filtering is done.",
                UserWarning,
                stacklevel=3,
            )
    elif filter == "cosine":
        if t_r is None or high_pass is None:
            raise ValueError(
                f"filter='cosine' needs t_r and high_pass; got t_r={t_r}, "
                f"high_pass={high_pass}."
            )
        if low_pass is not None:
            warnings.warn(
                "low_pass is not implemented for filter='cosine'; it is ignored.",
                UserWarning,
                stacklevel=3,
            )
    elif low_pass is not None or high_pass is not None:
        if t_r is None:
            raise ValueError(
                f"Butterworth filtering (low_pass={low_pass}, high_pass={high_pass}) "
                "needs the repetition time t_r; got t_r=None."
            )
        sos = butterworth_sos(t_r, low_pass=low_pass, high_pass=high_pass, order=int(order))
    return dict(
        standardize=standardize, filter=filter, low_pass=low_pass, high_pass=high_pass,
        t_r=t_r, sos=sos, order=order, padtype=padtype, padlen=padlen,
    )  # fmt: skip
