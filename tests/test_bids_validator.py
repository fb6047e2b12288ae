"""The official BIDS validator accepts our derivatives, and a rerun gives the same bytes.

The command line's full workflow runs on a small fMRIPrep-like tree (two subjects, a computed
mask, a labels atlas, seeds, the denoised BOLD, confounds and reports), then
``bids-validator-deno`` (the test extra pins it) checks the output folder.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nipype.pipeline import engine as pe
from synthetic import write_fmriprep_tree
from validator import brief, validate

from nipype_maskers.bids_dataset import BIDSIGNORE_COMMENT, UNDEFINED_IN_BIDS
from nipype_maskers.cli import main
from nipype_maskers.interfaces.bids import WriteDerivatives

#: Sidecar fields that may legitimately differ between two runs on the same inputs. None:
#: the sidecars name their inputs by BIDS URI or file name, never by work-dir path or date.
FIELDS_THAT_MAY_DIFFER: frozenset[str] = frozenset()

#: Files compared byte for byte between two runs: the data and their sidecars.
DATA_EXTENSIONS = (".nii.gz", ".tsv", ".json")


def _run_cli(tree: Path, out: str, work: str) -> Path:
    argv = [str(tree / "fmriprep"), str(tree / out), "participant",
            "--atlas", str(tree / "atlas-Toy_dseg.nii.gz"),
            "--seeds", str(tree / "atlas-Balls_seeds.tsv"), "--radius", "5",
            "--mask-strategy", "epi", "--denoise", "simple",
            "--work-dir", str(tree / work), "--nprocs", "2"]
    assert main(argv) == 0
    return tree / out


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("validator")
    write_fmriprep_tree(root / "fmriprep")
    return root


@pytest.fixture(scope="module")
def first_output(tree) -> Path:
    return _run_cli(tree, "out1", "work1")


def test_validator_accepts_the_cli_derivatives(first_output):
    stem = "sub-01/func/sub-01_task-rest_space-MNI152NLin2009cAsym"
    for name in ("desc-brain_mask.nii.gz", "desc-denoised_bold.nii.gz", "report.html",
                 "desc-confounds_timeseries.tsv", "atlas-Toy_timeseries.tsv"):
        assert (first_output / f"{stem}_{name}").is_file(), name  # all kinds were checked
    errors, warnings = validate(first_output)
    assert brief(errors) == []
    assert brief(warnings) == []
    bold = json.loads((first_output / f"{stem}_desc-denoised_bold.json").read_text())
    mni = "MNI152NLin2009cAsym"
    assert bold["SpatialReference"] == (
        f"https://templateflow.s3.amazonaws.com/tpl-{mni}/tpl-{mni}_res-01_T1w.nii.gz")
    assert bold["Description"].startswith("The preprocessed BOLD run cleaned")
    mask = json.loads((first_output / f"{stem}_desc-brain_mask.json").read_text())
    assert mask["SpatialReference"] == bold["SpatialReference"] and mask["Type"] == "Brain"
    ignore = (first_output / ".bidsignore").read_text().splitlines()
    assert ignore == [BIDSIGNORE_COMMENT, *UNDEFINED_IN_BIDS]
    readme = (first_output / "README.md").read_text()
    assert "nipype-maskers" in readme and (first_output.parent / "fmriprep").as_uri() in readme


def test_rerun_gives_byte_identical_files(tree, first_output):
    second_output = _run_cli(tree, "out2", "work2")  # its own work dir: nothing reused

    def files(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in root.rglob("*")
                if p.is_file() and p.name.endswith(DATA_EXTENSIONS)}

    names = files(first_output)
    assert names == files(second_output)
    assert sum(n.endswith(".nii.gz") for n in names) == 4  # mask + denoised BOLD, 2 runs
    different = []
    for name in sorted(names):
        first, second = (first_output / name).read_bytes(), (second_output / name).read_bytes()
        if name.endswith(".json") and FIELDS_THAT_MAY_DIFFER:
            first, second = ({k: v for k, v in json.loads(text).items()
                              if k not in FIELDS_THAT_MAY_DIFFER} for text in (first, second))
        if first != second:
            different.append(name)
    assert different == []
    for name in names:  # what makes .nii.gz reproducible: no date, no file name in the header
        if name.endswith(".nii.gz"):
            header = (first_output / name).read_bytes()[:10]
            assert header[:2] == b"\x1f\x8b" and header[4:8] == b"\0\0\0\0", name  # mtime 0
            assert not header[3] & 0x08, name  # FNAME flag unset


# --- sidecars and dataset files, through WriteDerivatives alone -----------------------------

def _nifti(path: Path, n_volumes: int = 3) -> Path:
    """A tiny 4D float32 run, gzip-compressed without date or name (nibabel's own writer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.zeros((4, 5, 6, n_volumes), np.float32), np.diag([2, 2, 2, 1]))
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 2.0
    nib.save(img, path)
    with gzip.open(path) as stream:  # checked: the helper must not bring gzip warnings
        stream.read(1)
    return path


def _write(tmp_path: Path, name: str, source: Path, out: Path, in_file: Path):
    node = pe.Node(WriteDerivatives(), name=name, base_dir=str(tmp_path / "work"))
    node.inputs.base_directory = str(out)
    node.inputs.source_file = str(source)
    node.inputs.in_files = [str(in_file)]
    node.inputs.entities = [{"desc": "denoised", "suffix": "bold"}]
    node.inputs.metadata = [{"RepetitionTime": 2.0, "SkullStripped": True,
                             "Description": "A cleaned run"}]
    return node.run().outputs


def test_other_spaces_point_at_fmriprep_reference_images(tmp_path):
    """Non-template spaces REQUIRE a SpatialReference: the run's boldref as a BIDS URI."""
    fmriprep = tmp_path / "fmriprep"
    func = fmriprep / "sub-01" / "func"
    t1w = _nifti(func / "sub-01_task-rest_space-T1w_desc-preproc_bold.nii.gz")
    _nifti(func / "sub-01_task-rest_space-T1w_boldref.nii.gz", 1)
    native = _nifti(func / "sub-01_task-rest_run-1_desc-preproc_bold.nii.gz")
    _nifti(func / "sub-01_task-rest_run-1_desc-coreg_boldref.nii.gz", 1)
    alone = _nifti(func / "sub-01_task-rest_run-2_desc-preproc_bold.nii.gz")  # no boldref
    clean = _nifti(tmp_path / "in" / "clean.nii.gz")
    out = tmp_path / "out"
    expected = {
        t1w: "bids:fmriprep:sub-01/func/sub-01_task-rest_space-T1w_boldref.nii.gz",
        native: "bids:fmriprep:sub-01/func/sub-01_task-rest_run-1_desc-coreg_boldref.nii.gz",
        alone: "bids:fmriprep:sub-01/func/sub-01_task-rest_run-2_desc-preproc_bold.nii.gz",
    }
    for index, (source, reference) in enumerate(expected.items()):
        written = _write(tmp_path, f"write{index}", source, out, clean)
        sidecar = json.loads(Path(written.out_sidecars[0]).read_text())
        assert sidecar["SpatialReference"] == reference
    errors, warnings = validate(out)
    assert brief(errors) == []
    assert brief(warnings) == []


def test_dataset_files_merge_with_the_users_and_rerun_unchanged(tmp_path):
    fmriprep = tmp_path / "fmriprep"
    source = _nifti(fmriprep / "sub-01" / "func"
                    / "sub-01_task-rest_space-MNI152NLin6Asym_res-2_desc-preproc_bold.nii.gz")
    clean = _nifti(tmp_path / "in" / "clean.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    user_lines = ["# mine", "scratch/", "*_report.html"]
    (out / ".bidsignore").write_text("\n".join(user_lines) + "\n")
    (out / "README").write_text("The user's own words.\n")
    written = _write(tmp_path, "first", source, out, clean)
    missing = [p for p in UNDEFINED_IN_BIDS if p != "*_report.html"]
    assert (out / ".bidsignore").read_text().splitlines() == [
        *user_lines, BIDSIGNORE_COMMENT, *missing]
    assert (out / "README").read_text() == "The user's own words.\n"
    assert not (out / "README.md").exists()  # one README only (the validator warns on two)
    sidecar = json.loads(Path(written.out_sidecars[0]).read_text())
    assert sidecar["SpatialReference"] == ("https://templateflow.s3.amazonaws.com/"
                                           "tpl-MNI152NLin6Asym/tpl-MNI152NLin6Asym_res-02_T1w"
                                           ".nii.gz")
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
              for p in out.iterdir() if p.is_file()}
    _write(tmp_path, "again", source, out, clean)
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
             for p in out.iterdir() if p.is_file()}
    assert after == before  # idempotent: nothing at the top rewritten
    (out / "README").unlink()
    _write(tmp_path, "third", source, out, clean)
    readme = (out / "README.md").read_text()
    assert readme.startswith("# nipype-maskers\n") and fmriprep.as_uri() in readme
    assert len(readme.encode()) > 150  # the validator's README_FILE_SMALL threshold
    assert not [p for p in out.rglob("*.part")]
