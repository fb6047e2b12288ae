"""Core QC figures (core/qc): hand-computed small cases, and scipy.stats as the reference.

References and tolerances:

- Pearson's r and its p-value vs ``scipy.stats.pearsonr``, Spearman's rho vs
  ``scipy.stats.spearmanr``, ranks vs ``scipy.stats.rankdata``: ``rtol=1e-10``.
- Benjamini-Hochberg: by hand on a small case, and against its definition
  (``q_i = min over k >= rank_i of p_(k) m / k``) on random p-values.
- The cosine filter's degrees of freedom vs the number of cosine drift regressors of
  ``nilearn.signal.create_cosine_drift`` (its constant column left out).
- Centroids vs ``scipy.ndimage.center_of_mass`` through the affine.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, stats

from nipype_maskers.core.qc.denoising import (
    denoising_qc,
    dvars,
    filter_dof_lost,
    kept_volumes,
)
from nipype_maskers.core.qc.qcfc import pairwise_distances, qcfc, region_centroids
from nipype_maskers.core.qc.stats import (
    fdr_bh,
    pearson_columns,
    pearson_p,
    rankdata,
    spearman_r,
)

# --------------------------------------------------------------------------------------------
# statistics


@pytest.mark.parametrize("n", [3, 4, 11, 60])
def test_pearson_r_and_p_match_scipy(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    columns = rng.normal(size=(n, 7))
    columns[:, 3] = 2.0 * x + 1.0  # r = 1, p = 0
    r = pearson_columns(x, columns)
    p = pearson_p(r, n)
    for j in range(columns.shape[1]):
        reference = stats.pearsonr(x, columns[:, j])
        np.testing.assert_allclose(r[j], reference.statistic, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(p[j], reference.pvalue, rtol=1e-10, atol=1e-14)


def test_pearson_of_a_constant_is_nan():
    # rounding residue after centering must not give a spurious r
    r = pearson_columns([0.1, 0.2, 0.7], [[0.1, 1.0], [0.1, 2.0], [0.1, 4.0]])
    assert np.isnan(r[0]) and np.isfinite(r[1])
    assert np.isnan(pearson_columns([1.0, 1.0, 1.0], [[1.0], [2.0], [3.0]])[0])


def test_pearson_p_needs_three_samples():
    with pytest.raises(ValueError, match="at least 3 samples"):
        pearson_p(0.5, 2)


def test_ranks_and_spearman_match_scipy():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 6, size=40).astype(float)  # many ties
    y = x + rng.normal(size=40)
    np.testing.assert_array_equal(rankdata(x), stats.rankdata(x))
    np.testing.assert_allclose(spearman_r(x, y), stats.spearmanr(x, y).statistic, rtol=1e-10)


def test_fdr_bh_by_hand():
    # sorted: 0.01 0.03 0.04 0.5 -> p*m/k: 0.04 0.06 0.0533 0.5 -> running min from the end
    q = fdr_bh([0.01, 0.04, 0.03, 0.5])
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.5], rtol=1e-12)
    assert fdr_bh([]).size == 0
    assert fdr_bh([0.9, 0.95]).tolist() == [0.95, 0.95]


def test_fdr_bh_matches_its_definition():
    rng = np.random.default_rng(2)
    p = np.r_[rng.uniform(size=50), rng.uniform(0, 0.01, size=10)]
    ascending = np.sort(p)
    m = p.size
    rank = np.argsort(np.argsort(p, kind="mergesort"), kind="mergesort")  # 0-based ranks
    expected = [min(1.0, min(ascending[k] * m / (k + 1) for k in range(i, m))) for i in rank]
    np.testing.assert_allclose(fdr_bh(p), expected, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# per-run figures


def test_dvars_by_hand():
    signals = np.array([[0.0, 1.0, np.nan], [3.0, 5.0, np.nan], [3.0, 5.0, np.nan],
                        [4.0, 5.0, np.nan]])  # fmt: skip
    # the all-n/a column is left out: RMS of (3, 4) is sqrt(12.5); then 0; then sqrt(0.5)
    np.testing.assert_allclose(dvars(signals), [np.nan, np.sqrt(12.5), 0.0, np.sqrt(0.5)])
    # rows of volumes 0, 1, 3, 4: no derivative across the gap at volume 2
    np.testing.assert_allclose(dvars(signals, volumes=[0, 1, 3, 4], n_volumes=6),
                               [np.nan, np.sqrt(12.5), np.nan, np.nan, np.sqrt(0.5), np.nan])
    with_nan_row = signals[:, :2].copy()
    with_nan_row[1] = np.nan  # a censored volume kept as n/a: it and the next have none
    np.testing.assert_allclose(dvars(with_nan_row), [np.nan, np.nan, np.nan, np.sqrt(0.5)])


def test_filter_dof_by_hand():
    # f_N = 0.25 Hz; [0.01, 0.1] keeps 0.09 / 0.25 of the spectrum: 200 * 0.64 removed
    assert filter_dof_lost(200, 2.0, high_pass=0.01, low_pass=0.1) == 128.0
    assert filter_dof_lost(100, 1.0, low_pass=0.25) == 50.0  # f_N = 0.5: half removed
    assert filter_dof_lost(100, 1.0, low_pass=0.8) == 0.0  # above Nyquist: nothing
    with pytest.raises(ValueError, match="non-empty band"):
        filter_dof_lost(100, 2.0, high_pass=0.1, low_pass=0.05)
    with pytest.raises(ValueError, match="t_r"):
        filter_dof_lost(100, 0.0, high_pass=0.01)


@pytest.mark.parametrize(("n", "t_r", "high_pass"), [(200, 2.0, 0.01), (100, 0.8, 0.0125),
                                                     (150, 2.0, 0.005)])
def test_cosine_filter_dof_is_nilearns_cosine_count(n, t_r, high_pass):
    from nilearn.signal import create_cosine_drift

    drifts = create_cosine_drift(high_pass, np.arange(n) * t_r)
    assert filter_dof_lost(n, t_r, high_pass=high_pass) == drifts.shape[1] - 1  # no constant


def test_kept_volumes():
    assert kept_volumes(4).tolist() == [0, 1, 2, 3]
    assert kept_volumes(6, sample_mask=[5, 1, 2]).tolist() == [1, 2, 5]
    assert kept_volumes(6, censored_volumes=[0, 4]).tolist() == [1, 2, 3, 5]
    with pytest.raises(ValueError, match=r"outside \[0, 3\]"):
        kept_volumes(4, sample_mask=[1, 4])
    with pytest.raises(ValueError, match="repeated"):
        kept_volumes(4, censored_volumes=[1, 1])
    with pytest.raises(ValueError, match="not both"):
        kept_volumes(4, sample_mask=[1], censored_volumes=[0])


FD = np.array([np.nan, 0.1, 0.2, 0.9, 0.3, 0.4])
KEPT = np.array([0, 1, 2, 4, 5])  # volume 3 censored


def _signals():
    rng = np.random.default_rng(3)
    raw = rng.normal(size=(6, 3))
    clean = rng.normal(size=(6, 3))
    return raw, clean


def test_denoising_qc_by_hand():
    raw, clean = _signals()
    figures = denoising_qc(FD, t_r=2.0, kept=KEPT, n_regressors=6, high_pass=0.01,
                           low_pass=0.1, raw_signals=raw, clean_signals=clean[KEPT],
                           std_dvars_confounds=[np.nan, 1, 2, 3, 4, 5],
                           missing_regions={"Toy": ["7", "9"], "Other": []})
    assert figures["n_volumes"] == 6 and figures["n_volumes_kept"] == 5
    assert figures["n_volumes_censored"] == 1
    assert figures["percent_censored"] == pytest.approx(100 / 6)
    assert figures["mean_fd"] == pytest.approx(1.9 / 5)
    assert figures["max_fd"] == 0.9
    assert figures["mean_fd_kept"] == pytest.approx((0.1 + 0.2 + 0.3 + 0.4) / 4)
    assert figures["mean_std_dvars_confounds"] == 3.0
    assert np.isnan(figures["mean_dvars_confounds"])
    # DVARS before: volumes 1..5; after: pairs of consecutive kept volumes (1, 2, 5)
    before = np.sqrt(np.mean(np.diff(raw, axis=0) ** 2, axis=1))
    after = np.sqrt(np.mean(np.diff(clean, axis=0) ** 2, axis=1))[[0, 1, 4]]
    assert figures["mean_dvars_before"] == pytest.approx(before.mean())
    assert figures["mean_dvars_after"] == pytest.approx(after.mean())
    assert figures["fd_dvars_correlation_before"] == pytest.approx(
        stats.pearsonr(FD[1:], before).statistic)
    assert figures["fd_dvars_correlation_after"] == pytest.approx(
        stats.pearsonr(FD[[1, 2, 5]], after).statistic)
    # 5 kept volumes, 64% of the spectrum removed: 3.2; + 6 regressors + 1 censored
    assert figures["filter_dof"] == pytest.approx(3.2)
    assert figures["dof_lost"] == pytest.approx(10.2)
    assert figures["dof_remaining"] == pytest.approx(6 - 10.2)
    assert figures["remaining_duration"] == 10.0
    assert figures["n_missing_regions_Toy"] == 2 and figures["n_missing_regions_Other"] == 0


def test_denoising_qc_censored_rows_as_nan_give_the_same_figures():
    _, clean = _signals()
    dropped = denoising_qc(FD, t_r=2.0, kept=KEPT, clean_signals=clean[KEPT])
    as_nan = clean.copy()
    as_nan[3] = np.nan
    kept_as_nan = denoising_qc(FD, t_r=2.0, kept=KEPT, clean_signals=as_nan)
    # rows of every volume whose censored row is not n/a: the censored volume still drops out
    full_rows = denoising_qc(FD, t_r=2.0, kept=KEPT, clean_signals=clean)
    for key in ("mean_dvars_after", "fd_dvars_correlation_after"):
        assert kept_as_nan[key] == pytest.approx(dropped[key])
        assert full_rows[key] == pytest.approx(dropped[key])


def test_denoising_qc_without_signals_or_filter():
    figures = denoising_qc(FD, t_r=1.5, filter=None, high_pass=0.01)
    assert figures["filter_dof"] == 0.0 and figures["dof_lost"] == 0
    assert np.isnan(figures["mean_dvars_before"]) and np.isnan(figures["mean_dvars_after"])
    cosine = denoising_qc(FD, t_r=2.0, filter="cosine", high_pass=0.05, low_pass=0.1)
    assert cosine["filter_dof"] == pytest.approx(6 * 0.2)  # the low-pass is ignored


def test_denoising_qc_of_a_run_censored_entirely():
    figures = denoising_qc(FD, t_r=2.0, kept=[], high_pass=0.01,
                           clean_signals=np.empty((0, 3)))
    assert figures["n_volumes_kept"] == 0 and figures["percent_censored"] == 100.0
    assert figures["remaining_duration"] == 0.0 and figures["filter_dof"] == 0.0
    assert figures["dof_lost"] == 6
    assert np.isnan(figures["mean_fd_kept"]) and np.isnan(figures["mean_dvars_after"])


def test_denoising_qc_bad_input():
    raw, clean = _signals()
    with pytest.raises(ValueError, match="raw signals have 5 rows, the confounds 6"):
        denoising_qc(FD, t_r=2.0, raw_signals=raw[:5])
    with pytest.raises(ValueError, match="expected 5 .* or 6"):
        denoising_qc(FD, t_r=2.0, kept=KEPT, clean_signals=clean[:4])
    with pytest.raises(ValueError, match="n/a after the first row"):
        denoising_qc(np.array([np.nan, 0.1, np.nan, 0.2]), t_r=2.0)


# --------------------------------------------------------------------------------------------
# QC-FC


def _group(n_subjects=12, n_regions=6, seed=4):
    rng = np.random.default_rng(seed)
    mean_fd = rng.uniform(0.05, 0.5, size=n_subjects)
    matrices = rng.normal(size=(n_subjects, n_regions, n_regions))
    matrices[:, 0, 1] += 3.0 * mean_fd  # one edge that follows motion
    matrices = (matrices + matrices.transpose(0, 2, 1)) / 2
    centroids = rng.uniform(-60, 60, size=(n_regions, 3))
    return matrices, mean_fd, centroids


def test_qcfc_matches_scipy_edge_by_edge():
    matrices, mean_fd, centroids = _group()
    distances = pairwise_distances(centroids)
    result = qcfc(matrices, mean_fd, distances=distances)
    rows, cols = np.triu_indices(6, 1)
    assert result.rows.tolist() == rows.tolist() and result.cols.tolist() == cols.tolist()
    references = [stats.pearsonr(matrices[:, i, j], mean_fd)
                  for i, j in zip(rows, cols, strict=True)]
    r = np.array([ref.statistic for ref in references])
    p = np.array([ref.pvalue for ref in references])
    np.testing.assert_allclose(result.r, r, rtol=1e-10)
    np.testing.assert_allclose(result.p, p, rtol=1e-9)
    np.testing.assert_allclose(result.p_fdr, fdr_bh(p), rtol=1e-9)
    distance = np.linalg.norm(centroids[rows] - centroids[cols], axis=1)
    np.testing.assert_allclose(result.distance, distance, rtol=1e-12)
    summary = result.summary
    assert summary["n_subjects"] == 12 and summary["n_edges"] == 15
    assert summary["n_edges_excluded"] == 0
    assert summary["median_abs_qcfc"] == pytest.approx(np.median(np.abs(r)))
    assert summary["percent_significant"] == pytest.approx(100 * np.mean(p < 0.05))
    assert summary["percent_significant"] > 0  # the motion edge
    assert summary["percent_significant_fdr"] == pytest.approx(100 * np.mean(fdr_bh(p) < 0.05))
    pearson = stats.pearsonr(r, distance)
    spearman = stats.spearmanr(r, distance)
    assert summary["distance_dependence"] == pytest.approx(pearson.statistic)
    assert summary["distance_dependence_p"] == pytest.approx(pearson.pvalue)
    assert summary["distance_dependence_spearman"] == pytest.approx(spearman.statistic)
    assert summary["distance_dependence_spearman_p"] == pytest.approx(spearman.pvalue)


def test_qcfc_excludes_and_counts_na_and_constant_edges():
    matrices, mean_fd, _ = _group()
    matrices[3, 0, 2] = np.nan  # one subject's n/a edge
    matrices[:, 4, 5] = 0.25  # constant across subjects
    result = qcfc(matrices, mean_fd)
    excluded = {(0, 2), (4, 5)}
    for i, j, r, p in zip(result.rows, result.cols, result.r, result.p,
                          strict=True):
        assert np.isnan(r) == ((i, j) in excluded) == np.isnan(p)
    kept = np.isfinite(result.r)
    assert result.summary["n_edges_excluded"] == 2
    assert result.summary["median_abs_qcfc"] == pytest.approx(np.median(np.abs(result.r[kept])))
    np.testing.assert_allclose(result.p_fdr[kept], fdr_bh(result.p[kept]))
    assert np.isnan(result.summary["distance_dependence"])  # no centroids


def test_qcfc_bad_input():
    matrices, mean_fd, _ = _group()
    with pytest.raises(ValueError, match="at least 3 subjects"):
        qcfc(matrices[:2], mean_fd[:2])
    with pytest.raises(ValueError, match="11 values for 12 matrices"):
        qcfc(matrices, mean_fd[:11])
    with pytest.raises(ValueError, match="subjects that differ"):
        qcfc(matrices, np.full(12, 0.2))
    empty = matrices.copy()
    empty[5] = np.nan
    with pytest.raises(ValueError, match=r"subjects \[5\].*every edge is n/a"):
        qcfc(empty, mean_fd)
    with pytest.raises(ValueError, match=r"expected \(6, 6\)"):
        qcfc(matrices, mean_fd, distances=np.zeros((5, 5)))


def test_region_centroids_match_center_of_mass():
    rng = np.random.default_rng(5)
    labels = rng.choice([0, 3, 7, 12], size=(7, 8, 9))
    affine = np.array([[2.0, 0.1, 0.0, -90.0], [0.0, 2.5, 0.2, -126.0],
                       [0.1, 0.0, 3.0, -72.0], [0.0, 0.0, 0.0, 1.0]])
    values, centroids = region_centroids(labels, affine)
    assert values.tolist() == [3, 7, 12]
    for value, centroid in zip(values, centroids, strict=True):
        voxel = np.array(ndimage.center_of_mass(labels == value))
        np.testing.assert_allclose(centroid, affine[:3, :3] @ voxel + affine[:3, 3])
    with pytest.raises(ValueError, match="non-integer"):
        region_centroids(labels + 0.5, affine)


def test_pairwise_distances_by_hand():
    np.testing.assert_allclose(pairwise_distances([[0, 0, 0], [3, 4, 0], [0, 0, 12]]),
                               [[0, 5, 12], [5, 0, 13], [12, 13, 0]])
