"""ConnectivityMatrix and GroupConnectivity: TSV round trips, n/a regions, errors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from nilearn.connectome import ConnectivityMeasure
from sklearn.covariance import EmpiricalCovariance, LedoitWolf

from nipype_maskers.core.io.tables import format_table
from nipype_maskers.interfaces.connectivity import (
    ConnectivityMatrix,
    GroupConnectivity,
    format_square,
    read_square,
)

NAMES = ["1", "2", "10", "24", "3"]  # numeric region names, as a labels masker writes them


def _signals(n_volumes: int, n_regions: int = len(NAMES), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((n_regions, n_regions))
    return rng.standard_normal((n_volumes, n_regions)) @ mixing + 50.0


def _write(path: Path, signals: np.ndarray, names=NAMES) -> str:
    path.write_text(format_table(names, signals))
    return str(path)


def _nilearn(subjects, kind):
    measure = ConnectivityMeasure(kind=kind, cov_estimator=LedoitWolf())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        matrices = measure.fit_transform(subjects)
    return measure.mean_, matrices


def test_square_tsv_round_trip_keeps_numeric_names_and_na(tmp_path):
    matrix = np.arange(25, dtype=float).reshape(5, 5) / 7
    matrix[2] = matrix[:, 2] = np.nan
    path = tmp_path / "m.tsv"
    path.write_text(format_square(NAMES, matrix))
    assert path.read_text().splitlines()[0] == "Node\t1\t2\t10\t24\t3"
    assert path.read_text().splitlines()[3].startswith("10\tn/a\tn/a")
    names, values = read_square(path)
    assert names == NAMES
    np.testing.assert_array_equal(values, matrix)


def test_connectivity_matrix_with_na_region_and_censored_volumes(tmp_path):
    signals = _signals(40)
    table = signals.copy()
    table[:, 3] = np.nan  # region '24' emptied by the mask
    table[[4, 9, 30]] = np.nan  # volumes censored with censored='nan'
    in_file = _write(tmp_path / "sub-01_task-rest_atlas-Toy_timeseries.tsv", table)
    result = ConnectivityMatrix(in_file=in_file).run(cwd=str(tmp_path))
    out = Path(result.outputs.out_file)
    assert out.name == "sub-01_task-rest_atlas-Toy_meas-PearsonCorrelation_relmat.tsv"
    names, matrix = read_square(out)
    assert names == NAMES
    assert np.isnan(matrix[3]).all() and np.isnan(matrix[:, 3]).all()
    kept = np.delete(np.delete(signals, [4, 9, 30], axis=0), 3, axis=1)
    expected = _nilearn([kept], "correlation")[1][0]
    np.testing.assert_allclose(np.delete(np.delete(matrix, 3, 0), 3, 1), expected, atol=1e-12)
    sidecar = json.loads(Path(result.outputs.out_sidecar).read_text())
    assert Path(result.outputs.out_sidecar).name == out.name.replace(".tsv", ".json")
    assert sidecar == {
        "Measure": "correlation", "Estimator": "LedoitWolf", "Standardized": True,
        "FisherZ": False, "DiagonalDiscarded": False, "NumberOfVolumes": 37,
        "NumberOfCensoredVolumes": 3, "MissingRegions": ["24"],
    }
    assert result.outputs.n_volumes == 37


def test_connectivity_matrix_options(tmp_path):
    signals = _signals(50, seed=1)
    in_file = _write(tmp_path / "sub-02_atlas-Toy_timeseries.tsv", signals)
    result = ConnectivityMatrix(in_file=in_file, kind="partial correlation", shrinkage="none",
                                fisher_z=True, discard_diagonal=True).run(cwd=str(tmp_path))
    assert Path(result.outputs.out_file).name == (
        "sub-02_atlas-Toy_meas-PartialCorrelation_relmat.tsv")
    _, matrix = read_square(result.outputs.out_file)
    measure = ConnectivityMeasure(kind="partial correlation",
                                  cov_estimator=EmpiricalCovariance())
    expected = measure.fit_transform([signals])[0]
    np.fill_diagonal(expected, np.nan)  # arctanh(1): infinite, written n/a
    expected = np.arctanh(expected)
    np.testing.assert_allclose(matrix, expected, rtol=1e-6)
    sidecar = json.loads(Path(result.outputs.out_sidecar).read_text())
    assert (sidecar["Estimator"], sidecar["FisherZ"], sidecar["Standardized"]) == (
        "EmpiricalCovariance", True, False)


def test_connectivity_matrix_errors(tmp_path):
    na = _write(tmp_path / "sub-01_timeseries.tsv", np.full((10, 5), np.nan))
    with pytest.raises(ValueError, match=r"in_file '.*sub-01_timeseries.tsv': every region "
                       r"is n/a"):
        ConnectivityMatrix(in_file=na).run(cwd=str(tmp_path))
    few = _write(tmp_path / "sub-02_timeseries.tsv", _signals(4))
    with pytest.raises(ValueError, match=r"sub-02_timeseries.tsv': kind 'precision' with "
                       r"shrinkage='none' needs more volumes than regions to invert the "
                       r"covariance, got 4 volume\(s\) for 5 regions; use shrinkage="):
        ConnectivityMatrix(in_file=few, kind="precision", shrinkage="none").run(
            cwd=str(tmp_path))
    with pytest.raises(ValueError, match="fisher_z=True with kind 'covariance'"):
        ConnectivityMatrix(in_file=few, kind="covariance", fisher_z=True).run(
            cwd=str(tmp_path))
    assert not list(tmp_path.glob("*relmat*"))  # nothing written


def test_group_tangent_drops_regions_missing_in_a_subject(tmp_path):
    subjects = [_signals(30 + 5 * k, seed=10 + k) for k in range(3)]
    tables = [s.copy() for s in subjects]
    tables[1][:, 2] = np.nan  # region '10' missing in sub-02 only
    in_files = [_write(tmp_path / f"sub-0{k + 1}_task-rest_atlas-Toy_timeseries.tsv", t)
                for k, t in enumerate(tables)]
    result = GroupConnectivity(in_files=in_files).run(cwd=str(tmp_path))
    kept = [np.delete(s, 2, axis=1) for s in subjects]
    expected_mean, expected = _nilearn(kept, "tangent")
    assert Path(result.outputs.mean_file).name == (
        "task-rest_atlas-Toy_meas-Covariance_desc-geometricmean_relmat.tsv")
    names, mean = read_square(result.outputs.mean_file)
    assert names == NAMES and np.isnan(mean[2]).all() and np.isnan(mean[:, 2]).all()
    np.testing.assert_allclose(np.delete(np.delete(mean, 2, 0), 2, 1), expected_mean,
                               rtol=1e-8)
    assert [Path(f).name for f in result.outputs.subject_files] == [
        f"sub-0{k + 1}_task-rest_atlas-Toy_meas-Tangent_relmat.tsv" for k in range(3)]
    for path, matrix in zip(result.outputs.subject_files, expected, strict=True):
        values = read_square(path)[1]
        np.testing.assert_allclose(np.delete(np.delete(values, 2, 0), 2, 1), matrix, atol=1e-8)
    sidecar = json.loads(Path(result.outputs.mean_sidecar).read_text())
    assert sidecar["MissingRegions"] == {"10": ["sub-02_task-rest_atlas-Toy_timeseries.tsv"]}
    assert "left out of the whole group" in sidecar["MissingRegionsNote"]
    assert sidecar["NumberOfVolumes"] == [30, 35, 40]
    assert len(result.outputs.subject_sidecars) == 3


def test_group_mean_of_correlations(tmp_path):
    subjects = [_signals(30, seed=20 + k) for k in range(3)]
    in_files = [_write(tmp_path / f"sub-0{k}_atlas-Toy_timeseries.tsv", s)
                for k, s in enumerate(subjects)]
    result = GroupConnectivity(in_files=in_files, kind="correlation",
                               discard_diagonal=True).run(cwd=str(tmp_path))
    assert Path(result.outputs.mean_file).name == (
        "atlas-Toy_meas-PearsonCorrelation_desc-mean_relmat.tsv")
    expected = _nilearn(subjects, "correlation")[0]
    np.fill_diagonal(expected, np.nan)
    np.testing.assert_allclose(read_square(result.outputs.mean_file)[1], expected, atol=1e-12)
    assert result.outputs.subject_files == []


def test_group_with_different_columns_names_the_file_and_column(tmp_path):
    first = _write(tmp_path / "sub-01_timeseries.tsv", _signals(20))
    second = _write(tmp_path / "sub-02_timeseries.tsv", _signals(20),
                    names=["1", "2", "11", "24", "3"])
    with pytest.raises(ValueError, match=r"in_files '.*sub-02_timeseries.tsv': column 3 is "
                       r"'11' where '.*sub-01_timeseries.tsv' has '10'"):
        GroupConnectivity(in_files=[first, second]).run(cwd=str(tmp_path))
    third = _write(tmp_path / "sub-03_timeseries.tsv", _signals(20)[:, :4], names=NAMES[:4])
    with pytest.raises(ValueError, match=r"column 5 is '\(none\)' where .* has '3' \(4 vs 5"):
        GroupConnectivity(in_files=[first, third]).run(cwd=str(tmp_path))
    assert not list(tmp_path.glob("*relmat*"))


def test_group_with_a_subject_all_na_names_it(tmp_path):
    first = _write(tmp_path / "sub-01_timeseries.tsv", _signals(20))
    empty = _write(tmp_path / "sub-02_timeseries.tsv", np.full((20, 5), np.nan))
    with pytest.raises(ValueError, match=r"in_files '.*sub-02_timeseries.tsv': every region is "
                       r"n/a"):
        GroupConnectivity(in_files=[first, empty]).run(cwd=str(tmp_path))
    assert not list(tmp_path.glob("*relmat*"))


def test_group_of_files_without_bids_names(tmp_path):
    subjects = [_signals(25, seed=30 + k) for k in range(2)]
    in_files = [_write(tmp_path / f"{name}.tsv", s) for name, s in zip("ab", subjects,
                                                                      strict=True)]
    result = GroupConnectivity(in_files=in_files, kind="covariance").run(cwd=str(tmp_path))
    assert Path(result.outputs.mean_file).name == "group_meas-Covariance_desc-mean_relmat.tsv"
    np.testing.assert_allclose(read_square(result.outputs.mean_file)[1],
                               _nilearn(subjects, "covariance")[0], rtol=1e-10)
