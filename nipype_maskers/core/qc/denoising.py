"""Per-run denoising QC figures: motion, censoring, DVARS, degrees of freedom, duration.

Conventions, each stated once here:

- **Volumes**: every array is indexed by the run's volumes, ``0 .. n_volumes - 1`` (the
  rows of fMRIPrep's confounds table). The kept volumes are the sample mask (nilearn's
  ``sample_mask``); the others are censored (non-steady-state and scrubbed volumes).
- **FD**: fMRIPrep's ``framewise_displacement`` (Power 2012, mm); its first row is ``n/a``
  (no previous volume) and is left out of every FD figure.
- **DVARS** (Power et al. 2012, NeuroImage 59:2142): for a volume ``t``, the root mean square
  over the signal columns of the temporal derivative ``x[t] - x[t - 1]``, in the signals'
  units. It is computed on the signals given (region time series or voxel matrices), before
  and after cleaning: columns entirely ``n/a`` (regions the mask emptied) are left out, and
  only pairs of consecutive volumes both present count (the first volume, censored volumes
  and the volume after a gap have none). Before cleaning the signals are in the input's
  units; after cleaning, in the cleaned signals' (z-scores when standardized), so compare
  the FD-DVARS correlations, which are scale-free, rather than the two DVARS values.
- **Degrees of freedom lost**: ``n_regressors + n_censored + filter_dof`` where
  ``filter_dof`` (:func:`filter_dof_lost`) counts what the temporal filter removes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .stats import pearson_r

__all__ = ["QC_FIGURES", "denoising_qc", "dvars", "filter_dof_lost", "kept_volumes"]

#: The per-run figures, in column order, with their description and unit (BIDS sidecar).
QC_FIGURES: dict[str, tuple[str, str | None]] = {
    "n_volumes": ("Volumes in the run (rows of the confounds table).", None),
    "n_volumes_kept": ("Volumes kept after censoring (the sample mask).", None),
    "n_volumes_censored": ("Volumes censored (non-steady-state and scrubbed volumes).", None),
    "percent_censored": ("Censored volumes as a percentage of the run's volumes.", "%"),
    "mean_fd": ("Mean framewise displacement (fMRIPrep's framewise_displacement, Power "
                "2012) over the run's volumes but the first, whose FD is n/a.", "mm"),
    "max_fd": ("Maximum framewise displacement over the run's volumes.", "mm"),
    "mean_fd_kept": ("Mean framewise displacement over the kept volumes but the first "
                     "volume of the run.", "mm"),
    "mean_dvars_confounds": ("Mean of fMRIPrep's dvars column (voxelwise, before cleaning); "
                             "n/a when the confounds table has none.", "arbitrary"),
    "mean_std_dvars_confounds": ("Mean of fMRIPrep's std_dvars column (standardized DVARS); "
                                 "n/a when the confounds table has none.", None),
    "mean_dvars_before": ("Mean DVARS (RMS over signal columns of the temporal derivative, "
                          "Power 2012) of the signals before cleaning, over pairs of "
                          "consecutive volumes; n/a without raw signals.", "arbitrary"),
    "mean_dvars_after": ("Mean DVARS of the cleaned signals, over pairs of consecutive kept "
                         "volumes; n/a without cleaned signals.", "arbitrary"),
    "fd_dvars_correlation_before": ("Pearson correlation across volumes between FD and the "
                                    "DVARS of the signals before cleaning (all volumes).",
                                    None),
    "fd_dvars_correlation_after": ("Pearson correlation across the kept volumes between FD "
                                   "and the DVARS of the cleaned signals.", None),
    "n_regressors": ("Confound regressors removed by the cleaning.", None),
    "filter_dof": ("Degrees of freedom removed by the temporal filter: the kept volumes "
                   "times the fraction of [0, Nyquist] outside [high_pass, low_pass].", None),
    "dof_lost": ("Degrees of freedom lost: n_regressors + n_volumes_censored + filter_dof.",
                 None),
    "dof_remaining": ("n_volumes - dof_lost (negative: the model is overfitted).", None),
    "remaining_duration": ("Duration of the kept volumes: n_volumes_kept * t_r.", "s"),
}


def kept_volumes(n_volumes: int, *, sample_mask: ArrayLike | None = None,
                 censored_volumes: ArrayLike | None = None) -> NDArray[np.intp]:
    """The sorted kept volume indices from a sample mask or from the censored volumes.

    Give at most one of ``sample_mask`` (kept indices, LoadConfounds' output) and
    ``censored_volumes`` (our sidecars' ``CensoredVolumes``); neither keeps every volume.

    Examples
    --------
    >>> kept_volumes(5, censored_volumes=[0, 3]).tolist()
    [1, 2, 4]
    """
    if sample_mask is not None and censored_volumes is not None:
        raise ValueError("sample_mask and censored_volumes: give one or the other, not both")
    given, name = ((sample_mask, "sample_mask") if censored_volumes is None
                   else (censored_volumes, "censored_volumes"))  # fmt: skip
    if given is None:
        return np.arange(n_volumes, dtype=np.intp)
    indices = np.asarray(given)
    if indices.ndim != 1 or (indices.size and indices.dtype.kind not in "iu"):
        raise ValueError(f"{name}: {indices!r}; expected a 1D list of integer volume indices")
    indices = indices.astype(np.intp)
    bad = indices[(indices < 0) | (indices >= n_volumes)]
    if bad.size:
        raise ValueError(f"{name}: indices {bad[:5].tolist()} are outside [0, {n_volumes - 1}]; "
                         f"the run has {n_volumes} volumes (rows of the confounds table)")
    if np.unique(indices).size != indices.size:
        raise ValueError(f"{name}: repeated volume indices; expected each volume at most once")
    if censored_volumes is not None:
        return np.setdiff1d(np.arange(n_volumes), indices).astype(np.intp)
    return np.sort(indices)  # empty: every volume censored, which QC reports rather than refuses


def dvars(signals: ArrayLike, *, volumes: ArrayLike | None = None,
          n_volumes: int | None = None) -> NDArray[np.float64]:
    """DVARS per volume (Power 2012): RMS over columns of the temporal derivative.

    Parameters
    ----------
    signals : array-like, shape (n_rows, n_columns)
        Region signals or voxel matrices, one row per volume given in ``volumes``. Columns
        entirely NaN (``n/a`` regions) are left out; a row with another NaN (a censored
        volume kept as ``n/a``) has no DVARS, nor has the row after it.
    volumes : array-like of int, optional
        The run volume of each row (a cleaning that dropped censored volumes keeps the rows
        of the sample mask); default ``0 .. n_rows - 1``. Rows of non-consecutive volumes
        have no derivative between them.
    n_volumes : int, optional
        Length of the output (the run's volumes); default ``volumes[-1] + 1``.

    Returns
    -------
    ndarray of float64, shape (n_volumes,)
        ``DVARS[t] = sqrt(mean_j (x[t, j] - x[t - 1, j]) ** 2)``; NaN where undefined.

    Examples
    --------
    >>> dvars([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0]]).tolist()
    [nan, 3.5355339059327378, 0.0]
    >>> dvars([[0.0], [1.0], [3.0]], volumes=[0, 1, 3]).tolist()
    [nan, 1.0, nan, nan]
    """
    signals = np.asarray(signals, dtype=np.float64)
    if signals.ndim == 1:
        signals = signals[:, None]
    if signals.ndim != 2:
        raise ValueError(f"signals of shape {signals.shape}; expected (n_volumes, n_columns)")
    volumes = (np.arange(signals.shape[0]) if volumes is None
               else np.asarray(volumes, dtype=np.intp))  # fmt: skip
    if volumes.shape != (signals.shape[0],):
        raise ValueError(f"volumes has {volumes.size} entries, signals {signals.shape[0]} "
                         "rows; expected one volume index per row")
    if n_volumes is None:
        n_volumes = int(volumes[-1]) + 1 if volumes.size else 0
    out = np.full(n_volumes, np.nan)
    present = ~np.all(np.isnan(signals), axis=0)
    if signals.shape[0] < 2 or not present.any():
        return out
    derivative = np.diff(signals[:, present], axis=0)
    values = np.sqrt(np.mean(derivative * derivative, axis=1))  # NaN when a row has a NaN
    consecutive = np.diff(volumes) == 1
    out[volumes[1:][consecutive]] = values[consecutive]
    return out


def filter_dof_lost(n_kept: int, t_r: float, *, high_pass: float | None = None,
                    low_pass: float | None = None) -> float:
    """Degrees of freedom a band-pass filter removes from ``n_kept`` volumes.

    A series of ``n`` samples has ``n`` degrees of freedom spread evenly over the frequencies
    ``[0, f_N]`` (``f_N = 1 / (2 t_r)``, Nyquist): its discrete Fourier basis has two real
    functions (cosine and sine) per ``1 / (n t_r)`` Hz. A filter keeping ``[high_pass,
    low_pass]`` removes ``n * (1 - (min(low_pass, f_N) - max(high_pass, 0)) / f_N)`` of
    them. For a high-pass alone this is ``2 n t_r high_pass``, the number of cosine drift
    regressors nilearn's ``filter='cosine'`` adds (before rounding) and that fMRIPrep writes
    as ``cosine_XX`` columns; fmriprep-denoise-benchmark counts those columns as degrees of
    freedom lost in the same way. A Butterworth filter's roll-off is ignored (its cut-off is
    taken as sharp). Do not count a filter twice: when the cosine columns are among the
    regressors, give no ``high_pass`` here.

    Examples
    --------
    >>> filter_dof_lost(200, 2.0, high_pass=0.01, low_pass=0.1)  # f_N = 0.25 Hz
    128.0
    >>> filter_dof_lost(200, 2.0, high_pass=0.01)
    8.0
    """
    if t_r is None or not t_r > 0:
        raise ValueError(f"t_r={t_r!r}; expected a repetition time in seconds (> 0)")
    nyquist = 1.0 / (2.0 * t_r)
    low = nyquist if low_pass is None else min(float(low_pass), nyquist)
    high = 0.0 if high_pass is None else max(float(high_pass), 0.0)
    if high_pass is not None and low_pass is not None and high >= low:
        raise ValueError(f"high_pass={high_pass} is not below low_pass={low_pass} (or the "
                         f"Nyquist frequency {nyquist:g} Hz); expected a non-empty band")
    removed_fraction = 1.0 - max(low - high, 0.0) / nyquist
    # rounded so that exact cut-offs give exact counts (0.16 / 0.25 * 200 is 128.00000000000003)
    return round(float(n_kept) * removed_fraction, 9)


def _mean_or_nan(values: NDArray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _paired_r(a: NDArray, b: NDArray) -> float:
    both = np.isfinite(a) & np.isfinite(b)
    return pearson_r(a[both], b[both]) if both.sum() >= 2 else float("nan")


def denoising_qc(
    fd: ArrayLike,
    *,
    t_r: float,
    kept: ArrayLike | None = None,
    n_regressors: int = 0,
    high_pass: float | None = None,
    low_pass: float | None = None,
    filter: Literal["butterworth", "cosine"] | None = "butterworth",
    raw_signals: ArrayLike | None = None,
    clean_signals: ArrayLike | None = None,
    dvars_confounds: ArrayLike | None = None,
    std_dvars_confounds: ArrayLike | None = None,
    missing_regions: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, float | int]:
    """The per-run QC figures (:data:`QC_FIGURES`, then ``n_missing_regions_<atlas>``).

    Parameters
    ----------
    fd : array-like, shape (n_volumes,)
        fMRIPrep's ``framewise_displacement`` column (NaN first row), mm.
    t_r : float
        Repetition time, s.
    kept : array-like of int, optional
        Kept volume indices (:func:`kept_volumes`); default every volume.
    n_regressors : int
        Confound regressors the cleaning removed.
    high_pass, low_pass : float, optional
        The cleaning's filter cut-offs, Hz (:func:`filter_dof_lost`).
    filter : 'butterworth', 'cosine' or None
        The cleaning's filter (nilearn's ``filter``); None: no filtering (the cut-offs are
        then ignored). nilearn's cosine filter is a high-pass only.
    raw_signals : array-like, shape (n_volumes, n_columns), optional
        The signals before cleaning, one row per volume of the run.
    clean_signals : array-like, optional
        The signals after cleaning: one row per kept volume, or one per volume of the run
        (censored rows ``n/a``, ``censored='nan'``).
    dvars_confounds, std_dvars_confounds : array-like, shape (n_volumes,), optional
        fMRIPrep's ``dvars`` / ``std_dvars`` columns.
    missing_regions : mapping of str to list of str, optional
        Per atlas, the regions left ``n/a``; their number becomes a column per atlas.

    Returns
    -------
    dict
        Figure name to value (NaN when not computable).
    """
    fd = np.asarray(fd, dtype=np.float64).ravel()
    n_volumes = fd.size
    if n_volumes < 2:
        raise ValueError(f"framewise_displacement has {n_volumes} rows; expected one per "
                         "volume of the run (at least 2)")
    kept = (np.arange(n_volumes) if kept is None
            else kept_volumes(n_volumes, sample_mask=kept))  # fmt: skip
    n_kept = kept.size
    n_censored = n_volumes - n_kept
    motion = fd[1:]
    if np.isnan(motion).any():
        raise ValueError("framewise_displacement: n/a after the first row (rows "
                         f"{(np.flatnonzero(np.isnan(motion)) + 1)[:5].tolist()}); expected "
                         "n/a in the first row only")
    kept_fd = fd[kept[kept > 0]]
    if filter is None:
        high_pass = low_pass = None
    elif filter == "cosine":
        low_pass = None
    filter_dof = (filter_dof_lost(n_kept, t_r, high_pass=high_pass, low_pass=low_pass)
                  if high_pass is not None or low_pass is not None else 0.0)  # fmt: skip
    dof_lost = int(n_regressors) + n_censored + filter_dof

    dvars_before = np.full(n_volumes, np.nan)
    dvars_after = np.full(n_volumes, np.nan)
    if raw_signals is not None:
        raw_signals = np.asarray(raw_signals, dtype=np.float64)
        if raw_signals.shape[0] != n_volumes:
            raise ValueError(f"raw signals have {raw_signals.shape[0]} rows, the confounds "
                             f"{n_volumes}; expected one row per volume of the run")
        dvars_before = dvars(raw_signals)
    if clean_signals is not None:
        clean_signals = np.asarray(clean_signals, dtype=np.float64)
        rows = clean_signals.shape[0]
        if rows == n_kept:
            dvars_after = dvars(clean_signals, volumes=kept, n_volumes=n_volumes)
        elif rows == n_volumes:  # censored rows kept as n/a: only kept rows count
            dvars_after = dvars(clean_signals)
            censored = np.setdiff1d(np.arange(n_volumes), kept)
            after_censored = censored + 1
            dvars_after[censored] = np.nan
            dvars_after[after_censored[after_censored < n_volumes]] = np.nan
        else:
            raise ValueError(f"clean signals have {rows} rows; expected {n_kept} (the kept "
                             f"volumes) or {n_volumes} (every volume, censored ones n/a)")
    dvars_after_kept = np.full(n_volumes, np.nan)
    dvars_after_kept[kept] = dvars_after[kept]

    figures: dict[str, float | int] = {
        "n_volumes": n_volumes,
        "n_volumes_kept": n_kept,
        "n_volumes_censored": n_censored,
        "percent_censored": 100.0 * n_censored / n_volumes,
        "mean_fd": float(motion.mean()),
        "max_fd": float(motion.max()),
        "mean_fd_kept": float(kept_fd.mean()) if kept_fd.size else float("nan"),
        "mean_dvars_confounds": _optional_mean(dvars_confounds, n_volumes, "dvars"),
        "mean_std_dvars_confounds": _optional_mean(std_dvars_confounds, n_volumes,
                                                   "std_dvars"),
        "mean_dvars_before": _mean_or_nan(dvars_before),
        "mean_dvars_after": _mean_or_nan(dvars_after_kept),
        "fd_dvars_correlation_before": _paired_r(fd, dvars_before),
        "fd_dvars_correlation_after": _paired_r(fd, dvars_after_kept),
        "n_regressors": int(n_regressors),
        "filter_dof": filter_dof,
        "dof_lost": dof_lost,
        "dof_remaining": n_volumes - dof_lost,
        "remaining_duration": n_kept * float(t_r),
    }
    for atlas, names in (missing_regions or {}).items():
        figures[f"n_missing_regions_{atlas}"] = len(names)
    return figures


def _optional_mean(column: ArrayLike | None, n_volumes: int, name: str) -> float:
    if column is None:
        return float("nan")
    column = np.asarray(column, dtype=np.float64).ravel()
    if column.size != n_volumes:
        raise ValueError(f"{name} has {column.size} rows, framewise_displacement {n_volumes}; "
                         "expected columns of the same confounds table")
    return _mean_or_nan(column[1:])
