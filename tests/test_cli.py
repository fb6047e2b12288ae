"""The command line: bad arguments are one line and exit code 2, before any work starts."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from synthetic import make_epi, oblique_affine

from nipype_maskers.cli import main
from nipype_maskers.cli.parser import atlas_name


@pytest.fixture
def fmriprep(tmp_path):
    """A minimal fMRIPrep tree: one subject, one run, with mask (no data worth processing)."""
    func = tmp_path / "fmriprep" / "sub-01" / "func"
    func.mkdir(parents=True)
    data, brain = make_epi(n_volumes=4)
    stem = "sub-01_task-rest_space-MNI152NLin2009cAsym"
    nib.save(nib.Nifti1Image(data, oblique_affine()), func / f"{stem}_desc-preproc_bold.nii.gz")
    nib.save(nib.Nifti1Image(brain.astype(np.int8), oblique_affine()),
             func / f"{stem}_desc-brain_mask.nii.gz")
    (func / "sub-01_task-rest_desc-confounds_timeseries.tsv").write_text(
        "trans_x\n" + "\n".join("0.0" for _ in range(4)) + "\n")
    atlas = tmp_path / "atlas-Demo_dseg.nii.gz"
    nib.save(nib.Nifti1Image(brain.astype(np.int16), oblique_affine()), atlas)
    return tmp_path


def _run(capsys, argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--participant-label", "07"], "participant"),
        (["--task", "nback"], "task"),
        (["--atlas", "/no/such/atlas.nii.gz"], "--atlas: no such file or folder"),
        (["--radius", "5"], "--radius: only meaningful with --seeds"),
        (["--low-pass", "0.01", "--high-pass", "0.1"], "--high-pass (0.1 Hz) must be below"),
        (["--plugin-args", "{not json"], "--plugin-args: not valid JSON"),
        (["--sbatch-args=--time=1"], "--sbatch-args: only with --plugin SLURM"),
        (["--participant-label", "../../etc"], "participant"),
        (["--no-denoised-bold"], "nothing to do"),
        (["--omp-nthreads", "0"], "--omp-nthreads: must be >= 1, got 0"),
    ],
)
def test_bad_arguments_exit_2_in_one_line(fmriprep, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    code, err = _run(capsys, [fmriprep / "fmriprep", out, "participant",
                              "--work-dir", tmp_path / "work", *extra])
    assert code == 2
    assert len(err) == 1 and message in err[0], err
    assert not out.exists() and not (tmp_path / "work").exists()


def test_missing_fmriprep_folder(tmp_path, capsys):
    code, err = _run(capsys, [tmp_path / "nothing", tmp_path / "out", "participant"])
    assert code == 2 and "FMRIPREP_DIR: no such folder" in err[0]


def test_argparse_errors_also_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["a", "b", "session"])  # no such analysis level ("group" is one now)
    assert exc.value.code == 2


def test_extract_needs_bids_names(tmp_path, capsys):
    bold = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((3, 3, 3, 2), np.float32), np.eye(4)), bold)
    code, err = _run(capsys, ["extract", "--bold", bold, "--out", tmp_path / "o",
                              "--denoise", "none"])
    assert code == 2 and "carries no sub-<label> entity" in err[0]


def test_atlas_names_are_safe(tmp_path):
    assert atlas_name(tmp_path / "atlas-Schaefer400_dseg.nii.gz") == "Schaefer400"
    assert atlas_name(tmp_path / "power_2011.csv") == "Power2011"
    assert atlas_name(tmp_path / ".." / "..evil..name.nii.gz") == "EvilName"
    with pytest.raises(ValueError, match="atlas"):
        atlas_name(tmp_path / "....nii.gz")


def test_the_program_exits_with_mains_code(monkeypatch):
    import gc

    from nipype_maskers.cli import program as cli

    monkeypatch.setattr(cli, "main", lambda: 3)
    try:
        with pytest.raises(SystemExit) as exited:
            cli.run()
        assert exited.value.code == 3
        assert gc.get_freeze_count() > 0  # no last collection on the way out
    finally:
        gc.unfreeze()
