"""DenoisingQC and QCFC as Nipype interfaces: TSV and JSON in and out, bad input.

The figures themselves are checked in ``test_qc.py``; here, that the files carry the core's
numbers (read back with our reader and with pandas), that every way of giving the kept
volumes gives the same figures, and that bad input raises one error and writes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import nilearn
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nipype_maskers.core.io.tables import format_table, read_table
from nipype_maskers.core.qc.denoising import denoising_qc
from nipype_maskers.core.qc.stats import fdr_bh
from nipype_maskers.interfaces.connectivity import format_square
from nipype_maskers.interfaces.qc import QCFC, DenoisingQC

N_VOLUMES = 40
SUB = "sub-01_task-rest"


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A run's confounds, sample mask, raw and cleaned region signals (volumes 0, 1, 17
    censored; region '4' emptied by the mask)."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    fd = np.r_[np.nan, rng.uniform(0, 0.6, N_VOLUMES - 1)]
    std_dvars = np.r_[np.nan, rng.uniform(0.8, 1.5, N_VOLUMES - 1)]
    confounds = tmp_path / f"{SUB}_desc-confounds_timeseries.tsv"
    confounds.write_text(format_table(
        ["trans_x", "framewise_displacement", "std_dvars"],
        np.c_[rng.normal(size=N_VOLUMES), fd, std_dvars]))
    kept = np.setdiff1d(np.arange(N_VOLUMES), [0, 1, 17])
    mask = tmp_path / f"{SUB}_desc-selected_samplemask.tsv"
    mask.write_text(format_table(["sample_mask"], kept.reshape(-1, 1)))
    names = ["1", "2", "4", "7"]
    raw = rng.normal(100, 5, size=(N_VOLUMES, 4))
    raw[:, 2] = np.nan
    clean = rng.normal(size=(kept.size, 4))
    clean[:, 2] = np.nan
    raw_file = tmp_path / f"{SUB}_atlas-Toy_timeseries.tsv"
    raw_file.write_text(format_table(names, raw))
    clean_file = tmp_path / f"{SUB}_atlas-Toy_desc-clean_timeseries.tsv"
    clean_file.write_text(format_table(names, clean))
    regressors = tmp_path / f"{SUB}_desc-selected_timeseries.tsv"
    regressors.write_text(format_table([f"c{i}" for i in range(9)], np.zeros((N_VOLUMES, 9))))
    short = tmp_path / f"{SUB}_atlas-Short_timeseries.tsv"
    short.write_text(format_table(names, clean[:20]))
    return {"confounds": confounds, "mask": mask, "raw": raw_file, "clean": clean_file,
            "short": short,
            "regressors": regressors, "fd": fd, "std_dvars": std_dvars, "kept": kept,
            "raw_values": raw, "clean_values": clean, "folder": tmp_path}


def _qc(run, **inputs):
    return DenoisingQC(confounds_file=str(run["confounds"]), t_r=2.0, **inputs).run().outputs


def test_denoising_qc_writes_the_core_figures(run):
    outputs = _qc(run, sample_mask_file=str(run["mask"]), regressors_file=str(run["regressors"]),
                  high_pass=0.01, low_pass=0.08, raw_file=str(run["raw"]),
                  clean_file=str(run["clean"]))
    assert Path(outputs.out_file).name == f"{SUB}_desc-qc_bold.tsv"
    expected = denoising_qc(run["fd"], t_r=2.0, kept=run["kept"], n_regressors=9,
                            high_pass=0.01, low_pass=0.08, raw_signals=run["raw_values"],
                            clean_signals=run["clean_values"],
                            std_dvars_confounds=run["std_dvars"],
                            missing_regions={"Toy": ["4"]})
    table = read_table(outputs.out_file, name="out_file", header=True, delimiter="\t")
    assert table.columns == list(expected)
    assert table.values.shape == (1, len(expected))
    np.testing.assert_allclose(table.values[0], [expected[c] for c in table.columns],
                               rtol=1e-15, equal_nan=True)
    frame = pd.read_csv(outputs.out_file, sep="\t", na_values="n/a")
    assert frame["n_volumes_censored"].tolist() == [3]
    assert frame["n_missing_regions_Toy"].tolist() == [1]
    assert frame["mean_dvars_confounds"].isna().all()  # no dvars column in the confounds
    assert frame["dof_lost"].iloc[0] == pytest.approx(9 + 3 + 37 * (1 - 0.07 / 0.25))
    sidecar = json.loads(Path(outputs.out_sidecar).read_text())
    assert Path(outputs.out_sidecar).name == f"{SUB}_desc-qc_bold.json"
    assert set(table.columns) <= set(sidecar)
    assert sidecar["mean_fd"]["Units"] == "mm"
    assert sidecar["remaining_duration"]["Units"] == "s"
    assert "Units" not in sidecar["n_volumes"]
    assert sidecar["MissingRegions"] == {"Toy": ["4"]}
    assert outputs.figures["remaining_duration"] == 74.0


def test_every_way_of_giving_the_kept_volumes_agrees(run):
    sidecar = run["folder"] / f"{SUB}_atlas-Toy_desc-clean_timeseries.json"
    sidecar.write_text(json.dumps({"CensoredVolumes": [0, 1, 17]}))
    common = {"clean_file": str(run["clean"]), "raw_file": str(run["raw"])}
    figures = [
        _qc(run, sample_mask_file=str(run["mask"]), **common).figures,
        _qc(run, sample_mask=[int(i) for i in run["kept"]], **common).figures,
        _qc(run, sidecar_file=str(sidecar), **common).figures,
    ]
    assert figures[0] == figures[1] == figures[2]
    assert figures[0]["n_volumes_kept"] == N_VOLUMES - 3
    everything = _qc(run, raw_file=str(run["raw"])).figures  # no censoring given
    assert everything["n_volumes_censored"] == 0 and everything["dof_lost"] == 0


def test_voxel_npy_signals(run):
    rng = np.random.default_rng(1)
    raw = rng.normal(size=(N_VOLUMES, 50)).astype(np.float32)
    np.save(run["folder"] / "raw.npy", raw)
    outputs = _qc(run, raw_file=str(run["folder"] / "raw.npy"))
    before = np.sqrt(np.mean(np.diff(raw.astype(np.float64), axis=0) ** 2, axis=1))
    assert outputs.figures["mean_dvars_before"] == pytest.approx(before.mean())
    assert outputs.figures["fd_dvars_correlation_before"] == pytest.approx(
        stats.pearsonr(run["fd"][1:], before).statistic)
    assert not any(k.startswith("n_missing_regions") for k in outputs.figures)


def test_missing_regions_per_atlas(run):
    other = run["folder"] / f"{SUB}_atlas-Other_timeseries.tsv"
    other.write_text(format_table(["a", "b", "c"], np.array([[np.nan, 1.0, np.nan]] * 5)))
    outputs = _qc(run, timeseries_files=[str(run["clean"]), str(other)])
    assert outputs.figures["n_missing_regions_Toy"] == 1
    assert outputs.figures["n_missing_regions_Other"] == 2
    sidecar = json.loads(Path(outputs.out_sidecar).read_text())
    assert sidecar["MissingRegions"] == {"Toy": ["4"], "Other": ["a", "c"]}


def _written(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "_desc-qc" in p.name)


@pytest.mark.parametrize(("inputs", "message"), [
    ({"sample_mask": [2, 3], "sample_mask_file": "mask"},
     "sample_mask_file and sample_mask: give one of them"),
    ({"raw_file": "clean"}, "raw signals have 37 rows, the confounds 40"),
    ({"clean_file": "short", "sample_mask_file": "mask"},
     r"clean signals have 20 rows; expected 37 \(the kept volumes\) or 40"),
    ({"sample_mask": [3, 40]}, r"outside \[0, 39\]"),
    ({"n_regressors": 2, "regressors_file": "regressors"}, "not both"),
])  # fmt: skip
def test_denoising_qc_bad_input_writes_nothing(run, inputs, message):
    given = {k: (str(run[v]) if isinstance(v, str) else v) for k, v in inputs.items()}
    with pytest.raises(ValueError, match=message):
        _qc(run, **given)
    assert _written(run["folder"]) == []


def test_denoising_qc_on_an_fmriprep_confounds_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = (Path(nilearn.__file__).parent / "interfaces" / "fmriprep" / "data"
              / "test-v21_desc-confounds_timeseries.tsv")
    outputs = DenoisingQC(confounds_file=str(source), t_r=2.0, sample_mask=[3, 4, 5, 6]
                          ).run().outputs  # fmt: skip
    frame = pd.read_csv(source, sep="\t", na_values="n/a")
    figures = outputs.figures
    assert figures["n_volumes"] == len(frame)
    assert figures["mean_fd"] == pytest.approx(frame["framewise_displacement"].mean())
    assert figures["max_fd"] == pytest.approx(frame["framewise_displacement"].max())
    assert figures["mean_dvars_confounds"] == pytest.approx(frame["dvars"].mean())
    assert figures["mean_std_dvars_confounds"] == pytest.approx(frame["std_dvars"].mean())
    assert figures["n_volumes_kept"] == 4 and figures["remaining_duration"] == 8.0


def test_denoising_qc_needs_the_fd_column(run):
    bad = run["folder"] / "sub-02_task-rest_desc-confounds_timeseries.tsv"
    bad.write_text(format_table(["trans_x"], np.zeros((5, 1))))
    with pytest.raises(ValueError, match=r"confounds_file .*\['framewise_displacement'\] not "
                                         "found"):
        DenoisingQC(confounds_file=str(bad), t_r=2.0).run()
    assert _written(run["folder"]) == []


# --------------------------------------------------------------------------------------------
# QCFC

REGIONS = ["1", "2", "4", "7", "9"]


def _write_matrix(path: Path, matrix: np.ndarray, names=REGIONS) -> str:
    """A matrix TSV as ConnectivityMatrix writes it."""
    path.write_text(format_square(names, matrix))
    return str(path)


@pytest.fixture
def group(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(2)
    n_subjects = 8
    mean_fd = rng.uniform(0.05, 0.4, n_subjects)
    matrices = []
    for fd in mean_fd:
        signals = rng.normal(size=(60, 5))
        signals[:, 1] += 4 * fd * signals[:, 0]
        matrix = np.corrcoef(signals.T)
        matrices.append(matrix)
    matrices = np.array(matrices)
    matrices[:, :, 2] = matrices[:, 2, :] = np.nan  # region '4' emptied everywhere
    np.fill_diagonal(matrices[0], np.nan)
    files = [_write_matrix(tmp_path / f"sub-{i:02d}_task-rest_atlas-Toy_meas-"
                                      "PearsonCorrelation_relmat.tsv", m)
             for i, m in enumerate(matrices)]
    centroids = rng.uniform(-50, 50, size=(5, 3))
    regions_file = tmp_path / "atlas-Toy_centroids.tsv"  # in another order than the matrices
    regions_file.write_text(format_table(
        ["index", "x", "y", "z"], [[name, *centroids[REGIONS.index(name)]]
                                   for name in ["9", "4", "1", "2", "7"]]))
    return {"files": files, "mean_fd": mean_fd, "matrices": matrices,
            "centroids": centroids, "regions_file": str(regions_file), "folder": tmp_path}


def test_qcfc_writes_summary_and_edges(group):
    outputs = QCFC(in_files=group["files"], mean_fd=list(group["mean_fd"]),
                   regions_file=group["regions_file"]).run().outputs
    assert Path(outputs.out_file).name == (
        "task-rest_atlas-Toy_meas-PearsonCorrelation_desc-qcfc_bold.tsv")
    edges = pd.read_csv(outputs.edges_file, sep="\t", na_values="n/a", dtype={"region_a": str,
                                                                            "region_b": str})
    assert len(edges) == 10
    pairs = list(zip(edges["region_a"], edges["region_b"], strict=True))
    assert pairs[0] == ("1", "2") and pairs[-1] == ("7", "9")
    rs, ps, distances = [], [], []
    columns = (edges["qcfc"], edges["p"], edges["distance"])
    for (a, b), r, p, distance in zip(pairs, *columns, strict=True):
        i, j = REGIONS.index(a), REGIONS.index(b)
        expected_distance = np.linalg.norm(group["centroids"][i] - group["centroids"][j])
        assert distance == pytest.approx(expected_distance)
        if "4" in (a, b):
            assert np.isnan(r) and np.isnan(p)
            continue
        reference = stats.pearsonr(group["matrices"][:, i, j], group["mean_fd"])
        assert r == pytest.approx(reference.statistic, rel=1e-12)
        assert p == pytest.approx(reference.pvalue, rel=1e-9)
        rs.append(r), ps.append(p), distances.append(distance)
    summary = pd.read_csv(outputs.out_file, sep="\t", na_values="n/a").iloc[0]
    assert summary["n_subjects"] == 8 and summary["n_edges"] == 10
    assert summary["n_edges_excluded"] == 4
    assert summary["median_abs_qcfc"] == pytest.approx(np.median(np.abs(rs)))
    assert summary["percent_significant"] == pytest.approx(100 * np.mean(np.array(ps) < 0.05))
    assert summary["percent_significant_fdr"] == pytest.approx(
        100 * np.mean(fdr_bh(ps) < 0.05))
    assert summary["distance_dependence"] == pytest.approx(
        stats.pearsonr(rs, distances).statistic)
    assert summary["distance_dependence_spearman"] == pytest.approx(
        stats.spearmanr(rs, distances).statistic)
    sidecar = json.loads(Path(outputs.out_sidecar).read_text())
    assert sidecar["percent_significant"]["Units"] == "%"
    assert sidecar["MeanFramewiseDisplacement"] == pytest.approx(list(group["mean_fd"]))
    edges_sidecar = json.loads(Path(outputs.edges_sidecar).read_text())
    assert edges_sidecar["distance"]["Units"] == "mm"


def test_qcfc_centroids_from_a_labels_image(group):
    # one voxel per label at the centroid's position (identity affine): same distances
    data = np.zeros((10, 10, 10), dtype=np.int16)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-10.0, 4.0, 0.5]
    positions = np.array([[1, 2, 3], [4, 0, 9], [9, 9, 9], [0, 0, 0], [5, 6, 2]])
    for label, voxel in zip(REGIONS, positions, strict=True):
        data[tuple(voxel)] = int(label)
    data[1, 1, 1] = 30  # a label no matrix has
    labels_file = group["folder"] / "atlas-Toy_dseg.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), labels_file)
    centroids = positions * 2.0 + affine[:3, 3]
    regions_file = group["folder"] / "centroids.tsv"
    regions_file.write_text(format_table(["x", "y", "z"], centroids))
    from_labels = QCFC(in_files=group["files"], mean_fd=list(group["mean_fd"]),
                       labels_file=str(labels_file)).run().outputs
    from_table = QCFC(in_files=group["files"], mean_fd=list(group["mean_fd"]),
                      regions_file=str(regions_file)).run().outputs
    assert from_labels.summary == pytest.approx(from_table.summary, nan_ok=True)
    assert np.isfinite(from_labels.summary["distance_dependence"])
    with pytest.raises(ValueError, match="not both"):
        QCFC(in_files=group["files"], mean_fd=list(group["mean_fd"]),
             labels_file=str(labels_file), regions_file=str(regions_file)).run()


def test_qcfc_mean_fd_from_qc_files(group):
    qc_files = []
    for i, fd in enumerate(group["mean_fd"]):
        path = group["folder"] / f"sub-{i:02d}_task-rest_desc-qc_bold.tsv"
        path.write_text(format_table(["n_volumes", "mean_fd"], [[100, float(fd)]]))
        qc_files.append(str(path))
    from_files = QCFC(in_files=group["files"], qc_files=qc_files).run().outputs.summary
    from_list = QCFC(in_files=group["files"], mean_fd=list(group["mean_fd"])).run().outputs
    assert from_files == from_list.summary
    assert from_files["distance_dependence"] is None  # no centroids: n/a


def _group_outputs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "desc-qcfc" in p.name)


def test_qcfc_bad_input_writes_nothing(group):
    files, fd = group["files"], list(group["mean_fd"])
    with pytest.raises(ValueError, match="in_files: 2 matrices; QC-FC needs at least 3"):
        QCFC(in_files=files[:2], mean_fd=fd[:2]).run()
    with pytest.raises(ValueError, match="give exactly one of them, got neither"):
        QCFC(in_files=files).run()
    with pytest.raises(ValueError, match="mean_fd: 7 values for 8 in_files"):
        QCFC(in_files=files, mean_fd=fd[:7]).run()
    other = _write_matrix(group["folder"] / "other.tsv", np.eye(4), names=["1", "2", "3", "4"])
    with pytest.raises(ValueError, match="in_files '.*other.tsv': regions .* differ"):
        QCFC(in_files=[*files, other], mean_fd=[*fd, 0.1]).run()
    partial = group["folder"] / "centroids.tsv"
    partial.write_text(format_table(["name", "x", "y", "z"], [["1", 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"regions \['2', '4', '7', '9'\] of the matrices"):
        QCFC(in_files=files, mean_fd=fd, regions_file=str(partial)).run()
    empty = _write_matrix(group["folder"] / "empty.tsv", np.full((5, 5), np.nan))
    with pytest.raises(ValueError, match=r"subjects \[8\].*every edge is n/a"):
        QCFC(in_files=[*files, empty], mean_fd=[*fd, 0.1]).run()
    assert _group_outputs(group["folder"]) == []


def test_qcfc_matrix_with_other_row_names(group):
    bad = group["folder"] / "bad.tsv"
    bad.write_text("Node\t1\t2\n2\t1\t0\n1\t0\t1\n")
    with pytest.raises(ValueError, match="in_files '.*bad.tsv': the first column does not "
                                         "repeat the header's region names"):
        QCFC(in_files=[str(bad)] * 3, mean_fd=[0.1, 0.2, 0.3]).run()
