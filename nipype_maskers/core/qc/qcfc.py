"""Group QC-FC: how much each edge's connectivity follows subject motion, and its distance
dependence.

For each edge (pair of regions, upper triangle), QC-FC is Pearson's r across subjects between
the edge's connectivity and the subjects' mean framewise displacement (Power 2012; Ciric et
al. 2017, NeuroImage 154:174; Parkes et al. 2018, NeuroImage 171:415). The summaries follow
fMRIDenoise (Finc et al. 2020) and Parkes 2018:

- ``median_abs_qcfc``: the median of ``|r|`` over the edges (Parkes 2018's "absolute
  median"; fMRIDenoise reports the median of r itself, which positive and negative edges
  cancel out);
- ``percent_significant``: the percentage of edges whose r has an uncorrected two-sided
  ``p < 0.05``; ``percent_significant_fdr``: the same after Benjamini-Hochberg correction
  over the edges (``q < 0.05``);
- ``distance_dependence``: Pearson's r across edges between QC-FC and the Euclidean distance
  between the two regions' centroids (fMRIDenoise); ``distance_dependence_spearman``:
  Spearman's rho (Ciric 2017, Parkes 2018). Motion inflates short-range connectivity, so a
  negative value is the motion signature that denoising should remove.

An edge that is ``n/a`` in any subject (a region emptied by a mask) or constant across
subjects has no QC-FC: it is left out of every figure and counted (``n_edges_excluded``).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
from nibabel.spatialimages import SpatialImage
from numpy.typing import ArrayLike, NDArray

from ..io.images import load_img
from .stats import fdr_bh, pearson_columns, pearson_p, pearson_r, rankdata

__all__ = ["QCFC_FIGURES", "QCFCResult", "labels_img_centroids", "pairwise_distances", "qcfc",
           "region_centroids"]

#: The group figures, in column order, with their description and unit (BIDS sidecar).
QCFC_FIGURES: dict[str, tuple[str, str | None]] = {
    "n_subjects": ("Subjects (connectivity matrices) in the QC-FC.", None),
    "n_edges": ("Edges: pairs of distinct regions (upper triangle of the matrix).", None),
    "n_edges_excluded": ("Edges without QC-FC: n/a in a subject's matrix, or constant across "
                         "subjects. They are left out of every figure below.", None),
    "median_abs_qcfc": ("Median over edges of |QC-FC|, the absolute Pearson correlation "
                        "across subjects between the edge's connectivity and mean "
                        "framewise displacement (Parkes et al. 2018).", None),
    "percent_significant": ("Percentage of edges whose QC-FC has an uncorrected two-sided "
                            "p < 0.05.", "%"),
    "percent_significant_fdr": ("Percentage of edges whose QC-FC is significant at a false "
                                "discovery rate of 0.05 (Benjamini-Hochberg over edges).",
                                "%"),
    "distance_dependence": ("Pearson correlation across edges between QC-FC and the "
                            "Euclidean distance between the regions' centroids "
                            "(fMRIDenoise); n/a without centroids.", None),
    "distance_dependence_p": ("Two-sided p-value of distance_dependence.", None),
    "distance_dependence_spearman": ("Spearman correlation across edges between QC-FC and "
                                     "inter-region distance (Ciric et al. 2017, Parkes et "
                                     "al. 2018); n/a without centroids.", None),
    "distance_dependence_spearman_p": ("Two-sided p-value of distance_dependence_spearman "
                                       "(t approximation, as scipy.stats.spearmanr).", None),
}

#: The per-edge table's columns (besides the two region names).
EDGE_FIGURES: dict[str, tuple[str, str | None]] = {
    "qcfc": ("Pearson correlation across subjects between the edge's connectivity and mean "
             "framewise displacement; n/a for an excluded edge.", None),
    "p": ("Uncorrected two-sided p-value of qcfc.", None),
    "p_fdr": ("Benjamini-Hochberg adjusted p-value (q-value) of qcfc over the edges.", None),
    "distance": ("Euclidean distance between the two regions' centroids; n/a without "
                 "centroids.", "mm"),
}


class QCFCResult(NamedTuple):
    """QC-FC per edge and its summaries.

    Attributes
    ----------
    rows, cols : ndarray of int, shape (n_edges,)
        The edges' region indices (upper triangle, row-major: ``numpy.triu_indices(n, 1)``).
    r, p, p_fdr : ndarray of float64, shape (n_edges,)
        QC-FC, its p-value and its Benjamini-Hochberg q-value; NaN for excluded edges.
    distance : ndarray of float64, shape (n_edges,)
        Inter-centroid distance (NaN without centroids).
    summary : dict
        :data:`QCFC_FIGURES` name to value (NaN when not computable).
    """

    rows: NDArray[np.intp]
    cols: NDArray[np.intp]
    r: NDArray[np.float64]
    p: NDArray[np.float64]
    p_fdr: NDArray[np.float64]
    distance: NDArray[np.float64]
    summary: dict[str, float | int]


def qcfc(matrices: ArrayLike, mean_fd: ArrayLike, *, distances: ArrayLike | None = None,
         alpha: float = 0.05) -> QCFCResult:
    """QC-FC per edge, and the summaries of :data:`QCFC_FIGURES`.

    Parameters
    ----------
    matrices : array-like, shape (n_subjects, n_regions, n_regions)
        One connectivity matrix per subject, same regions in the same order; NaN for ``n/a``.
        Only the upper triangle is read.
    mean_fd : array-like, shape (n_subjects,)
        Each subject's mean framewise displacement, in the order of ``matrices``.
    distances : array-like, shape (n_regions, n_regions), optional
        Inter-region distances (:func:`pairwise_distances`), for the distance dependence.
    alpha : float
        Significance level, uncorrected and FDR.

    Raises
    ------
    ValueError
        Fewer than 3 subjects, shapes that disagree, a non-finite or constant mean FD, or a
        subject whose matrix is entirely n/a.
    """
    matrices = np.asarray(matrices, dtype=np.float64)
    mean_fd = np.asarray(mean_fd, dtype=np.float64).ravel()
    if matrices.ndim != 3 or matrices.shape[1] != matrices.shape[2]:
        raise ValueError(f"matrices of shape {matrices.shape}; expected (n_subjects, "
                         "n_regions, n_regions): one square matrix per subject")
    n_subjects, n_regions = matrices.shape[:2]
    if n_subjects < 3:
        raise ValueError(f"QC-FC needs at least 3 subjects (a correlation across subjects "
                         f"with a p-value), got {n_subjects}")
    if mean_fd.size != n_subjects:
        raise ValueError(f"mean_fd has {mean_fd.size} values for {n_subjects} matrices; "
                         "expected one per subject, in the same order")
    if not np.isfinite(mean_fd).all():
        raise ValueError(f"mean_fd: non-finite values {mean_fd.tolist()}; expected numbers")
    if np.ptp(mean_fd) == 0:
        raise ValueError(f"mean_fd: every subject has {mean_fd[0]}; QC-FC (a correlation "
                         "with mean FD) needs subjects that differ")
    rows, cols = np.triu_indices(n_regions, 1)
    edges = matrices[:, rows, cols]  # (n_subjects, n_edges)
    empty = [i for i in range(n_subjects) if np.isnan(edges[i]).all()]
    if empty and edges.shape[1]:
        raise ValueError(f"subjects {empty} (0-based, in input order): every edge is n/a; "
                         "expected a matrix with at least one value")
    r = np.full(edges.shape[1], np.nan)
    usable = ~np.isnan(edges).any(axis=0)
    r[usable] = pearson_columns(mean_fd, edges[:, usable])
    included = np.isfinite(r)
    p = np.full_like(r, np.nan)
    p_fdr = np.full_like(r, np.nan)
    p[included] = pearson_p(r[included], n_subjects)
    p_fdr[included] = fdr_bh(p[included])
    distance = (np.full_like(r, np.nan) if distances is None
                else _edge_distances(distances, n_regions, rows, cols))  # fmt: skip

    n_included = int(included.sum())
    nan = float("nan")
    summary: dict[str, float | int] = {
        "n_subjects": n_subjects,
        "n_edges": int(r.size),
        "n_edges_excluded": int(r.size - n_included),
        "median_abs_qcfc": float(np.median(np.abs(r[included]))) if n_included else nan,
        "percent_significant": (100.0 * np.count_nonzero(p[included] < alpha) / n_included
                                if n_included else nan),
        "percent_significant_fdr": (100.0 * np.count_nonzero(p_fdr[included] < alpha)
                                    / n_included if n_included else nan),
    }
    summary.update(_distance_dependence(r, distance))
    return QCFCResult(rows, cols, r, p, p_fdr, distance, summary)


def _edge_distances(distances: ArrayLike, n_regions: int, rows: NDArray, cols: NDArray
                    ) -> NDArray[np.float64]:  # fmt: skip
    distances = np.asarray(distances, dtype=np.float64)
    if distances.shape != (n_regions, n_regions):
        raise ValueError(f"distances of shape {distances.shape}; expected ({n_regions}, "
                         f"{n_regions}), one row and column per region of the matrices")
    return distances[rows, cols]


def _distance_dependence(r: NDArray, distance: NDArray) -> dict[str, float]:
    """Pearson and Spearman correlations of QC-FC with distance, over edges with both."""
    both = np.isfinite(r) & np.isfinite(distance)
    n = int(both.sum())
    if n < 3:
        return dict.fromkeys(("distance_dependence", "distance_dependence_p",
                              "distance_dependence_spearman",
                              "distance_dependence_spearman_p"), float("nan"))
    pearson = pearson_r(r[both], distance[both])
    spearman = pearson_r(rankdata(r[both]), rankdata(distance[both]))
    return {
        "distance_dependence": pearson,
        "distance_dependence_p": float(pearson_p(pearson, n)),
        "distance_dependence_spearman": spearman,
        "distance_dependence_spearman_p": float(pearson_p(spearman, n)),
    }


def pairwise_distances(centroids: ArrayLike) -> NDArray[np.float64]:
    """Euclidean distances between points, shape ``(n, n)`` (NaN rows for NaN points).

    Examples
    --------
    >>> pairwise_distances([[0, 0, 0], [3, 4, 0]]).tolist()
    [[0.0, 5.0], [5.0, 0.0]]
    """
    centroids = np.asarray(centroids, dtype=np.float64)
    if centroids.ndim != 2 or centroids.shape[1] != 3:
        raise ValueError(f"centroids of shape {centroids.shape}; expected (n_regions, 3): "
                         "x, y, z per region")
    difference = centroids[:, None, :] - centroids[None, :, :]
    return np.sqrt(np.einsum("ijk,ijk->ij", difference, difference))


def region_centroids(labels: ArrayLike, affine: ArrayLike, *,
                     background: int = 0) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Each label's centre of mass, in the image's world coordinates (mm).

    Parameters
    ----------
    labels : array-like of int, shape (i, j, k)
        A labels image's data (``np.asanyarray(img.dataobj)``).
    affine : array-like, shape (4, 4)
        Voxel to world (mm) affine.
    background : int
        The label left out.

    Returns
    -------
    values : ndarray of int64, shape (n_labels,)
        The labels, ascending.
    centroids : ndarray of float64, shape (n_labels, 3)
        The mean world coordinates of each label's voxels (a non-convex region's centre of
        mass may lie outside it; it is what the distance dependence uses).

    Examples
    --------
    >>> data = np.zeros((3, 1, 1), dtype=int); data[0] = 2; data[2] = 2
    >>> values, centroids = region_centroids(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    >>> values.tolist(), centroids.tolist()
    ([2], [[2.0, 0.0, 0.0]])
    """
    labels = np.asarray(labels)
    affine = np.asarray(affine, dtype=np.float64)
    if labels.ndim != 3:
        raise ValueError(f"labels of shape {labels.shape}; expected a 3D labels image")
    if affine.shape != (4, 4):
        raise ValueError(f"affine of shape {affine.shape}; expected (4, 4)")
    if labels.dtype.kind == "f":
        if not np.array_equal(labels, np.round(labels)):
            raise ValueError("labels: non-integer values; expected a labels image (integers)")
    elif labels.dtype.kind not in "iub":
        raise ValueError(f"labels of dtype {labels.dtype}; expected integers")
    flat = labels.reshape(-1).astype(np.int64)
    foreground = np.flatnonzero(flat != background)
    values, inverse = np.unique(flat[foreground], return_inverse=True)
    voxels = np.stack(np.unravel_index(foreground, labels.shape), axis=1).astype(np.float64)
    counts = np.bincount(inverse, minlength=values.size).astype(np.float64)
    mean_voxel = np.stack([np.bincount(inverse, weights=voxels[:, axis],
                                       minlength=values.size) / counts
                           for axis in range(3)], axis=1)
    centroids = mean_voxel @ affine[:3, :3].T + affine[:3, 3]
    return values, centroids


def labels_img_centroids(labels_img: str | os.PathLike | SpatialImage, *, background: int = 0
                         ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:  # fmt: skip
    """:func:`region_centroids` of a labels image (a path or a loaded 3D image), in mm."""
    img = load_img(labels_img, name="labels_img", ndim=3)
    data = np.asanyarray(img.dataobj)
    return region_centroids(data.reshape(data.shape[:3]), img.affine, background=background)
