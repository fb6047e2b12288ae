"""Several runs' region signals as one: each run z-scored, then concatenated (XCP-D's rule).

XCP-D's ``--combine-runs`` (its ``concatenate_data``) concatenates the denoised runs of a
task before computing the correlation matrices: each run is standardized on its own, so that
run means and scales (which differ between runs) do not become connectivity. Censored
volumes are left out: a run written with ``censored='nan'`` has all-``n/a`` rows for them,
which are dropped before the run is z-scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .measures import standardize_signals

__all__ = ["CombinedSignals", "combine_runs"]


class CombinedSignals(NamedTuple):
    """The concatenation and what went into it."""

    signals: NDArray[np.float64]  #: (sum of kept volumes, n_regions); NaN columns: n/a regions
    n_volumes: list[int]  #: kept volumes of each run, in input order
    n_censored: list[int]  #: all-n/a rows dropped from each run
    missing: list[str]  #: regions n/a in at least one run (n/a in the result)


def combine_runs(runs: Sequence[ArrayLike], names: Sequence[str], *,
                 labels: Sequence[str] | None = None) -> CombinedSignals:
    """Z-score each run's signals over its kept volumes, then stack the runs in time.

    Parameters
    ----------
    runs : sequence of array-like, each (n_rows, n_regions)
        The runs' region signals, same regions in the same order (NaN for ``n/a``).
    names : sequence of str
        The region names (the columns).
    labels : sequence of str, optional
        How each run is named in errors (default ``run 1``, ``run 2``...).

    Returns
    -------
    CombinedSignals
        Each run's columns standardized as nilearn's ``zscore_sample`` (mean 0, ``ddof=1``
        standard deviation 1; a constant column becomes zeros) over its rows that are not
        all ``n/a``, then the runs concatenated. A region ``n/a`` in any run is ``n/a`` in
        every row of the result (a matrix over part of the volumes would not be comparable).

    Examples
    --------
    >>> combined = combine_runs([[[1.0], [3.0]], [[10.0], [20.0], [30.0]]], ["a"])
    >>> combined.signals[:, 0].round(3).tolist()
    [-0.707, 0.707, -1.0, 0.0, 1.0]
    """
    labels = list(labels) if labels is not None else [f"run {i}" for i in
                                                       range(1, len(runs) + 1)]
    if not runs:
        raise ValueError("runs: none given; expected the region signals of at least one run")
    blocks, n_volumes, n_censored = [], [], []
    missing = np.zeros(len(names), dtype=bool)
    for label, run in zip(labels, runs, strict=True):
        values = np.asarray(run, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(names):
            raise ValueError(f"{label}: signals of shape {values.shape}; expected (volumes, "
                             f"{len(names)} regions) like the other runs")
        censored = np.all(np.isnan(values), axis=1)
        values = values[~censored]
        empty = np.all(np.isnan(values), axis=0) if values.size else np.ones(len(names), bool)
        partial = np.isnan(values).any(axis=0) & ~empty
        if partial.any():
            region = next(n for n, p in zip(names, partial, strict=True) if p)
            raise ValueError(f"{label}: region {region!r} is n/a in some kept volumes only; "
                             "expected n/a for whole regions or whole (censored) volumes")
        if values.shape[0] < 2:
            raise ValueError(f"{label}: {values.shape[0]} kept volume(s); a run needs at "
                             "least 2 to be z-scored")
        missing |= empty
        standardized = np.full(values.shape, np.nan)
        standardized[:, ~empty] = standardize_signals(values[:, ~empty])
        blocks.append(standardized)
        n_volumes.append(int(values.shape[0]))
        n_censored.append(int(censored.sum()))
    signals = np.concatenate(blocks, axis=0)
    signals[:, missing] = np.nan
    return CombinedSignals(signals, n_volumes, n_censored,
                           [n for n, m in zip(names, missing, strict=True) if m])
