"""One run's connectivity matrix vs nilearn's ConnectivityMeasure; Ledoit-Wolf vs scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from nilearn.connectome import ConnectivityMeasure, sym_matrix_to_vec
from sklearn.covariance import EmpiricalCovariance, LedoitWolf, empirical_covariance
from sklearn.covariance import ledoit_wolf as sklearn_ledoit_wolf

from nipype_maskers.core.connectivity import (
    KINDS,
    connectivity_matrix,
    estimate_covariance,
    ledoit_wolf,
    run_connectivity,
    valid_signals,
)
from nipype_maskers.core.connectivity import empirical_covariance as our_empirical

ESTIMATORS = {"ledoit_wolf": LedoitWolf, "none": EmpiricalCovariance}


def _signals(n_volumes: int, n_regions: int, seed: int = 0) -> np.ndarray:
    """Correlated signals with unequal means and scales (what z-scoring changes)."""
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((n_regions, n_regions))
    scales = rng.uniform(0.5, 20.0, n_regions)
    return rng.standard_normal((n_volumes, n_regions)) @ mixing * scales + rng.normal(
        100.0, 30.0, n_regions)


def _nilearn(signals: np.ndarray, kind: str, shrinkage: str, **options) -> np.ndarray:
    measure = ConnectivityMeasure(kind=kind, cov_estimator=ESTIMATORS[shrinkage](), **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return measure.fit_transform([signals])[0]


@pytest.mark.parametrize(("n_volumes", "n_regions"), [(50, 7), (9, 13), (30, 1), (12, 1003)])
def test_ledoit_wolf_matches_scikit_learn(n_volumes, n_regions):
    # 1003 regions: scikit-learn's block computation (blocks of 1000) is exercised
    signals = _signals(n_volumes, n_regions, seed=n_regions)
    expected, expected_shrinkage = sklearn_ledoit_wolf(signals)
    covariance, shrinkage = ledoit_wolf(signals)
    assert shrinkage == pytest.approx(expected_shrinkage, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(covariance, expected, rtol=1e-10,
                               atol=1e-10 * np.abs(expected).max())
    fitted = LedoitWolf(store_precision=False).fit(signals)  # nilearn's estimator
    assert shrinkage == pytest.approx(fitted.shrinkage_, rel=1e-10, abs=1e-12)


def test_ledoit_wolf_shrinks_fully_when_capped():
    # one volume per... two volumes and many regions: beta > delta, shrinkage capped at 1
    signals = _signals(2, 40, seed=3)
    covariance, shrinkage = ledoit_wolf(signals)
    expected, expected_shrinkage = sklearn_ledoit_wolf(signals)
    assert shrinkage == pytest.approx(expected_shrinkage, rel=1e-10)
    np.testing.assert_allclose(covariance, expected, rtol=1e-10)


def test_empirical_covariance_matches_scikit_learn():
    signals = _signals(40, 6)
    np.testing.assert_allclose(our_empirical(signals), empirical_covariance(signals),
                               rtol=1e-12)
    np.testing.assert_allclose(estimate_covariance(signals, "none"),
                               EmpiricalCovariance().fit(signals).covariance_, rtol=1e-12)


def test_unknown_shrinkage_and_nan_are_refused():
    with pytest.raises(ValueError, match=r"shrinkage 'oas' is not known; expected one of"):
        estimate_covariance(_signals(10, 3), "oas")
    signals = _signals(10, 3)
    signals[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        ledoit_wolf(signals)


@pytest.mark.parametrize("discard_diagonal", [False, True])
@pytest.mark.parametrize("fisher_z", [False, True])
@pytest.mark.parametrize("shrinkage", ["ledoit_wolf", "none"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_matches_nilearn(kind, shrinkage, fisher_z, discard_diagonal):
    signals = _signals(60, 9, seed=len(kind))
    options = dict(kind=kind, shrinkage=shrinkage, fisher_z=fisher_z,
                   discard_diagonal=discard_diagonal)
    if fisher_z and kind not in ("correlation", "partial correlation"):
        with pytest.raises(ValueError, match="Fisher z transform is for correlations"):
            connectivity_matrix(signals, **options)
        return
    ours = connectivity_matrix(signals, **options)
    expected = _nilearn(signals, kind, shrinkage)
    if fisher_z:
        off_diagonal = ~np.eye(9, dtype=bool)
        expected = np.where(off_diagonal, np.arctanh(np.where(off_diagonal, expected, 0)),
                            np.nan)
    if discard_diagonal or fisher_z:
        assert np.isnan(np.diag(ours)).all()
        expected = expected.copy()
        np.fill_diagonal(expected, np.nan)
        # the off-diagonal values are nilearn's vectorized output without the diagonal
        vectorized = _nilearn(signals, kind, shrinkage, vectorize=True, discard_diagonal=True)
        values = np.arctanh(vectorized) if fisher_z else vectorized
        np.testing.assert_allclose(sym_matrix_to_vec(ours, discard_diagonal=True), values,
                                   rtol=1e-6, atol=1e-9)
    scale = np.nanmax(np.abs(expected))
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6 * scale)


def test_correlation_standardizes_before_ledoit_wolf():
    # with Ledoit-Wolf, z-scoring first changes the correlation: we must follow nilearn
    signals = _signals(30, 8, seed=5)
    expected = _nilearn(signals, "correlation", "ledoit_wolf")
    covariance = ledoit_wolf(signals)[0]
    scale = 1 / np.sqrt(np.diag(covariance))
    unstandardized = covariance * scale[:, None] * scale[None, :]
    assert np.abs(unstandardized - expected).max() > 1e-3
    np.testing.assert_allclose(connectivity_matrix(signals), expected, rtol=1e-10, atol=1e-12)


def test_more_regions_than_volumes_with_ledoit_wolf_matches_nilearn():
    signals = _signals(8, 15, seed=2)
    for kind in KINDS:
        np.testing.assert_allclose(connectivity_matrix(signals, kind=kind),
                                   _nilearn(signals, kind, "ledoit_wolf"), rtol=1e-6,
                                   atol=1e-8)


def test_constant_region_as_nilearn():
    signals = _signals(25, 5, seed=4)
    signals[:, 2] = 3.0  # std below epsilon: nilearn divides by 1
    np.testing.assert_allclose(connectivity_matrix(signals),
                               _nilearn(signals, "correlation", "ledoit_wolf"), atol=1e-12)


@pytest.mark.parametrize("kind", ["precision", "partial correlation"])
def test_unshrunk_inverse_with_too_few_volumes_says_shrinkage_is_needed(kind):
    with pytest.raises(ValueError, match=r"needs more volumes than regions.*"
                       r"got 6 volume\(s\) for 6 regions; use shrinkage='ledoit_wolf'"):
        connectivity_matrix(_signals(6, 6), kind=kind, shrinkage="none")
    # the correlation of the same signals needs no inverse
    assert np.isfinite(connectivity_matrix(_signals(6, 6), shrinkage="none")).all()


def test_singular_covariance_with_enough_volumes_is_one_error():
    signals = _signals(30, 4)
    signals[:, 3] = signals[:, 0] * 2.0  # duplicated region: singular even with many volumes
    with pytest.raises(ValueError, match="singular and cannot be inverted; use shrinkage="):
        connectivity_matrix(signals, kind="precision", shrinkage="none")


def test_unknown_kind():
    with pytest.raises(ValueError, match=r"kind 'tangent' is not known; expected one of"):
        connectivity_matrix(_signals(10, 3), kind="tangent")


def test_valid_signals_drops_na_regions_and_censored_volumes():
    signals = _signals(12, 4)
    table = signals.copy()
    table[:, 1] = np.nan
    table[[3, 7]] = np.nan
    valid = valid_signals(table, ["a", "b", "c", "d"])
    assert valid.n_censored == 2
    assert valid.regions.tolist() == [True, False, True, True]
    np.testing.assert_array_equal(valid.signals, np.delete(signals, [3, 7], axis=0)[:, [0, 2, 3]])


def test_run_connectivity_embeds_na_regions():
    signals = _signals(40, 5, seed=6)
    table = signals.copy()
    table[:, 3] = np.nan
    table[10] = np.nan
    result = run_connectivity(table, ["1", "2", "10", "24", "3"], kind="partial correlation")
    kept = np.delete(np.delete(signals, 10, axis=0), 3, axis=1)
    expected = _nilearn(kept, "partial correlation", "ledoit_wolf")
    assert (result.n_volumes, result.n_censored, result.missing_regions) == (39, 1, ["24"])
    assert np.isnan(result.matrix[3]).all() and np.isnan(result.matrix[:, 3]).all()
    np.testing.assert_allclose(np.delete(np.delete(result.matrix, 3, 0), 3, 1), expected,
                               rtol=1e-6, atol=1e-9)


def test_valid_signals_errors():
    table = np.full((5, 3), np.nan)
    with pytest.raises(ValueError, match="in_file 'x.tsv': every region is n/a"):
        valid_signals(table, ["a", "b", "c"], name="in_file 'x.tsv'")
    table = _signals(5, 3)
    table[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"region 'b' has a missing or infinite value in kept "
                       r"volume 2"):
        valid_signals(table, ["a", "b", "c"])
