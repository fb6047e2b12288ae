"""Connectivity matrices and denoising QC through the command line and the workflows (M9, G1).

A tiny fMRIPrep-like tree (tests/synthetic.py) whose subject has two runs of one task, with
fMRIPrep's ``framewise_displacement`` column; the command line's ``--connectivity`` outputs
are compared with the interfaces run directly on the written time series, with nilearn's
``ConnectivityMeasure``, and with the z-scored concatenation of the runs computed by hand.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from synthetic import write_fmriprep_tree
from validator import brief, validate

from nipype_maskers.cli import main
from nipype_maskers.core.io.tables import read_table
from nipype_maskers.interfaces.connectivity import ConnectivityMatrix, read_square

N_VOLUMES = 40
SPACE = "space-MNI152NLin2009cAsym"
RUN_STEMS = [f"sub-01_task-rest_run-{run}_{SPACE}" for run in (1, 2)]
KINDS = {"correlation": "PearsonCorrelation", "partial correlation": "PartialCorrelation"}


def add_framewise_displacement(confounds: Path, seed: int) -> None:
    """Complete a synthetic confounds TSV as fMRIPrep writes it: ``framewise_displacement``
    (``n/a`` first; three spikes that 'scrubbing' censors), ``dvars``, ``std_dvars`` and the
    csf / white matter expansions the 'scrubbing' strategy needs."""
    table = read_table(confounds, name="confounds", header=True, delimiter="\t",
                       numeric=False)
    lines = confounds.read_text().splitlines()
    n_rows = len(lines) - 1
    rng = np.random.default_rng(seed)
    fd = np.abs(rng.normal(0.08, 0.03, n_rows))
    fd[[7, 8, 20]] = 0.9
    columns = {"framewise_displacement": fd, "dvars": np.abs(rng.normal(20, 2, n_rows)),
               "std_dvars": np.abs(rng.normal(1.0, 0.1, n_rows))}
    for name in ("csf", "white_matter"):
        x = table.numbers([name])[:, 0]
        d = np.concatenate([[np.nan], np.diff(x)])
        columns.update({f"{name}_derivative1": d, f"{name}_power2": x ** 2,
                        f"{name}_derivative1_power2": d ** 2})
    for name in ("framewise_displacement", "dvars", "std_dvars"):
        columns[name][0] = np.nan
    header = lines[0] + "\t" + "\t".join(columns)
    rows = [line + "\t" + "\t".join("n/a" if np.isnan(v[i]) else f"{v[i]:.6f}"
                                      for v in columns.values())
            for i, line in enumerate(lines[1:])]
    confounds.write_text("\n".join([header, *rows]) + "\n")


@pytest.fixture
def tree(tmp_path) -> Path:
    """sub-01 with two runs of task-rest (the synthetic tree's two subjects, renamed)."""
    write_fmriprep_tree(tmp_path / "fmriprep", subjects=("01", "02"), n_volumes=N_VOLUMES)
    func = tmp_path / "fmriprep" / "sub-01" / "func"
    for run, subject in ((1, "01"), (2, "02")):
        folder = tmp_path / "fmriprep" / f"sub-{subject}" / "func"
        for path in sorted(folder.iterdir()):
            name = path.name.replace(f"sub-{subject}_task-rest_",
                                     f"sub-01_task-rest_run-{run}_")
            shutil.move(path, func / name)
    shutil.rmtree(tmp_path / "fmriprep" / "sub-02")
    for run in (1, 2):
        add_framewise_displacement(func / f"sub-01_task-rest_run-{run}_desc-confounds_"
                                   "timeseries.tsv", seed=run)
    return tmp_path


def _run(tree: Path, capsys, *options: str, out: str = "out") -> tuple[int, str, str]:
    code = main([str(tree / "fmriprep"), str(tree / out), "participant",
                 "--atlas", str(tree / "atlas-Toy_dseg.nii.gz"),
                 "--seeds", str(tree / "atlas-Balls_seeds.tsv"), "--radius", "5",
                 "--atlas-space", "MNI152NLin2009cAsym", "--no-denoised-bold",
                 "--work-dir", str(tree / "work"), "--plugin", "Linear", *options])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _timeseries(path: Path) -> tuple[list[str], np.ndarray]:
    table = read_table(path, name="timeseries", header=True, delimiter="\t")
    return list(table.columns), np.asarray(table.values, dtype=float)


def _nilearn_matrix(signals: np.ndarray, kind: str) -> np.ndarray:
    from nilearn.connectome import ConnectivityMeasure

    return ConnectivityMeasure(kind=kind).fit_transform([signals])[0]


def _direct_matrix(in_file: Path, kind: str, tmp: Path) -> tuple[list[str], np.ndarray]:
    folder = tmp / f"direct_{in_file.stem}_{kind.replace(' ', '_')}"
    folder.mkdir(parents=True, exist_ok=True)
    result = ConnectivityMatrix(in_file=str(in_file), kind=kind).run(cwd=str(folder))
    return read_square(result.outputs.out_file)


def _kept_volumes_and_regressors(confounds: Path, strategy: str, tmp: Path):
    from nipype_maskers.interfaces.cleaning import LoadConfounds

    folder = tmp / f"confounds_{confounds.stem}"
    folder.mkdir(parents=True, exist_ok=True)
    return LoadConfounds(confounds_file=str(confounds), denoise_strategy=strategy).run(
        cwd=str(folder)).outputs


# --------------------------------------------------------------------------------------------
def test_connectivity_matrices_and_qc_of_each_run(tree, capsys):
    """--connectivity correlation partial_correlation: per run and atlas one relmat per
    kind equal to ConnectivityMatrix on the written time series and to nilearn's
    ConnectivityMeasure (1e-6); per run the QC table equal to DenoisingQC's; sidecars with
    the time series' provenance; the report shows them; the folder is valid BIDS."""
    from nipype_maskers.interfaces.qc import DenoisingQC
    from nipype_maskers.interfaces.regions import NiftiLabelsMasker

    code, out, err = _run(tree, capsys, "--denoise", "scrubbing", "--connectivity",
                          "correlation", "partial_correlation")
    assert code == 0, (out, err)
    func = tree / "out" / "sub-01" / "func"
    source = tree / "fmriprep" / "sub-01" / "func"
    for stem in RUN_STEMS:
        for atlas in ("Toy", "Balls"):
            series = func / f"{stem}_atlas-{atlas}_timeseries.tsv"
            names, signals = _timeseries(series)
            for kind, measure in KINDS.items():
                written = func / f"{stem}_atlas-{atlas}_meas-{measure}_relmat.tsv"
                got_names, got = read_square(written)
                direct_names, direct = _direct_matrix(series, kind, tree / "direct")
                assert got_names == direct_names == names
                np.testing.assert_array_equal(got, direct)
                np.testing.assert_allclose(got, _nilearn_matrix(signals, kind), atol=1e-6)
                sidecar = json.loads(written.with_suffix(".json").read_text())
                series_sidecar = json.loads(series.with_suffix(".json").read_text())
                assert sidecar["Measure"] == kind
                assert sidecar["Estimator"] == "LedoitWolf"
                assert sidecar["NumberOfVolumes"] == signals.shape[0]
                assert sidecar["Atlas"] == atlas and sidecar["AtlasSpace"] == (
                    "MNI152NLin2009cAsym")
                # provenance as the time series': sources, hashes, parameters, censoring
                for key in ("Sources", "SourceSHA256", "InputSHA256", "Parameters",
                            "CensoredVolumes", "Software"):
                    assert sidecar[key] == series_sidecar[key], key
        # the run's QC: DenoisingQC on the same inputs, run directly
        confounds = source / f"{stem.replace('_' + SPACE, '')}_desc-confounds_timeseries.tsv"
        loaded = _kept_volumes_and_regressors(confounds, "scrubbing", tree / "direct")
        bold = source / f"{stem}_desc-preproc_bold.nii.gz"
        raw = NiftiLabelsMasker(in_file=str(bold), labels_file=str(tree / "atlas-Toy_dseg.nii.gz"),
                                mask_file=str(source / f"{stem}_desc-brain_mask.nii.gz"))
        raw_dir = tree / "direct" / f"raw_{stem}"
        raw_dir.mkdir(parents=True)
        raw_file = raw.run(cwd=str(raw_dir)).outputs.out_file
        series = [func / f"{stem}_atlas-{atlas}_timeseries.tsv" for atlas in ("Toy", "Balls")]
        qc_dir = tree / "direct" / f"qc_{stem}"
        qc_dir.mkdir(parents=True)
        direct = DenoisingQC(confounds_file=str(confounds), t_r=2.0,
                             sample_mask_file=loaded.sample_mask_file,
                             regressors_file=loaded.out_file, raw_file=raw_file,
                             clean_file=str(series[0]),
                             timeseries_files=[str(s) for s in series]).run(cwd=str(qc_dir))
        written = read_table(func / f"{stem}_desc-qc_bold.tsv", name="qc", header=True,
                             delimiter="\t", numeric=False)
        figures = direct.outputs.figures
        assert written.columns == list(figures)
        assert figures["n_volumes_censored"] > 0  # scrubbing censored the high-FD volumes
        for column in written.columns:
            text = written.text(column)[0]
            expected = figures[column]
            if expected is None:
                assert text == "n/a", column
            else:
                assert float(text) == pytest.approx(expected, rel=1e-12, abs=1e-12), column
        qc_sidecar = json.loads((func / f"{stem}_desc-qc_bold.json").read_text())
        assert qc_sidecar["mean_fd"]["Units"] == "mm"
        assert qc_sidecar["Parameters"]["RepetitionTime"] == 2.0  # the QC's own parameters
        assert qc_sidecar["Parameters"]["DenoiseStrategy"] == "scrubbing"  # and the run's
        report = (func / f"{stem}_report.html").read_text()
        assert "Connectivity and denoising QC" in report
        assert "atlas Toy: PearsonCorrelation" in report and "mean_fd" in report
        assert report.count('id="m1-panel-matrix"') == 1  # heatmap SVGs, ids prefixed
    bidsignore = (tree / "out" / ".bidsignore").read_text().splitlines()
    assert {"*_relmat.tsv", "*_relmat.json", "*_desc-qc_bold.tsv",
            "*_desc-qc_bold.json"} <= set(bidsignore)
    errors, warnings = validate(tree / "out")
    assert errors == [], brief(errors)
    assert warnings == [], brief(warnings)


def test_combine_runs_is_the_matrix_of_the_zscored_concatenation(tree, capsys):
    """--combine-runs: per subject, task and atlas, the matrix of the runs' signals each
    z-scored (ddof=1) then concatenated, censored volumes excluded, named without run."""
    code, out, err = _run(tree, capsys, "--denoise", "scrubbing", "--censored", "nan",
                          "--connectivity", "correlation", "partial_correlation",
                          "--combine-runs", "--no-reports")
    assert code == 0, (out, err)
    func = tree / "out" / "sub-01" / "func"
    for atlas in ("Toy", "Balls"):
        blocks = []
        for stem in RUN_STEMS:
            names, signals = _timeseries(func / f"{stem}_atlas-{atlas}_timeseries.tsv")
            kept = signals[~np.all(np.isnan(signals), axis=1)]  # censored rows: n/a
            assert kept.shape[0] < signals.shape[0] == N_VOLUMES
            blocks.append((kept - kept.mean(axis=0)) / kept.std(axis=0, ddof=1))
        by_hand = np.concatenate(blocks)
        for kind, measure in KINDS.items():
            combined = func / f"sub-01_task-rest_{SPACE}_atlas-{atlas}_meas-{measure}_relmat.tsv"
            got_names, got = read_square(combined)
            assert got_names == names
            np.testing.assert_allclose(got, _nilearn_matrix(by_hand, kind), atol=1e-6)
            sidecar = json.loads(combined.with_suffix(".json").read_text())
            assert sidecar["NumberOfVolumes"] == by_hand.shape[0]
            assert sidecar["CombinedRuns"] == [
                f"{stem}_atlas-{atlas}_timeseries.tsv" for stem in RUN_STEMS]
            assert sidecar["Sources"][0].endswith(f"{RUN_STEMS[0]}_desc-preproc_bold.nii.gz")
    errors, _ = validate(tree / "out")
    assert errors == [], brief(errors)


def test_a_surface_run_gets_its_matrices(tmp_path, capsys):
    """A CIFTI run with --connectivity: its matrices and QC, as a volume run's."""
    from test_surface_runs import CIFTI_NAME, DLABEL, write_cifti_run

    write_fmriprep_tree(tmp_path / "fmriprep", subjects=("01",), n_volumes=N_VOLUMES)
    func = tmp_path / "fmriprep" / "sub-01" / "func"
    add_framewise_displacement(func / "sub-01_task-rest_desc-confounds_timeseries.tsv", 3)
    (tmp_path / "atlases").mkdir()
    write_cifti_run(func, tmp_path / "atlases")
    code = main([str(tmp_path / "fmriprep"), str(tmp_path / "out"), "participant",
                 "--space", "fsLR", "--den", "91k", "--atlas", str(tmp_path / "atlases" / DLABEL),
                 "--connectivity", "correlation", "--work-dir", str(tmp_path / "work"),
                 "--plugin", "Linear"])
    captured = capsys.readouterr()
    assert code == 0, (captured.out, captured.err)
    out = tmp_path / "out" / "sub-01" / "func"
    stem = "sub-01_task-rest_space-fsLR_atlas-Parc_den-91k"
    names, signals = _timeseries(out / f"{stem}_timeseries.tsv")
    got_names, got = read_square(out / f"{stem}_meas-PearsonCorrelation_relmat.tsv")
    assert got_names == names
    np.testing.assert_allclose(got, _nilearn_matrix(signals, "correlation"), atol=1e-6)
    assert (out / "sub-01_task-rest_space-fsLR_den-91k_desc-qc_bold.tsv").is_file()
    report = (out / "sub-01_task-rest_space-fsLR_den-91k_report.html").read_text()
    assert "Connectivity and denoising QC" in report
    assert CIFTI_NAME.startswith("sub-01_task-rest_space-fsLR_den-91k")
    errors, _ = validate(tmp_path / "out")
    assert errors == [], brief(errors)


def _collect(out_files, entities, metadata):
    return out_files, entities, metadata


def test_unwritten_outputs_carry_the_matrices_and_qc(tree):
    """write_derivatives=False: the matrices and the QC table are among the outputnode's
    files, with their entities (meas, desc) and their sidecar content."""
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe
    from nipype_maskers.workflows.base import init_maskers_wf
    from nipype_maskers.workflows.timeseries import LabelsAtlas

    source = tree / "fmriprep" / "sub-01" / "func"
    stem = RUN_STEMS[0]
    wf = init_maskers_wf(bold_file=source / f"{stem}_desc-preproc_bold.nii.gz",
                         labels=[LabelsAtlas("Toy", tree / "atlas-Toy_dseg.nii.gz")],
                         denoised_bold=False, clean_args={"standardize": "zscore_sample"},
                         connectivity=["correlation", "partial_correlation"],
                         write_derivatives=False)
    entities = wf.get_node("outputnode").inputs.entities
    assert entities[-3:] == [
        {"atlas": "Toy", "meas": "PearsonCorrelation", "suffix": "relmat", "extension": ".tsv"},
        {"atlas": "Toy", "meas": "PartialCorrelation", "suffix": "relmat", "extension": ".tsv"},
        {"desc": "qc", "suffix": "bold", "extension": ".tsv"}]
    inputs = wf.get_node("inputnode").inputs
    inputs.bold_file = str(source / f"{stem}_desc-preproc_bold.nii.gz")
    inputs.mask_file = str(source / f"{stem}_desc-brain_mask.nii.gz")
    inputs.confounds_file = str(source / "sub-01_task-rest_run-1_desc-confounds_timeseries.tsv")
    parent = pe.Workflow(name="parent", base_dir=str(tree / "work_parent"))
    collect = pe.Node(niu.Function(function=_collect, input_names=[
        "out_files", "entities", "metadata"], output_names=["out"]), name="collect")
    parent.connect([(wf, collect, [(f"outputnode.{field}", field) for field in (
        "out_files", "entities", "metadata")])])
    graph = parent.run(plugin="Linear")
    out_files, got_entities, metadata = next(
        n for n in graph.nodes() if n.name == "collect").result.outputs.out
    assert got_entities == entities
    timeseries = out_files[entities.index({"atlas": "Toy", "suffix": "timeseries",
                                           "extension": ".tsv"})]
    _, signals = _timeseries(Path(timeseries))
    _, matrix = read_square(out_files[-3])
    np.testing.assert_allclose(matrix, _nilearn_matrix(signals, "correlation"), atol=1e-6)
    assert metadata[-3]["Measure"] == "correlation"
    assert metadata[-3]["NumberOfVolumes"] == signals.shape[0]
    assert metadata[-1]["mean_fd"]["Units"] == "mm"
    assert Path(out_files[-1]).name.endswith("_desc-qc_bold.tsv")


@pytest.mark.parametrize(("options", "message"), [
    (["--fisher-z"], "--fisher-z: only with --connectivity"),
    (["--combine-runs"], "--combine-runs: only with --connectivity"),
])
def test_companion_options_need_connectivity(tree, capsys, options, message):
    code, _, err = _run(tree, capsys, *options)
    assert code == 2
    assert message in err
    assert not (tree / "out").exists() and not (tree / "work").exists()


def test_confounds_without_framewise_displacement_are_refused(tree, capsys):
    confounds = tree / "fmriprep" / "sub-01" / "func" / \
        "sub-01_task-rest_run-1_desc-confounds_timeseries.tsv"
    lines = confounds.read_text().splitlines()
    position = lines[0].split("\t").index("framewise_displacement")
    confounds.write_text("\n".join("\t".join(v for i, v in enumerate(line.split("\t"))
                                             if i != position) for line in lines) + "\n")
    code, _, err = _run(tree, capsys, "--connectivity", "correlation")
    assert code == 2
    assert "no framewise_displacement column" in err and confounds.name in err
    assert not (tree / "out").exists()


def test_fisher_z_applies_to_the_correlations_only(tree, capsys):
    """--fisher-z: the correlation matrix is arctanh of nilearn's (diagonal n/a, as
    ConnectivityMatrix writes it); the covariance is left as it is."""
    code, out, err = _run(tree, capsys, "--run", "1", "--connectivity", "correlation",
                          "covariance", "--fisher-z", "--no-reports")
    assert code == 0, (out, err)
    func = tree / "out" / "sub-01" / "func"
    stem = RUN_STEMS[0]
    _, signals = _timeseries(func / f"{stem}_atlas-Toy_timeseries.tsv")
    _, z = read_square(func / f"{stem}_atlas-Toy_meas-PearsonCorrelation_relmat.tsv")
    expected = _nilearn_matrix(signals, "correlation")
    off = ~np.eye(len(expected), dtype=bool)
    np.testing.assert_allclose(z[off], np.arctanh(expected[off]), atol=1e-6)
    _, covariance = read_square(func / f"{stem}_atlas-Toy_meas-Covariance_relmat.tsv")
    np.testing.assert_allclose(covariance, _nilearn_matrix(signals, "covariance"), atol=1e-6)
    sidecars = [json.loads((func / f"{stem}_atlas-Toy_meas-{m}_relmat.json").read_text())
                for m in ("PearsonCorrelation", "Covariance")]
    assert [s["FisherZ"] for s in sidecars] == [True, False]


def test_runs_without_a_run_entity_are_not_combined(tmp_path, capsys):
    """--combine-runs with a lone run named without run-: its matrices are the task's, no
    second file of the same name; the note says so."""
    write_fmriprep_tree(tmp_path / "fmriprep", subjects=("01",), n_volumes=N_VOLUMES)
    add_framewise_displacement(tmp_path / "fmriprep" / "sub-01" / "func" /
                               "sub-01_task-rest_desc-confounds_timeseries.tsv", 4)
    code, out, err = _run(tmp_path, capsys, "--connectivity", "correlation", "--combine-runs",
                          "--no-reports")
    assert code == 0, (out, err)
    assert "note: --combine-runs: " in out and "no run entity, not combined" in out
    func = tmp_path / "out" / "sub-01" / "func"
    assert sorted(p.name for p in func.glob("*_relmat.tsv")) == [
        f"sub-01_task-rest_{SPACE}_atlas-{atlas}_meas-PearsonCorrelation_relmat.tsv"
        for atlas in ("Balls", "Toy")]
