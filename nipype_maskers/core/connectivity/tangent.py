"""The group level: tangent-space matrices (nilearn's ``kind='tangent'``) and group means.

nilearn's ``ConnectivityMeasure(kind='tangent').fit_transform(signals)`` (0.14.1):

1. each subject's covariance (Ledoit-Wolf by default, on the signals as they are: no
   standardization for this kind);
2. their geometric mean (``_geometric_mean(covariances, max_iter=30, tol=1e-7)``: Fletcher's
   gradient descent from the arithmetic mean, the step halved when the gradient's norm grows,
   stopped when that norm over ``n_regions**2`` falls below ``tol``);
3. each subject's tangent matrix ``logm(W @ C @ W)`` with ``W = mean**-1/2``, in input order.

:func:`geometric_mean` runs the same iteration with the same stopping rule, so it stops where
nilearn stops (about 1e-5 from the converged mean, the same result to rounding), not at the
converged mean; ``tol`` and ``max_iter`` go further. It differs in how, not in what: the
subjects are whitened one at a time (nilearn keeps the whitened matrices and their
logarithms of every subject, two more copies of the stack), LAPACK's divide-and-conquer
``syevd`` replaces ``syevr`` (about twice as fast for a full eigendecomposition), positive
definiteness is checked once by a Cholesky factorization (nilearn runs an eigendecomposition
of every matrix), and :func:`tangent_vectors` can overwrite the covariances in place. Peak
memory: the stack of covariances plus a few single matrices.

For the other kinds, the group mean is nilearn's ``mean_``: the mean of the subjects'
matrices, symmetrized (``(M + M.T) / 2``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .covariance import estimate_covariance
from .measures import (
    KINDS,
    check_options,
    check_volumes,
    connectivity_matrix,
    valid_signals,
)

__all__ = ["GROUP_KINDS", "CommonSignals", "GroupMatrices", "common_signals", "geometric_mean",
           "group_connectivity", "tangent_vectors"]

#: The kinds of group matrices: nilearn's single-run kinds and 'tangent'.
GROUP_KINDS = ("tangent", *KINDS)


def _symmetric_function(eigenvalues: NDArray, eigenvectors: NDArray) -> NDArray[np.float64]:
    """``V @ diag(f(w)) @ V.T`` for ``f(w)`` already applied (nilearn's ``_form_symmetric``)."""
    return (eigenvectors * eigenvalues) @ eigenvectors.T


def _logm(symmetric: NDArray[np.float64]) -> NDArray[np.float64]:
    """The matrix logarithm of a symmetric positive definite matrix."""
    values, vectors = np.linalg.eigh(symmetric)
    return _symmetric_function(np.log(values), vectors)


def check_positive_definite(matrices: NDArray[np.float64], *, names: Sequence[str] | None = None
                            ) -> None:  # fmt: skip
    """One clear ValueError naming the first matrix that is not symmetric positive definite."""
    for index, matrix in enumerate(matrices):
        label = names[index] if names is not None else f"matrix {index}"
        if not np.allclose(matrix, matrix.T, rtol=0, atol=1e-7 * np.abs(matrix).max()):
            raise ValueError(f"{label}: the covariance is not symmetric; expected symmetric "
                             "positive definite matrices")
        try:
            np.linalg.cholesky(matrix)
        except np.linalg.LinAlgError:
            raise ValueError(
                f"{label}: the covariance is not positive definite (too few volumes for an "
                "unshrunk covariance, or duplicated/constant regions); expected symmetric "
                "positive definite matrices: use shrinkage='ledoit_wolf'"
            ) from None


def geometric_mean(matrices: ArrayLike, *, max_iter: int = 30, tol: float = 1e-7,
                   names: Sequence[str] | None = None) -> NDArray[np.float64]:  # fmt: skip
    """The geometric (log-Euclidean Riemannian) mean of symmetric positive definite matrices.

    The minimizer of ``sum_k ||logm(X**-1/2 @ M_k @ X**-1/2)||**2``, by nilearn's gradient
    descent with nilearn's stopping rule (see the module docstring): the defaults are those
    ``ConnectivityMeasure(kind='tangent')`` uses, and give its numbers.

    Parameters
    ----------
    matrices : array-like, shape (n_matrices, n, n)
        Symmetric positive definite matrices (not modified).
    max_iter : int
        The most gradient steps.
    tol : float
        Stop when the gradient's Frobenius norm over ``n**2`` is below this.
    names : sequence of str, optional
        A name per matrix, for error messages.

    Returns
    -------
    ndarray, shape (n, n)

    Raises
    ------
    ValueError
        A matrix that is not symmetric positive definite, or not a stack of square matrices.

    Warns
    -----
    RuntimeWarning
        ``max_iter`` steps without reaching ``tol`` (as nilearn).

    Examples
    --------
    The geometric mean of positive numbers, as 1x1 matrices:

    >>> geometric_mean([[[1.0]], [[4.0]]]).round(6)
    array([[2.]])
    """
    matrices = np.asarray(matrices, dtype=np.float64)
    if matrices.ndim != 3 or matrices.shape[1] != matrices.shape[2] or not len(matrices):
        raise ValueError(f"matrices has shape {matrices.shape}; expected a stack of square "
                         "matrices (n_matrices, n, n)")
    check_positive_definite(matrices, names=names)
    mean = matrices.mean(axis=0)
    norm_old = np.inf
    step = 1.0
    norm = np.inf
    logs_mean = np.empty_like(mean)
    for _ in range(max_iter):
        values, vectors = np.linalg.eigh(mean)
        inverse_sqrt = _symmetric_function(1.0 / np.sqrt(values), vectors)
        logs_mean.fill(0.0)
        for matrix in matrices:  # one subject at a time: no stack of whitened matrices
            logs_mean += _logm(inverse_sqrt @ matrix @ inverse_sqrt)
        logs_mean /= len(matrices)
        if np.isnan(logs_mean).any():
            raise FloatingPointError("NaN after the matrix logarithm in the geometric mean")
        norm = np.linalg.norm(logs_mean)
        log_values, log_vectors = np.linalg.eigh(logs_mean)
        mean_sqrt = _symmetric_function(np.sqrt(values), vectors)
        mean = mean_sqrt @ _symmetric_function(np.exp(log_values * step), log_vectors) @ mean_sqrt
        # nilearn's step rule, kept as it is so the iteration stops where nilearn's does
        if norm < norm_old:
            norm_old = norm
        elif norm > norm_old:
            step /= 2.0
            norm = norm_old
        if norm / mean.size < tol:
            break
    if norm / mean.size >= tol:
        warnings.warn(f"the geometric mean did not reach tol={tol} in max_iter={max_iter} "
                      "steps", RuntimeWarning, stacklevel=2)
    return mean


def tangent_vectors(matrices: NDArray[np.float64], mean: NDArray[np.float64], *,
                    out: NDArray[np.float64] | None = None) -> NDArray[np.float64]:  # fmt: skip
    """Each matrix in the tangent space at ``mean``: ``logm(W @ M @ W)``, ``W = mean**-1/2``.

    Parameters
    ----------
    matrices : ndarray, shape (n_matrices, n, n)
        Symmetric positive definite matrices (the subjects' covariances).
    mean : ndarray, shape (n, n)
        The reference point (their :func:`geometric_mean`).
    out : ndarray, optional
        Where to write the result; ``out=matrices`` overwrites the covariances (no second
        stack in memory).

    Returns
    -------
    ndarray, shape (n_matrices, n, n)
    """
    values, vectors = np.linalg.eigh(mean)
    whitening = _symmetric_function(1.0 / np.sqrt(values), vectors)
    if out is None:
        out = np.empty_like(matrices, dtype=np.float64)
    for index, matrix in enumerate(matrices):
        out[index] = _logm(whitening @ matrix @ whitening)
    return out


class GroupMatrices(NamedTuple):
    """A group's matrices (see :func:`group_connectivity`).

    Attributes
    ----------
    mean : ndarray, shape (n_regions, n_regions)
        The geometric mean of the covariances for 'tangent', else the mean matrix.
    subjects : ndarray, shape (n_subjects, n_regions, n_regions), or None
        Each subject's tangent matrix, in input order ('tangent' only).
    """

    mean: NDArray[np.float64]
    subjects: NDArray[np.float64] | None


def group_connectivity(signals: Sequence[NDArray[np.float64]], *,
                       kind: Literal["tangent", "correlation", "partial correlation",
                                     "covariance", "precision"] = "tangent",
                       shrinkage: Literal["ledoit_wolf", "none"] = "ledoit_wolf",
                       fisher_z: bool = False, names: Sequence[str] | None = None
                       ) -> GroupMatrices:  # fmt: skip
    """The group's tangent matrices and geometric mean, or the mean of another kind.

    Parameters
    ----------
    signals : sequence of ndarray, each (n_volumes_k, n_regions)
        Each subject's finite signals over the same regions (volumes may differ; see
        :func:`common_signals`).
    kind : {'tangent', 'correlation', 'partial correlation', 'covariance', 'precision'}
    shrinkage : {'ledoit_wolf', 'none'}
    fisher_z : bool
        For the correlation kinds: the mean of the subjects' Fisher z matrices (the usual
        way to average correlations; nilearn has no such option).
    names : sequence of str, optional
        A name per subject, for error messages.

    Returns
    -------
    GroupMatrices

    Raises
    ------
    ValueError
        Fewer than two subjects for 'tangent' (as nilearn), subjects with different numbers of
        regions, or a covariance that must be inverted but cannot be.
    """
    check_options(kind, shrinkage, fisher_z, kinds=GROUP_KINDS)
    if not len(signals):
        raise ValueError("signals: no subject; expected at least one")
    if kind == "tangent" and len(signals) < 2:
        raise ValueError(f"kind 'tangent' needs at least two subjects (tangent matrices are "
                         f"deviations from the group mean), got {len(signals)}")
    labels = list(names) if names is not None else [f"subject {i}" for i in range(len(signals))]
    n_regions = signals[0].shape[1]
    for label, subject in zip(labels, signals, strict=True):
        if subject.ndim != 2 or subject.shape[1] != n_regions:
            raise ValueError(f"{label}: signals of shape {subject.shape}; expected "
                             f"(n_volumes, {n_regions}) as the first subject")
        try:
            check_volumes(subject.shape[0], n_regions, kind, shrinkage)
        except ValueError as error:
            raise ValueError(f"{label}: {error}") from None
    if kind == "tangent":
        stack = np.empty((len(signals), n_regions, n_regions))
        for index, subject in enumerate(signals):
            stack[index] = estimate_covariance(subject, shrinkage)
        mean = geometric_mean(stack, names=labels)
        return GroupMatrices(mean, tangent_vectors(stack, mean, out=stack))
    total = np.zeros((n_regions, n_regions))
    for label, subject in zip(labels, signals, strict=True):
        try:
            total += connectivity_matrix(subject, kind=kind, shrinkage=shrinkage,
                                         fisher_z=fisher_z)
        except ValueError as error:
            raise ValueError(f"{label}: {error}") from None
    total /= len(signals)
    return GroupMatrices((total + total.T) / 2.0, None)


class CommonSignals(NamedTuple):
    """Each subject's signals over the regions all subjects have (:func:`common_signals`)."""

    signals: list[NDArray[np.float64]]
    regions: NDArray[np.bool_]
    missing: dict[str, list[str]]
    n_censored: list[int]


def common_signals(tables: Sequence[ArrayLike], region_names: Sequence[str],
                   labels: Sequence[str]) -> CommonSignals:  # fmt: skip
    """Keep the volumes each subject kept and the regions with a signal in every subject.

    A region ``n/a`` in any subject (emptied by that subject's mask) is left out of the whole
    group: the tangent space and the mean need every subject on the same regions. Leaving a
    region out changes the other regions' values a little where the estimator pools regions
    (the Ledoit-Wolf shrinkage and the inverse covariance): the group matrices are exactly
    nilearn's on the kept regions.

    Parameters
    ----------
    tables : sequence of array-like, each (n_volumes_k, n_regions)
        The subjects' time series tables, NaN for ``n/a`` (all-NaN rows: censored volumes).
    region_names : sequence of str
        The regions (the tables' shared columns).
    labels : sequence of str
        A name per subject (its file), for messages.

    Returns
    -------
    CommonSignals
        ``signals`` (each subject's kept volumes x kept regions), ``regions`` (mask of the kept
        regions), ``missing`` (each left-out region's name -> the subjects where it is
        ``n/a``) and ``n_censored`` (all-``n/a`` rows dropped per subject).

    Raises
    ------
    ValueError
        A subject whose regions are all ``n/a``, a NaN inside a kept region, or no region
        with a signal in every subject.
    """
    valid = [valid_signals(table, list(region_names), name=label)
             for table, label in zip(tables, labels, strict=True)]
    regions = np.logical_and.reduce([v.regions for v in valid])
    if not regions.any():
        raise ValueError(f"{', '.join(labels[:3])}...: no region has a signal in every subject; "
                         "expected at least one region shared by all subjects")
    signals = [v.signals[:, regions[v.regions]] for v in valid]
    missing = {
        name: [label for label, v in zip(labels, valid, strict=True) if not v.regions[i]]
        for i, name in enumerate(region_names) if not regions[i]
    }
    return CommonSignals(signals, regions, missing, [v.n_censored for v in valid])
