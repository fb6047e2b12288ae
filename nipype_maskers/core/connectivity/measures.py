"""One run's connectivity matrix, as nilearn's ``ConnectivityMeasure`` computes it.

``ConnectivityMeasure(kind=kind, cov_estimator=LedoitWolf())`` with its other defaults
(nilearn 0.14.1, ``connectome/connectivity_matrices.py``), step by step:

- ``standardize=True`` applies to ``kind='correlation'`` only: each signal is centered and
  divided by its standard deviation (``ddof=1``; a deviation below the float64 epsilon is
  taken as 1) before the estimator. With Ledoit-Wolf this changes the correlation (the
  shrinkage target is then the identity). The other kinds use the signals as they are.
- ``'correlation'``: the covariance turned into a correlation (diagonal set to exactly 1);
  ``'covariance'``: the estimate itself; ``'precision'``: its inverse; ``'partial
  correlation'``: minus the correlation of the precision, diagonal 1.
- ``vectorize=False`` (the default) returns square matrices; ``discard_diagonal`` only acts
  on vectorized output in nilearn. Here, on a square matrix, ``discard_diagonal=True`` writes
  the diagonal as NaN (``n/a``): the off-diagonal values are nilearn's
  ``sym_matrix_to_vec(..., discard_diagonal=True)``.

``fisher_z`` (not in nilearn) is ``arctanh`` of a correlation or partial correlation; its
diagonal (``arctanh(1)``, infinite) is NaN.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import linalg

from .covariance import SHRINKAGES, estimate_covariance

__all__ = [
    "KINDS",
    "SHRINKAGES",
    "RunMatrix",
    "connectivity_matrix",
    "cov_to_corr",
    "fisher_z_transform",
    "prec_to_partial",
    "run_connectivity",
    "standardize_signals",
    "valid_signals",
]

#: nilearn's kinds of one run's matrix ('tangent' is a group measure: see :mod:`.tangent`).
KINDS = ("correlation", "partial correlation", "covariance", "precision")

#: The kinds that are correlations, where ``fisher_z`` applies.
CORRELATION_KINDS = ("correlation", "partial correlation")

Kind = Literal["correlation", "partial correlation", "covariance", "precision"]
Shrinkage = Literal["ledoit_wolf", "none"]


def check_options(kind: str, shrinkage: str, fisher_z: bool, *,
                  kinds: tuple[str, ...] = KINDS) -> None:  # fmt: skip
    """One clear ValueError for an unknown kind or shrinkage, or fisher_z on a non-correlation."""
    if kind not in kinds:
        raise ValueError(f"kind {kind!r} is not known; expected one of {kinds}")
    if shrinkage not in SHRINKAGES:
        raise ValueError(f"shrinkage {shrinkage!r} is not known; expected one of {SHRINKAGES}")
    if fisher_z and kind not in CORRELATION_KINDS:
        raise ValueError(f"fisher_z=True with kind {kind!r}: the Fisher z transform is for "
                         f"correlations; expected kind in {CORRELATION_KINDS} or fisher_z=False")


def standardize_signals(signals: ArrayLike) -> NDArray[np.float64]:
    """nilearn's ``standardize_signal(..., standardize='zscore_sample')``: a new array.

    Each column minus its mean, divided by its ``ddof=1`` standard deviation (1 where that is
    below the float64 epsilon, so a constant signal becomes zeros); one volume is returned
    as it is (nilearn warns and skips).
    """
    signals = np.array(signals, dtype=np.float64)
    if signals.shape[0] == 1:
        return signals
    signals -= signals.mean(axis=0)
    std = signals.std(axis=0, ddof=1)
    std[std < np.finfo(np.float64).eps] = 1.0
    signals /= std
    return signals


def cov_to_corr(covariance: NDArray[np.float64]) -> NDArray[np.float64]:
    """The correlation of a covariance (nilearn's ``cov_to_corr``): diagonal exactly 1."""
    scale = 1.0 / np.sqrt(np.diag(covariance))
    correlation = covariance * scale[:, None] * scale[None, :]
    np.fill_diagonal(correlation, 1.0)
    return correlation


def prec_to_partial(precision: NDArray[np.float64]) -> NDArray[np.float64]:
    """The partial correlation of a precision (nilearn's ``prec_to_partial``)."""
    partial = -cov_to_corr(precision)
    np.fill_diagonal(partial, 1.0)
    return partial


def _inverse(covariance: NDArray[np.float64], shrinkage: str, n_volumes: int
             ) -> NDArray[np.float64]:  # fmt: skip
    """The precision: the inverse of a (symmetric positive definite) covariance.

    A Cholesky inverse (symmetric by construction, half the work of ``linalg.inv``); a
    covariance that is not positive definite is one clear error.
    """
    n_regions = covariance.shape[0]
    try:
        factor = linalg.cho_factor(covariance, lower=True, check_finite=False)
    except linalg.LinAlgError:
        hint = ("use shrinkage='ledoit_wolf' (a shrunk covariance is always invertible)"
                if shrinkage == "none" else "check for duplicated or constant regions")
        raise ValueError(
            f"the covariance of {n_regions} regions over {n_volumes} volumes is singular and "
            f"cannot be inverted; {hint}"
        ) from None
    return linalg.cho_solve(factor, np.eye(n_regions), check_finite=False)


def check_volumes(n_volumes: int, n_regions: int, kind: str, shrinkage: str) -> None:
    """Refuse an unshrunk covariance that is singular for sure and must be inverted.

    Centered signals span at most ``n_volumes - 1`` dimensions: with ``n_volumes <=
    n_regions`` the empirical covariance has no inverse (precision, partial correlation,
    tangent).
    """
    if shrinkage == "none" and kind not in ("correlation", "covariance") and (
        n_volumes <= n_regions
    ):
        raise ValueError(
            f"kind {kind!r} with shrinkage='none' needs more volumes than regions to invert "
            f"the covariance, got {n_volumes} volume(s) for {n_regions} regions; use "
            "shrinkage='ledoit_wolf' (nilearn's default), or fewer regions"
        )


def connectivity_matrix(signals: ArrayLike, *, kind: Kind = "correlation",
                        shrinkage: Shrinkage = "ledoit_wolf", fisher_z: bool = False,
                        discard_diagonal: bool = False) -> NDArray[np.float64]:  # fmt: skip
    """One run's connectivity matrix, as ``ConnectivityMeasure(kind=kind)`` (module docstring).

    Parameters
    ----------
    signals : array-like, shape (n_volumes, n_regions)
        Finite values (see :func:`valid_signals` for ``n/a`` regions and censored volumes).
    kind : {'correlation', 'partial correlation', 'covariance', 'precision'}
    shrinkage : {'ledoit_wolf', 'none'}
        nilearn's default ``LedoitWolf`` estimator, or the empirical covariance.
    fisher_z : bool
        ``arctanh`` of the (partial) correlation; the diagonal is then NaN.
    discard_diagonal : bool
        The diagonal is NaN.

    Returns
    -------
    ndarray, shape (n_regions, n_regions)

    Raises
    ------
    ValueError
        An unknown option, ``fisher_z`` with a non-correlation kind, or a covariance that must
        be inverted but is singular (too few volumes with ``shrinkage='none'``).

    Examples
    --------
    Without shrinkage, the correlation is Pearson's (``np.corrcoef``):

    >>> signals = [[1.0, 2.0], [2.0, 1.0], [3.0, 3.5]]
    >>> connectivity_matrix(signals, shrinkage="none").round(3)
    array([[1.   , 0.596],
           [0.596, 1.   ]])
    """
    check_options(kind, shrinkage, fisher_z)
    signals = np.asarray(signals, dtype=np.float64)
    if signals.ndim != 2:
        raise ValueError(f"signals has shape {signals.shape}; expected a 2D array "
                         "(n_volumes, n_regions)")
    check_volumes(signals.shape[0], signals.shape[1], kind, shrinkage)
    if kind == "correlation":
        matrix = cov_to_corr(estimate_covariance(standardize_signals(signals), shrinkage))
    else:
        covariance = estimate_covariance(signals, shrinkage)
        if kind == "covariance":
            matrix = covariance
        else:
            precision = _inverse(covariance, shrinkage, signals.shape[0])
            matrix = precision if kind == "precision" else prec_to_partial(precision)
    if fisher_z:
        matrix = fisher_z_transform(matrix)
    if discard_diagonal:
        np.fill_diagonal(matrix, np.nan)
    return matrix


def fisher_z_transform(correlation: NDArray[np.float64]) -> NDArray[np.float64]:
    """``arctanh`` of a correlation matrix, diagonal NaN (``arctanh(1)`` is infinite)."""
    with np.errstate(divide="ignore"):
        transformed = np.arctanh(correlation)
    np.fill_diagonal(transformed, np.nan)
    return transformed


class ValidSignals(NamedTuple):
    """The finite part of a time series table (see :func:`valid_signals`)."""

    signals: NDArray[np.float64]
    regions: NDArray[np.bool_]
    n_censored: int


def valid_signals(signals: ArrayLike, names: list[str] | None = None, *,
                  name: str = "signals") -> ValidSignals:  # fmt: skip
    """Drop the ``n/a`` regions (all-NaN columns) and censored volumes (all-NaN rows).

    Parameters
    ----------
    signals : array-like, shape (n_volumes, n_regions)
        A time series table read with NaN for ``n/a``.
    names : list of str, optional
        The regions' names, for error messages.
    name : str
        What ``signals`` is, at the start of error messages (e.g. ``"in_file '<path>'"``).

    Returns
    -------
    ValidSignals
        ``signals`` (kept volumes x kept regions), ``regions`` (a boolean mask of the kept
        regions) and ``n_censored`` (the number of all-NaN rows dropped).

    Raises
    ------
    ValueError
        Every region is ``n/a``, no volume is left, or a NaN sits in a kept volume of a kept
        region (an ``n/a`` region is ``n/a`` in every volume).
    """
    signals = np.asarray(signals, dtype=np.float64)
    if signals.ndim != 2:
        raise ValueError(f"{name}: shape {signals.shape}; expected (n_volumes, n_regions)")
    missing = np.isnan(signals)
    censored = missing.all(axis=1)
    if censored.all():
        raise ValueError(f"{name}: every region is n/a (or no volume); expected at least one "
                         "region with a signal")
    kept = signals[~censored]
    regions = ~np.isnan(kept).all(axis=0)
    kept = kept[:, regions]
    holes = ~np.isfinite(kept)
    if holes.any():
        row, column = np.argwhere(holes)[0]
        region = np.flatnonzero(regions)[column]
        label = names[region] if names is not None else str(region)
        raise ValueError(
            f"{name}: region {label!r} has a missing or infinite value in kept volume {row} "
            f"({int(holes.sum())} such value(s)); expected finite values, n/a only for whole "
            "regions (emptied by the mask) or whole volumes (censored)"
        )
    return ValidSignals(kept, regions, int(censored.sum()))


def embed(matrix: NDArray[np.float64], regions: NDArray[np.bool_]) -> NDArray[np.float64]:
    """A matrix over the kept ``regions`` put back in the full square, NaN elsewhere."""
    full = np.full((regions.size, regions.size), np.nan)
    full[np.ix_(regions, regions)] = matrix
    return full


class RunMatrix(NamedTuple):
    """One run's matrix over all its regions (see :func:`run_connectivity`)."""

    matrix: NDArray[np.float64]
    n_volumes: int
    n_censored: int
    missing_regions: list[str]


def run_connectivity(signals: ArrayLike, names: list[str], *, kind: Kind = "correlation",
                     shrinkage: Shrinkage = "ledoit_wolf", fisher_z: bool = False,
                     discard_diagonal: bool = False, name: str = "signals") -> RunMatrix:
    """:func:`connectivity_matrix` of a time series table with ``n/a`` regions and volumes.

    The matrix is computed over the regions with a signal and the volumes not censored (rows
    all ``n/a``); the ``n/a`` regions are NaN rows and columns of the result.

    Returns
    -------
    RunMatrix
        ``matrix`` (n_regions, n_regions), ``n_volumes`` used, ``n_censored`` (all-``n/a``
        rows dropped) and ``missing_regions`` (names of the ``n/a`` regions).
    """
    check_options(kind, shrinkage, fisher_z)
    valid = valid_signals(signals, names, name=name)
    try:
        matrix = connectivity_matrix(valid.signals, kind=kind, shrinkage=shrinkage,
                                     fisher_z=fisher_z, discard_diagonal=discard_diagonal)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None
    missing = [n for n, kept in zip(names, valid.regions, strict=True) if not kept]
    return RunMatrix(embed(matrix, valid.regions), valid.signals.shape[0], valid.n_censored,
                     missing)
