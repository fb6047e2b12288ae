"""The repetition time: BIDS sidecar first, NIfTI header second, checked before any work.

fMRIPrep writes ``RepetitionTime`` in ``*_desc-preproc_bold.json``; the NIfTI header's
pixdim[4] means seconds only with a time unit. The workflows take ``t_r`` on their inputnode
so that a parent pipeline can pass fMRIPrep's.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from synthetic import make_epi, oblique_affine, write_fmriprep_tree

from nipype_maskers.cli import main
from nipype_maskers.cli.checks import run_repetition_time

STEM = "sub-01_task-rest_space-MNI152NLin2009cAsym"


def _rewrite_header(bold: Path, *, time_unit: str | None, pixdim4: float) -> None:
    """Write ``bold`` again with this time unit (None: 'unknown') and pixdim[4]."""
    img = nib.load(bold)
    new = nib.Nifti1Image(np.asarray(img.dataobj, dtype=np.float32), img.affine)
    new.header.set_xyzt_units("mm", time_unit)
    new.header["pixdim"][4] = pixdim4
    nib.save(new, bold)


def _write_bold(path: Path, *, time_unit: str | None = "sec", pixdim4: float = 2.0,
                sidecar: dict | None = None, n_volumes: int = 6) -> Path:
    data, _ = make_epi(n_volumes=n_volumes)
    nib.save(nib.Nifti1Image(data, oblique_affine()), path)
    _rewrite_header(path, time_unit=time_unit, pixdim4=pixdim4)
    if sidecar is not None:
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar))
    return path


# --------------------------------------------------------------------------------------------
# Where the TR comes from
# --------------------------------------------------------------------------------------------
def test_sidecar_first_then_header(tmp_path):
    both = _write_bold(tmp_path / f"{STEM}_desc-preproc_bold.nii.gz",
                       sidecar={"RepetitionTime": 2.0})
    assert run_repetition_time(both) == (
        2.0, f"BIDS sidecar '{STEM}_desc-preproc_bold.json'", None)
    header_only = _write_bold(tmp_path / "sub-02_task-rest_desc-preproc_bold.nii.gz",
                              time_unit="msec", pixdim4=1500.0)
    assert run_repetition_time(header_only) == (1.5, "NIfTI header", None)
    no_unit = _write_bold(tmp_path / "sub-03_task-rest_desc-preproc_bold.nii.gz",
                          time_unit=None, sidecar={"TaskName": "rest"})
    assert run_repetition_time(no_unit) == (None, "none", None)
    # the sidecar wins over a header without a time unit, and --t-r over both
    sidecar_only = _write_bold(tmp_path / "sub-04_task-rest_desc-preproc_bold.nii.gz",
                               time_unit=None, sidecar={"RepetitionTime": 0.8})
    assert run_repetition_time(sidecar_only).value == 0.8
    assert run_repetition_time(both, given=3.0) == (3.0, "--t-r", None)


def test_a_disagreement_above_one_percent_is_a_warning_naming_both(tmp_path):
    bold = _write_bold(tmp_path / f"{STEM}_desc-preproc_bold.nii.gz", pixdim4=2.0,
                       sidecar={"RepetitionTime": 2.5})
    t_r = run_repetition_time(bold)
    assert t_r.value == 2.5
    assert "2.5 s in its BIDS sidecar" in t_r.warning
    assert "2 s in its NIfTI header" in t_r.warning and "25%" in t_r.warning
    close = _write_bold(tmp_path / "sub-02_task-rest_desc-preproc_bold.nii.gz", pixdim4=2.0,
                        sidecar={"RepetitionTime": 2.019})
    assert run_repetition_time(close).warning is None  # 0.95%: header rounding, no warning


# --------------------------------------------------------------------------------------------
# Through the command line
# --------------------------------------------------------------------------------------------
@pytest.fixture
def tree(tmp_path):
    write_fmriprep_tree(tmp_path / "fmriprep", subjects=("01",), n_volumes=24)
    return tmp_path


def _argv(tree: Path, *extra) -> list[str]:
    return [str(tree / "fmriprep"), str(tree / "out"), "participant",
            "--atlas", str(tree / "atlas-Toy_dseg.nii.gz"), "--atlas-space",
            "MNI152NLin2009cAsym", "--denoise", "simple", "--no-reports",
            "--work-dir", str(tree / "work"), "--plugin", "Linear", *extra]


def _bold(tree: Path) -> Path:
    return tree / "fmriprep" / "sub-01" / "func" / f"{STEM}_desc-preproc_bold.nii.gz"


def test_the_sidecar_tr_is_used_and_a_disagreement_warned(tree, capsys):
    bold = _bold(tree)  # header: 2 s
    bold.with_name(bold.name.replace(".nii.gz", ".json")).write_text(
        json.dumps({"RepetitionTime": 1.6}))
    assert main(_argv(tree, "--high-pass", "0.02", "--no-denoised-bold")) == 0
    err = capsys.readouterr().err
    assert "RepetitionTime 1.6 s in its BIDS sidecar" in err and "2 s in its NIfTI header" in err
    sidecar = json.loads((tree / "out" / "sub-01" / "func"
                          / f"{STEM}_atlas-Toy_timeseries.json").read_text())
    assert sidecar["SamplingFrequency"] == pytest.approx(1 / 1.6)
    assert sidecar["RepetitionTimeSource"] == f"BIDS sidecar '{STEM}_desc-preproc_bold.json'"


def test_no_tr_with_a_filter_is_refused_before_any_work(tree, capsys):
    _rewrite_header(_bold(tree), time_unit=None, pixdim4=2.0)
    assert main(_argv(tree, "--low-pass", "0.1")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"{STEM}_desc-preproc_bold.nii.gz: no repetition time, which --low-pass need" \
        in err[0] and "pass --t-r SECONDS" in err[0]
    assert not (tree / "out").exists() and not (tree / "work").exists()
    assert main(_argv(tree, "--low-pass", "0.1", "--t-r", "2", "--no-denoised-bold")) == 0


def test_a_bad_sidecar_tr_is_refused_in_one_line(tree, capsys):
    bold = _bold(tree)
    bold.with_name(bold.name.replace(".nii.gz", ".json")).write_text(
        json.dumps({"RepetitionTime": "2s"}))
    assert main(_argv(tree)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{STEM}_desc-preproc_bold.json': RepetitionTime must be a " \
        "positive number of seconds, got '2s'" in err[0]
    assert not (tree / "out").exists()


def test_a_header_without_time_unit_runs_the_full_workflow(tree, capsys):
    """It crashed in the sidecar node (t_r Undefined, TypeError) and failed the run."""
    _rewrite_header(_bold(tree), time_unit=None, pixdim4=2.0)
    assert main(_argv(tree)) == 0
    func = tree / "out" / "sub-01" / "func"
    timeseries = np.loadtxt(func / f"{STEM}_atlas-Toy_timeseries.tsv", skiprows=1)
    assert timeseries.shape == (24, 3) and np.isfinite(timeseries).all()
    bold = json.loads((func / f"{STEM}_desc-denoised_bold.json").read_text())
    assert "RepetitionTime" not in bold  # unknown, and said nowhere
    assert nib.load(func / f"{STEM}_desc-denoised_bold.nii.gz").shape[3] == 24


# --------------------------------------------------------------------------------------------
# t_r on the workflows' inputnode
# --------------------------------------------------------------------------------------------
@pytest.fixture
def run_files(tmp_path):
    """A run whose header has no time unit, its mask, a labels atlas; and its twin with a
    2 s header (the reference)."""
    data, brain = make_epi(n_volumes=24)
    files = {}
    for name, unit in (("no_unit", None), ("with_unit", "sec")):
        path = tmp_path / f"sub-01_task-rest_acq-{name.replace('_', '')}_bold.nii.gz"
        nib.save(nib.Nifti1Image(data, oblique_affine()), path)
        _rewrite_header(path, time_unit=unit, pixdim4=2.0)
        files[name] = str(path)
    files["mask"] = str(tmp_path / "mask.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), oblique_affine()), files["mask"])
    labels = np.zeros(brain.shape, np.int16)
    labels[2:8, 3:10, 2:8], labels[8:14, 3:10, 2:8] = 1, 2
    files["labels"] = str(tmp_path / "atlas-Toy_dseg.nii.gz")
    nib.save(nib.Nifti1Image(labels, oblique_affine()), files["labels"])
    return files


def _node_result(workflow, base_dir: Path, node: str):
    workflow.base_dir = str(base_dir)
    graph = workflow.run(plugin="Linear")
    return next(n for n in graph.nodes() if n.name == node).result.outputs


def test_t_r_on_the_inputnode_of_every_cleaning_workflow(run_files, tmp_path):
    from nipype_maskers.workflows.denoise import init_denoise_wf
    from nipype_maskers.workflows.timeseries import LabelsAtlas, init_timeseries_wf

    from nipype_maskers.interfaces.cleaning import CleanImage
    from nipype_maskers.interfaces.regions import NiftiLabelsMasker

    clean = {"high_pass": 0.02, "filter": "cosine", "detrend": True}
    reference = CleanImage(in_file=run_files["with_unit"], mask_file=run_files["mask"],
                           **clean).run(cwd=str(tmp_path)).outputs
    assert reference.t_r == 2.0 and reference.t_r_source == "NIfTI header"

    # no time unit in the header: the TR comes from the inputnode (the CLI's sidecar value)
    denoise = init_denoise_wf(denoise_strategy=None, clean_args=clean, bold_shape=(17, 19, 15, 24))
    fields = denoise.get_node("inputnode").inputs
    fields.bold_file, fields.mask_file, fields.t_r = run_files["no_unit"], run_files["mask"], 2.0
    denoise.remove_nodes([denoise.get_node("load_confounds")])
    outputs = _node_result(denoise, tmp_path / "denoise", "clean_image")
    assert outputs.t_r == 2.0 and outputs.t_r_source == "input t_r"
    np.testing.assert_array_equal(nib.load(outputs.out_file).get_fdata(),
                                  nib.load(reference.out_file).get_fdata())

    masker = NiftiLabelsMasker(in_file=run_files["with_unit"], labels_file=run_files["labels"],
                               **clean).run(cwd=str(tmp_path)).outputs
    timeseries = init_timeseries_wf(labels=[LabelsAtlas("Toy", Path(run_files["labels"]))],
                                    clean_args=clean, bold_shape=(17, 19, 15, 24))
    fields = timeseries.get_node("inputnode").inputs
    fields.bold_file, fields.t_r = run_files["no_unit"], 2.0
    outputs = _node_result(timeseries, tmp_path / "timeseries", "labels_Toy")
    assert outputs.t_r == 2.0 and outputs.t_r_source == "input t_r"
    assert Path(outputs.out_file).read_text() == Path(masker.out_file).read_text()


def test_the_inputnode_t_r_wins_over_the_header_and_the_sidecars_say_so(run_files, tmp_path):
    from nipype_maskers.workflows.base import init_maskers_wf
    from nipype_maskers.workflows.timeseries import LabelsAtlas

    workflow = init_maskers_wf(output_dir=tmp_path / "out", bold_file=run_files["with_unit"],
                               mask_strategy="fmriprep", denoise_strategy=None,
                               clean_args={"detrend": True},
                               labels=[LabelsAtlas("Toy", Path(run_files["labels"]))])
    fields = workflow.get_node("inputnode").inputs
    fields.bold_file, fields.mask_file = run_files["with_unit"], run_files["mask"]
    fields.t_r, fields.t_r_source = 1.25, "fMRIPrep's BOLD sidecar"
    workflow.base_dir = str(tmp_path / "work")
    workflow.run(plugin="Linear")
    func = tmp_path / "out" / "sub-01" / "func"
    stem = "sub-01_task-rest_acq-withunit"
    bold = json.loads((func / f"{stem}_desc-denoised_bold.json").read_text())
    assert bold["RepetitionTime"] == 1.25  # not the header's 2 s
    assert bold["RepetitionTimeSource"] == "fMRIPrep's BOLD sidecar"
    assert nib.load(func / f"{stem}_desc-denoised_bold.nii.gz").header.get_zooms()[3] == 1.25
    timeseries = json.loads((func / f"{stem}_atlas-Toy_timeseries.json").read_text())
    assert timeseries["SamplingFrequency"] == 0.8


def test_a_factory_t_r_is_kept_when_the_inputnode_gives_none(run_files, tmp_path):
    """The inputnode's t_r, left unset, must not erase ``clean_args['t_r']``."""
    from nipype_maskers.workflows.denoise import init_denoise_wf

    denoise = init_denoise_wf(denoise_strategy=None, clean_args={"t_r": 1.5, "detrend": True},
                              bold_shape=(17, 19, 15, 24))
    fields = denoise.get_node("inputnode").inputs
    fields.bold_file, fields.mask_file = run_files["with_unit"], run_files["mask"]
    denoise.remove_nodes([denoise.get_node("load_confounds")])
    outputs = _node_result(denoise, tmp_path / "denoise", "clean_image")
    assert outputs.t_r == 1.5 and outputs.t_r_source == "input t_r"
