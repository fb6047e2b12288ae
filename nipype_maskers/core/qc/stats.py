"""The few statistics the QC figures need, in closed form (no ``scipy.stats``).

``scipy.stats`` costs about half a second to import in every process; the figures here need
only Pearson's r, its two-sided p-value (the regularized incomplete beta function of
``scipy.special``, imported when a p-value is asked for), ranks for Spearman's rho, and the
Benjamini-Hochberg false discovery rate.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["fdr_bh", "pearson_columns", "pearson_p", "pearson_r", "rankdata", "spearman_r"]


def pearson_columns(x: ArrayLike, columns: ArrayLike) -> NDArray[np.float64]:
    """Pearson's r between ``x`` and each column of ``columns``.

    Parameters
    ----------
    x : array-like, shape (n_samples,)
    columns : array-like, shape (n_samples, n_columns)
        Finite values (select the rows and columns without NaN first).

    Returns
    -------
    ndarray of float64, shape (n_columns,)
        r in [-1, 1]; NaN for a column (or an ``x``) without variance, where r is undefined.

    Examples
    --------
    >>> pearson_columns([1, 2, 3], [[1, 3, 5], [2, 2, 5], [3, 1, 5]]).round(12).tolist()
    [1.0, -1.0, nan]
    """
    x = np.asarray(x, dtype=np.float64)
    columns = np.asarray(columns, dtype=np.float64)
    if columns.ndim != 2 or x.ndim != 1 or columns.shape[0] != x.shape[0]:
        raise ValueError(f"x of shape {x.shape} and columns of shape {columns.shape}; "
                         "expected shapes (n_samples,) and (n_samples, n_columns)")
    # a constant vector's r is undefined; tested on the values themselves, since centering
    # leaves rounding residue (~1e-17) that would give a spurious r
    constant = np.ptp(columns, axis=0) == 0
    if x.size == 0 or np.ptp(x) == 0:
        constant[:] = True
    x = x - x.mean()
    columns = columns - columns.mean(axis=0)
    norms = np.sqrt(x @ x) * np.sqrt(np.einsum("ij,ij->j", columns, columns))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (x @ columns) / norms
    r[constant | ~np.isfinite(r)] = np.nan
    return np.clip(r, -1.0, 1.0)


def pearson_r(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson's r of two vectors (NaN when one of them is constant)."""
    return float(pearson_columns(x, np.asarray(y, dtype=np.float64)[:, None])[0])


def pearson_p(r: ArrayLike, n_samples: int) -> NDArray[np.float64]:
    """Two-sided p-value of Pearson's r under the null of no correlation (normal samples).

    The statistic ``t = r * sqrt(df / (1 - r**2))`` with ``df = n_samples - 2`` follows
    Student's t; its two-sided tail is the regularized incomplete beta function
    ``I_{1 - r**2}(df / 2, 1 / 2)``, the value ``scipy.stats.pearsonr`` returns.

    Examples
    --------
    >>> float(pearson_p(0.0, 10)), float(pearson_p(1.0, 10))
    (1.0, 0.0)
    """
    if n_samples < 3:
        raise ValueError(f"n_samples={n_samples}; a p-value of Pearson's r needs at least 3 "
                         "samples (1 degree of freedom)")
    from scipy.special import betainc  # lazily: scipy.special costs ~0.2 s to import

    r = np.clip(np.asarray(r, dtype=np.float64), -1.0, 1.0)
    half_df = (n_samples - 2) / 2.0
    return np.asarray(betainc(half_df, 0.5, 1.0 - r * r), dtype=np.float64)


def rankdata(values: ArrayLike) -> NDArray[np.float64]:
    """Ranks from 1, ties given their average rank (``scipy.stats.rankdata``'s default).

    Examples
    --------
    >>> rankdata([10, 30, 20, 20]).tolist()
    [1.0, 4.0, 2.5, 2.5]
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    # the first position of each run of equal values, and where the runs end
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], values.size]
    average = (starts + ends + 1) / 2.0  # mean of the 1-based ranks start+1 .. end
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def spearman_r(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rho: Pearson's r of the average ranks."""
    return pearson_r(rankdata(x), rankdata(y))


def fdr_bh(p_values: ArrayLike) -> NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order.

    ``q_(i) = min_{k >= i} p_(k) * m / k`` over the ascending p-values, capped at 1: a test
    is significant at a false discovery rate ``alpha`` when its q-value is at most ``alpha``
    (statsmodels' ``multipletests(method='fdr_bh')``).

    Examples
    --------
    >>> fdr_bh([0.01, 0.04, 0.03, 0.5]).round(4).tolist()
    [0.04, 0.0533, 0.0533, 0.5]
    """
    p_values = np.asarray(p_values, dtype=np.float64).ravel()
    m = p_values.size
    if m == 0:
        return p_values.copy()
    order = np.argsort(p_values, kind="mergesort")
    scaled = p_values[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    q_values = np.empty(m, dtype=np.float64)
    q_values[order] = np.minimum(adjusted, 1.0)
    return q_values
