"""The group level: geometric mean, tangent matrices and group means vs nilearn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from nilearn.connectome import ConnectivityMeasure
from sklearn.covariance import EmpiricalCovariance, LedoitWolf

from nipype_maskers.core.connectivity import (
    common_signals,
    geometric_mean,
    group_connectivity,
    tangent_vectors,
)

ESTIMATORS = {"ledoit_wolf": LedoitWolf, "none": EmpiricalCovariance}


def _subjects(n_subjects: int, n_volumes: int, n_regions: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((n_regions, n_regions))
    return [rng.standard_normal((n_volumes + 3 * k, n_regions))
            @ (shared + 0.5 * rng.standard_normal((n_regions, n_regions))) + 5.0
            for k in range(n_subjects)]


def _nilearn(subjects, kind, shrinkage="ledoit_wolf"):
    measure = ConnectivityMeasure(kind=kind, cov_estimator=ESTIMATORS[shrinkage]())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matrices = measure.fit_transform(subjects)
    return measure.mean_, matrices


# nilearn warns the same (its stopping rule, kept): 30 steps without reaching tol for 'none'
@pytest.mark.filterwarnings("ignore:the geometric mean did not reach")
@pytest.mark.parametrize("shrinkage", ["ledoit_wolf", "none"])
def test_tangent_matches_nilearn(shrinkage):
    subjects = _subjects(5, 40, 8)
    expected_mean, expected = _nilearn(subjects, "tangent", shrinkage)
    group = group_connectivity(subjects, kind="tangent", shrinkage=shrinkage)
    # the same iteration and stopping rule: the same point, far closer than the 1e-4 asked
    np.testing.assert_allclose(group.mean, expected_mean, rtol=1e-8,
                               atol=1e-10 * np.abs(expected_mean).max())
    assert group.subjects.shape == (5, 8, 8)
    np.testing.assert_allclose(group.subjects, expected, atol=1e-8)


def test_tangent_keeps_input_order():
    subjects = _subjects(4, 30, 6, seed=3)
    forward = group_connectivity(subjects).subjects
    backward = group_connectivity(subjects[::-1]).subjects
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-8)


def test_geometric_mean_of_commuting_matrices_is_the_elementwise_geometric_mean():
    rng = np.random.default_rng(1)
    rotation = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    eigenvalues = rng.uniform(0.5, 3.0, (3, 4))
    matrices = np.stack([rotation @ np.diag(w) @ rotation.T for w in eigenvalues])
    expected = rotation @ np.diag(np.exp(np.log(eigenvalues).mean(axis=0))) @ rotation.T
    np.testing.assert_allclose(geometric_mean(matrices, max_iter=100, tol=1e-12), expected,
                               atol=1e-10)
    # the tangent vectors at the mean sum to zero (the mean's defining property)
    tangents = tangent_vectors(matrices, expected)
    np.testing.assert_allclose(tangents.sum(axis=0), 0.0, atol=1e-10)


def test_tangent_vectors_in_place():
    subjects = _subjects(3, 40, 5, seed=2)
    covariances = np.stack([LedoitWolf().fit(s).covariance_ for s in subjects])
    mean = geometric_mean(covariances)
    expected = tangent_vectors(covariances, mean)
    out = tangent_vectors(covariances, mean, out=covariances)
    assert out is covariances
    np.testing.assert_allclose(out, expected, atol=1e-14)


@pytest.mark.parametrize("kind", ["correlation", "partial correlation", "covariance",
                                  "precision"])
def test_group_mean_of_other_kinds_matches_nilearn(kind):
    subjects = _subjects(4, 30, 6, seed=4)
    expected_mean, _ = _nilearn(subjects, kind)
    group = group_connectivity(subjects, kind=kind)
    assert group.subjects is None
    np.testing.assert_allclose(group.mean, expected_mean, rtol=1e-6,
                               atol=1e-9 * np.abs(expected_mean).max())


def test_group_mean_with_fisher_z_averages_z_values():
    subjects = _subjects(3, 30, 5, seed=5)
    _, correlations = _nilearn(subjects, "correlation")
    off_diagonal = ~np.eye(5, dtype=bool)
    expected = np.where(off_diagonal, np.arctanh(np.where(off_diagonal, correlations, 0)),
                        np.nan).mean(axis=0)
    group = group_connectivity(subjects, kind="correlation", fisher_z=True)
    np.testing.assert_allclose(group.mean, expected, atol=1e-10)


def test_common_signals_leaves_out_regions_missing_in_any_subject():
    subjects = _subjects(3, 20, 4, seed=6)
    tables = [s.copy() for s in subjects]
    tables[1][:, 2] = np.nan  # emptied by subject 1's mask
    tables[2][[0, 5]] = np.nan  # two censored volumes
    common = common_signals(tables, ["1", "2", "10", "24"], ["a", "b", "c"])
    assert common.regions.tolist() == [True, True, False, True]
    assert common.missing == {"10": ["b"]}
    assert common.n_censored == [0, 0, 2]
    np.testing.assert_array_equal(common.signals[2],
                                  np.delete(subjects[2], [0, 5], axis=0)[:, [0, 1, 3]])


def test_group_errors():
    subjects = _subjects(2, 30, 4)
    with pytest.raises(ValueError, match="needs at least two subjects"):
        group_connectivity(subjects[:1], kind="tangent")
    with pytest.raises(ValueError, match=r"subject 1: signals of shape \(33, 3\); expected"):
        group_connectivity([subjects[0], subjects[1][:, :3]])
    few = _subjects(2, 4, 6)
    with pytest.raises(ValueError, match=r"subject 0: kind 'tangent' with shrinkage='none' "
                       r"needs more volumes than regions"):
        group_connectivity(few, kind="tangent", shrinkage="none")
    tables = [s.copy() for s in subjects]
    tables[1][:] = np.nan
    with pytest.raises(ValueError, match="b: every region is n/a"):
        common_signals(tables, ["w", "x", "y", "z"], ["a", "b"])


def test_geometric_mean_refuses_matrices_that_are_not_positive_definite():
    matrices = np.stack([np.eye(3), np.diag([1.0, -1.0, 2.0])])
    with pytest.raises(ValueError, match="second: the covariance is not positive definite"):
        geometric_mean(matrices, names=["first", "second"])
    with pytest.raises(ValueError, match=r"expected a stack of square matrices"):
        geometric_mean(np.ones((2, 3, 4)))
