"""The ``group`` analysis level: group matrices, QC-FC, flagged runs, bad input, the demo."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from nipype_maskers.cli.program import main
from nipype_maskers.core.io.tables import format_table, read_table
from nipype_maskers.interfaces.connectivity import (
    ConnectivityMatrix,
    GroupConnectivity,
    read_square,
)
from nipype_maskers.interfaces.qc import QCFC, DenoisingQC

SPACE = "MNI152NLin2009cAsym"
NAMES = ["Left_A", "Left_B", "Right_A", "Right_B", "Mid_C", "Mid_D"]
#: each subject's mean FD: sub-06 over the default 0.5 mm
MEAN_FD = {"01": 0.10, "02": 0.15, "03": 0.22, "04": 0.30, "05": 0.12, "06": 0.80}


def _atlas(folder: Path) -> tuple[Path, Path]:
    """A 12^3 labels image, six cubes of labels 1..6 at known places, and its LUT."""
    data = np.zeros((12, 12, 12), np.int16)
    corners = [(0, 0, 0), (0, 6, 0), (6, 0, 0), (6, 6, 0), (0, 0, 6), (6, 6, 6)]
    for label, (x, y, z) in enumerate(corners, start=1):
        data[x:x + 3, y:y + 3, z:z + 3] = label
    labels = folder / "atlas-Toy_dseg.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), labels)
    lut = folder / "atlas-Toy_dseg.tsv"
    lut.write_text("index\tname\n" + "".join(f"{i}\t{n}\n" for i, n in enumerate(NAMES, 1)))
    return labels, lut


def _participant_outputs(out: Path, subjects=tuple(MEAN_FD), n_volumes: int = 60,
                         censored: dict[str, int] | None = None) -> dict[str, Path]:
    """What the participant level writes for each subject: time series, regions table,
    correlation matrix (ConnectivityMatrix) and QC table (DenoisingQC)."""
    rng = np.random.default_rng(0)
    files = {}
    for subject in subjects:
        func = out / f"sub-{subject}" / "func"
        func.mkdir(parents=True, exist_ok=True)
        base = f"sub-{subject}_task-rest"
        signals = rng.standard_normal((n_volumes, len(NAMES)))
        signals[:, 1] += (1 + MEAN_FD[subject]) * signals[:, 0]  # motion-like coupling
        timeseries = func / f"{base}_space-{SPACE}_atlas-Toy_timeseries.tsv"
        timeseries.write_text(format_table(NAMES, signals))
        (func / f"{base}_space-{SPACE}_atlas-Toy_regions.tsv").write_text(
            "index\tname\tvoxel_count\tcoverage\n"
            + "".join(f"{i}\t{n}\t27\t1.0\n" for i, n in enumerate(NAMES, 1)))
        matrix = ConnectivityMatrix(in_file=str(timeseries)).run(cwd=str(func)).outputs
        assert Path(matrix.out_file).parent == func
        fd = np.full(n_volumes, MEAN_FD[subject])
        fd[0] = np.nan  # fMRIPrep's first FD is n/a (the mean is over the others)
        confounds = out.parent / f"{base}_desc-confounds_timeseries.tsv"
        confounds.write_text(format_table(["framewise_displacement"], fd[:, None]))
        n_censored = (censored or {}).get(subject, 0)
        qc = DenoisingQC(confounds_file=str(confounds), t_r=2.0,
                         sample_mask=list(range(n_censored, n_volumes))).run(cwd=str(func))
        files[subject] = timeseries
        assert Path(qc.outputs.out_file).parent == func
    return files


@pytest.fixture
def dataset(tmp_path):
    atlases = tmp_path / "atlases"
    atlases.mkdir()
    labels, lut = _atlas(atlases)
    out = tmp_path / "derivatives" / "maskers"
    out.mkdir(parents=True)
    fmriprep = tmp_path / "derivatives" / "fmriprep"
    fmriprep.mkdir()
    files = _participant_outputs(out)
    return {"out": out, "fmriprep": fmriprep, "atlas": f"{labels}:{lut}", "labels": labels,
            "timeseries": files}


def _group(dataset, *extra: str) -> int:
    return main([str(dataset["fmriprep"]), str(dataset["out"]), "group", "--atlas",
                 dataset["atlas"], "--no-reports", *extra])


def _only(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, (pattern, [p.name for p in folder.iterdir()])
    return found[0]


def test_group_matrices_equal_group_connectivity_and_nilearn(dataset, tmp_path):
    from nilearn.connectome import ConnectivityMeasure
    from sklearn.covariance import LedoitWolf

    assert _group(dataset, "--connectivity", "correlation", "tangent") == 0
    group = dataset["out"] / "group"
    kept = [str(dataset["timeseries"][s]) for s in sorted(MEAN_FD) if s != "06"]  # 06 flagged
    reference = tmp_path / "reference"
    reference.mkdir()
    for kind, pattern in (("correlation", "*_meas-PearsonCorrelation_desc-mean_relmat.tsv"),
                          ("tangent", "*_meas-Covariance_desc-geometricmean_relmat.tsv")):
        ours = _only(group, pattern)
        expected = GroupConnectivity(in_files=kept, kind=kind).run(cwd=str(reference)).outputs
        assert ours.read_bytes() == Path(expected.mean_file).read_bytes()
    assert _only(group, "task-rest_space-*_atlas-Toy_meas-PearsonCorrelation_desc-mean_relmat.tsv")
    signals = [read_table(p, name="ts", header=True, delimiter="\t").values for p in kept]
    measure = ConnectivityMeasure(kind="tangent", cov_estimator=LedoitWolf(store_precision=False))
    tangents = measure.fit_transform(signals)
    names, mean = read_square(_only(group, "*_desc-geometricmean_relmat.tsv"))
    assert names == NAMES
    np.testing.assert_allclose(mean, measure.mean_, atol=1e-4)
    for subject, expected in zip(sorted(MEAN_FD)[:5], tangents, strict=True):
        _, tangent = read_square(_only(group, f"sub-{subject}_*_meas-Tangent_relmat.tsv"))
        np.testing.assert_allclose(tangent, expected, atol=1e-4)
    correlation = ConnectivityMeasure(kind="correlation", cov_estimator=LedoitWolf(
        store_precision=False))
    correlation.fit(signals)
    _, ours = read_square(_only(group, "*_meas-PearsonCorrelation_desc-mean_relmat.tsv"))
    np.testing.assert_allclose(ours, correlation.mean_, atol=1e-6)


def test_qcfc_equals_the_interface_with_atlas_centroids(dataset, tmp_path):
    assert _group(dataset, "--include-flagged") == 0
    group = dataset["out"] / "group"
    relmats = [str(p).replace("_timeseries.tsv", "_meas-PearsonCorrelation_relmat.tsv")
               for _, p in sorted(dataset["timeseries"].items())]
    qc_files = [str(_only(p.parent, "*_desc-qc_bold.tsv"))
                for _, p in sorted(dataset["timeseries"].items())]
    # centroids of the toy atlas: each cube's centre (voxel corner + 1) * 2 mm
    corners = [(0, 0, 0), (0, 6, 0), (6, 0, 0), (6, 6, 0), (0, 0, 6), (6, 6, 6)]
    centroids = tmp_path / "centroids.tsv"
    centroids.write_text("name\tx\ty\tz\n" + "".join(
        f"{n}\t{2 * (x + 1)}\t{2 * (y + 1)}\t{2 * (z + 1)}\n"
        for n, (x, y, z) in zip(NAMES, corners, strict=True)))
    expected_dir = tmp_path / "expected"
    expected_dir.mkdir()
    expected = QCFC(in_files=relmats, mean_fd=[MEAN_FD[s] for s in sorted(MEAN_FD)],
                    regions_file=str(centroids)).run(cwd=str(expected_dir)).outputs
    summary = _only(group, "*_desc-qcfc_bold.tsv")
    edges = _only(group, "*_desc-qcfcedges_bold.tsv")
    ours = read_table(summary, name="s", header=True, delimiter="\t").values
    theirs = read_table(expected.out_file, name="s", header=True, delimiter="\t").values
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, equal_nan=True)
    ours = read_table(edges, name="e", header=True, delimiter="\t", numeric=False)
    theirs = read_table(expected.edges_file, name="e", header=True, delimiter="\t",
                        numeric=False)
    columns = ["qcfc", "p", "p_fdr", "distance"]
    np.testing.assert_allclose(ours.numbers(columns), theirs.numbers(columns), rtol=1e-9)
    assert np.isfinite(ours.numbers(["distance"])).all()  # the atlas gave the centroids
    # the same with the qc files as the interface reads them
    assert len(qc_files) == 6


def test_flagged_subjects_by_thresholds(tmp_path):
    atlases = tmp_path / "atlases"
    atlases.mkdir()
    labels, lut = _atlas(atlases)
    out = tmp_path / "maskers"
    # sub-06 by mean FD (0.8 > 0.5), sub-02 by censoring (36 of 60 = 60% > 50%)
    _participant_outputs(out, censored={"02": 36, "03": 12})
    code = main([str(tmp_path), str(out), "group", "--atlas", f"{labels}:{lut}",
                 "--no-reports"])
    assert code == 0
    table = read_table(out / "group" / "desc-flagged_subjects.tsv", name="f", header=True,
                       delimiter="\t", numeric=False)
    assert table.text("participant_id") == ["sub-02", "sub-06"]
    reasons = table.text("reason")
    assert "60.0% censored > 50%" in reasons[0] and "mean FD 0.800 mm > 0.5 mm" in reasons[1]
    sidecar = _only(out / "group", "*_desc-mean_relmat.json").read_text()
    assert '"NumberOfSubjects": 4' in sidecar  # flagged runs left out by default
    # stricter thresholds flag more (sub-03: 20% censored, sub-04: 0.3 mm)
    assert main([str(tmp_path), str(out), "group", "--atlas", f"{labels}:{lut}",
                 "--no-reports", "--qc-fd-max", "0.25", "--qc-censored-max", "15",
                 "--include-flagged"]) == 0
    table = read_table(out / "group" / "desc-flagged_subjects.tsv", name="f", header=True,
                       delimiter="\t", numeric=False)
    assert table.text("participant_id") == ["sub-02", "sub-03", "sub-04", "sub-06"]
    sidecar = _only(out / "group", "*_desc-mean_relmat.json").read_text()
    assert '"NumberOfSubjects": 6' in sidecar  # --include-flagged keeps them


def test_rerun_replaces_the_atlas_outputs(dataset):
    """A rerun with other kinds leaves no matrix of the earlier kinds for that atlas."""
    group = dataset["out"] / "group"
    assert _group(dataset, "--connectivity", "tangent") == 0
    assert len(list(group.glob("sub-*_meas-Tangent_relmat.tsv"))) == 5
    keep = group / "notes.txt"
    keep.write_text("mine")
    assert _group(dataset, "--connectivity", "covariance") == 0
    names = sorted(p.name for p in group.iterdir())
    assert not [n for n in names if "Tangent" in n or "geometricmean" in n], names
    assert _only(group, "*_meas-Covariance_desc-mean_relmat.tsv")
    assert keep.read_text() == "mine"  # not ours: untouched


def _bad(dataset, capsys, *extra: str) -> str:
    before = sorted(p for p in dataset["out"].rglob("*"))
    assert _group(dataset, *extra) == 2
    assert sorted(p for p in dataset["out"].rglob("*")) == before  # nothing written
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_inputs_one_line_exit_2_nothing_written(dataset, capsys):
    out = dataset["out"]
    # participant outputs missing: an atlas never run
    other = dataset["labels"].with_name("atlas-Other_dseg.nii.gz")
    other.write_bytes(dataset["labels"].read_bytes())
    err = _bad(dataset, capsys, "--atlas", str(other))
    assert "participant outputs missing" in err and "atlas-Other" in err
    # no correlation matrix (participant run without --connectivity)
    relmat = next(out.glob("sub-03/func/*_relmat.tsv"))
    saved = relmat.read_bytes()
    relmat.unlink()
    err = _bad(dataset, capsys)
    assert "participant outputs missing" in err and "--connectivity correlation" in err
    relmat.write_bytes(saved)
    # no QC table
    qc = next(out.glob("sub-04/func/*_desc-qc_bold.tsv"))
    saved = qc.read_bytes()
    qc.unlink()
    err = _bad(dataset, capsys)
    assert "desc-qc_bold.tsv" in err and "sub-04" in err
    qc.write_bytes(saved)
    # time series with different columns
    timeseries = dataset["timeseries"]["05"]
    saved = timeseries.read_bytes()
    timeseries.write_text(format_table(NAMES[:5], np.ones((10, 5))))
    err = _bad(dataset, capsys)
    assert "sub-05" in err and "same regions" in err
    # a subject whose time series is all n/a (every region emptied by the mask)
    timeseries.write_text(format_table(NAMES, np.full((10, len(NAMES)), np.nan)))
    err = _bad(dataset, capsys)
    assert "sub-05" in err and "every region is n/a" in err
    timeseries.write_bytes(saved)
    # fewer than 3 runs for QC-FC once the flagged ones are left out
    err = _bad(dataset, capsys, "--qc-fd-max", "0.14")
    assert "2 run(s) left of 6" in err and "at least 3" in err
    err = _bad(dataset, capsys, "--participant-label", "01", "02")
    assert "at least 3" in err
    assert not (out / "group").exists()


def test_group_report_lists_flagged_subjects(dataset):
    pytest.importorskip("matplotlib")
    assert main([str(dataset["fmriprep"]), str(dataset["out"]), "group", "--atlas",
                 dataset["atlas"]]) == 0
    page = (dataset["out"] / "group" / "group_report.html").read_text()
    assert 'id="g0-panel-qcfc-histogram"' in page
    assert 'id="g0-panel-distance-dependence"' in page
    assert '<tr class="bad"><td>sub-06</td>' in page
    assert "mean FD 0.800 mm &gt; 0.5 mm" in page

