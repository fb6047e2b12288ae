"""Covariance estimators: Ledoit-Wolf (nilearn's default) and the empirical covariance.

Both center each signal on its mean first (scikit-learn's ``assume_centered=False``) and
divide by the number of volumes (``bias=True``), as ``sklearn.covariance.LedoitWolf`` and
``EmpiricalCovariance`` do, which is what nilearn's ``ConnectivityMeasure`` calls.

The Ledoit-Wolf shrinkage is scikit-learn's formula (``ledoit_wolf_shrinkage``), computed
from one Gram matrix: scikit-learn computes ``X.T @ X`` twice and ``(X**2).T @ X**2`` once
(in blocks of 1,000 regions); the sum of the latter's entries is the sum over volumes of the
squared norms of each volume's row, ``sum_t (sum_i x_ti**2)**2``, which needs no matrix
product at all. Same numbers (to rounding), a third of the work.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["SHRINKAGES", "empirical_covariance", "estimate_covariance", "ledoit_wolf"]

#: The covariance estimators, by their ``shrinkage`` name.
SHRINKAGES = ("ledoit_wolf", "none")


def _centered(signals: ArrayLike) -> NDArray[np.float64]:
    """The signals as a 2D float64 array, each column minus its mean (a new array)."""
    signals = np.asarray(signals, dtype=np.float64)
    if signals.ndim != 2:
        raise ValueError(f"signals has shape {signals.shape}; expected a 2D array "
                         "(n_volumes, n_regions)")
    if signals.shape[0] < 1 or signals.shape[1] < 1:
        raise ValueError(f"signals has shape {signals.shape}; expected at least one volume "
                         "and one region")
    if not np.isfinite(signals).all():
        raise ValueError("signals holds NaN or infinite values; expected finite numbers "
                         "(drop n/a regions and censored volumes first)")
    return signals - signals.mean(axis=0)


def _gram(centered: NDArray[np.float64]) -> NDArray[np.float64]:
    """``centered.T @ centered``: numpy sees ``A.T @ A`` and calls BLAS ``syrk`` (half the
    flops of a general product), which also makes the result exactly symmetric."""
    return centered.T @ centered


def empirical_covariance(signals: ArrayLike) -> NDArray[np.float64]:
    """The maximum-likelihood covariance (``sklearn.covariance.EmpiricalCovariance``).

    Parameters
    ----------
    signals : array-like, shape (n_volumes, n_regions)
        Finite values.

    Returns
    -------
    ndarray, shape (n_regions, n_regions)
        ``Xc.T @ Xc / n_volumes`` with ``Xc`` the centered signals (``np.cov(..., bias=True)``).

    Examples
    --------
    >>> empirical_covariance([[1.0, 2.0], [3.0, 0.0]])
    array([[ 1., -1.],
           [-1.,  1.]])
    """
    centered = _centered(signals)
    return _gram(centered) / centered.shape[0]


def ledoit_wolf(signals: ArrayLike) -> tuple[NDArray[np.float64], float]:
    """The Ledoit-Wolf shrunk covariance (``sklearn.covariance.ledoit_wolf``).

    ``(1 - shrinkage) * S + shrinkage * mu * I``, with ``S`` the empirical covariance,
    ``mu = trace(S) / n_regions`` and the shrinkage of Ledoit and Wolf (2004), capped at 1.

    Parameters
    ----------
    signals : array-like, shape (n_volumes, n_regions)
        Finite values; centered here (scikit-learn's ``assume_centered=False``).

    Returns
    -------
    covariance : ndarray, shape (n_regions, n_regions)
    shrinkage : float
        The coefficient, in [0, 1] (0 for a single region, as scikit-learn).

    Examples
    --------
    >>> covariance, shrinkage = ledoit_wolf([[1.0, 2.0], [3.0, 0.0], [2.0, 2.0]])  # as sklearn
    >>> round(shrinkage, 6)
    0.441441
    """
    centered = _centered(signals)
    n_volumes, n_regions = centered.shape
    covariance = _gram(centered) / n_volumes
    if n_regions == 1:
        return covariance, 0.0
    variances = np.diag(covariance).copy()
    mu = variances.sum() / n_regions
    # scikit-learn's delta_: the sum of the squared entries of X.T @ X, over n_volumes**2
    delta_sum = float(np.vdot(covariance, covariance))
    # scikit-learn's beta_: the sum of the entries of (X**2).T @ X**2
    row_norms = np.einsum("ij,ij->i", centered, centered)
    beta_sum = float(row_norms @ row_norms)
    beta = (beta_sum / n_volumes - delta_sum) / (n_regions * n_volumes)
    delta = (delta_sum - 2.0 * mu * variances.sum() + n_regions * mu**2) / n_regions
    beta = min(beta, delta)  # never shrink past the scaled identity
    shrinkage = 0.0 if beta == 0 else beta / delta
    covariance *= 1.0 - shrinkage
    covariance.flat[:: n_regions + 1] += shrinkage * mu
    return covariance, float(shrinkage)


def estimate_covariance(signals: ArrayLike,
                        shrinkage: Literal["ledoit_wolf", "none"] = "ledoit_wolf"
                        ) -> NDArray[np.float64]:  # fmt: skip
    """The covariance of ``signals`` by the named estimator (see :data:`SHRINKAGES`).

    Raises
    ------
    ValueError
        An unknown ``shrinkage``.
    """
    if shrinkage == "ledoit_wolf":
        return ledoit_wolf(signals)[0]
    if shrinkage == "none":
        return empirical_covariance(signals)
    raise ValueError(f"shrinkage {shrinkage!r} is not known; expected one of {SHRINKAGES}")
