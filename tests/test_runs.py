"""Real runs of the command line on a small fMRIPrep-like tree: outputs, caching, failures."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from synthetic import write_fmriprep_tree
from validator import brief, validate

from nipype_maskers.cli import main


@pytest.fixture
def tree(tmp_path):
    write_fmriprep_tree(tmp_path / "fmriprep")
    return tmp_path


def _argv(tree: Path, out: str = "out", work: str = "work", *extra) -> list[str]:
    return [str(tree / "fmriprep"), str(tree / out), "participant",
            "--atlas", str(tree / "atlas-Toy_dseg.nii.gz"),
            "--seeds", str(tree / "atlas-Balls_seeds.tsv"), "--radius", "5",
            "--denoise", "simple", "--work-dir", str(tree / work), "--nprocs", "2", *extra]


def _results(work: Path) -> dict[str, int]:
    return {str(p.parent.relative_to(work)): p.stat().st_mtime_ns
            for p in work.rglob("result_*.pklz")}


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_run_writes_bids_derivatives_then_caches(tree, capsys):
    before = _files(tree)
    assert main(_argv(tree)) == 0
    assert gc.get_freeze_count() == 0  # the run froze the heap for MultiProc, then let it go
    printed = capsys.readouterr().out
    assert "[" in printed and "sub-01 task-rest space-MNI152NLin2009cAsym: clean_image done" \
        in printed
    assert "2 of 2 runs finished." in printed
    func = tree / "out" / "sub-01" / "func"
    stem = "sub-01_task-rest_space-MNI152NLin2009cAsym"
    expected = {f"{stem}_atlas-Toy_timeseries.tsv", f"{stem}_atlas-Toy_regions.tsv",
                f"{stem}_atlas-Balls_timeseries.tsv", f"{stem}_atlas-Balls_regions.tsv",
                f"{stem}_desc-denoised_bold.nii.gz", f"{stem}_desc-confounds_timeseries.tsv",
                f"{stem}_report.html"}  # matplotlib is in the test extra
    names = {p.name for p in func.iterdir()}
    assert expected <= names
    assert {n[: -len(".json")] for n in names if n.endswith(".json")} == {
        n.split(".")[0] for n in expected}
    header = (func / f"{stem}_atlas-Toy_timeseries.tsv").read_text().splitlines()[0]
    assert header.split("\t") == ["1", "5", "17"]
    sidecar = json.loads((func / f"{stem}_atlas-Toy_timeseries.json").read_text())
    assert sidecar["SamplingFrequency"] == 0.5
    assert sidecar["Sources"][0].endswith(f"{stem}_desc-preproc_bold.nii.gz")
    assert set(sidecar["Software"]) >= {"nipype_maskers", "nipype", "numpy", "scipy",
                                        "nibabel"}
    assert sidecar["Parameters"]["DenoiseStrategy"] == "simple"
    assert "atlas-Toy_dseg.nii.gz" in sidecar["InputSHA256"]
    assert sidecar["5"]["Description"].startswith("5: ")
    bold = json.loads((func / f"{stem}_desc-denoised_bold.json").read_text())
    assert bold["RepetitionTime"] == 2.0
    description = json.loads((tree / "out" / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    written = _files(tree) - before
    assert all(f.startswith(("out/", "work/")) for f in written)

    cached = _results(tree / "work")
    outputs = {p: p.stat().st_mtime_ns for p in (tree / "out").rglob("*") if p.is_file()}
    assert main(_argv(tree)) == 0
    assert _results(tree / "work") == cached  # nothing recomputed
    assert {p: p.stat().st_mtime_ns for p in outputs} == outputs

    assert main(_argv(tree, "out", "work", "--smoothing-fwhm", "4")) == 0
    changed = {k for k, v in _results(tree / "work").items() if cached.get(k) != v}
    reran = {k.rsplit("/", 1)[-1] for k in changed}
    # the run's one read is smoothed for the atlases now (and keeps the rows before smoothing
    # for the denoised BOLD): it and its readers rerun; the confounds do not
    assert {"read_bold", "labels_Toy", "spheres_Balls", "write_derivatives"} <= reran
    assert "load_confounds" not in reran


def test_a_broken_run_fails_alone(tree, capsys):
    bold = next((tree / "fmriprep" / "sub-02" / "func").glob("*_bold.nii.gz"))
    raw = bold.read_bytes()
    bold.write_bytes(raw[: len(raw) // 2])
    assert main(_argv(tree, "out", "work", "--no-denoised-bold")) == 1
    printed = capsys.readouterr().out
    assert "1 of 2 runs finished; 1 failed:" in printed
    failures = [line for line in printed.splitlines() if "FAILED sub-02" in line]
    assert failures and all("is truncated or corrupt" in line for line in failures)
    assert any((tree / "out" / "sub-01" / "func").glob("*_atlas-Toy_timeseries.tsv"))
    assert not (tree / "out" / "sub-02").exists()


def test_killed_run_resumes_to_the_same_outputs(tree):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "nipype_maskers.cli", *_argv(tree, "out", "work")]
    # run outside the repository: its nipype_maskers/ would shadow the installed package
    process = subprocess.Popen(command, env=env, cwd=tree, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if list((tree / "work").rglob("result_clean_image.pklz")):
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert main(_argv(tree, "out", "work")) == 0
    assert main(_argv(tree, "clean_out", "clean_work")) == 0
    ours, reference = tree / "out", tree / "clean_out"
    assert _files(ours) == _files(reference)
    for name in _files(reference):
        if name.endswith(".nii.gz"):
            np.testing.assert_array_equal(nib.load(ours / name).get_fdata(),
                                          nib.load(reference / name).get_fdata())
        elif not name.endswith(".json"):
            assert (ours / name).read_bytes() == (reference / name).read_bytes(), name
        else:
            mine, theirs = (json.loads((d / name).read_text()) for d in (ours, reference))
            mine.pop("Sources", None), theirs.pop("Sources", None)
            mine.pop("SourceDatasets", None), theirs.pop("SourceDatasets", None)
            assert mine == theirs, name
    assert not list(ours.rglob(".*.part"))


def test_nipype_provenance_works_on_our_workflows(tree):
    from nipype import config
    from nipype_maskers.workflows.timeseries import LabelsAtlas

    from nipype_maskers.bids import find_fmriprep_runs
    from nipype_maskers.cli.commands import build_workflow

    runs = find_fmriprep_runs(tree / "fmriprep", participant_label=["01"])
    options = {"mask_strategy": "epi", "denoise_strategy": None, "clean_args": {},
               "smoothing_fwhm": None, "denoised_bold": False, "maps": [], "spheres": [],
               "labels": [LabelsAtlas("Toy", tree / "atlas-Toy_dseg.nii.gz")]}
    workflow, _ = build_workflow(runs, options, tree / "out", tree / "work")
    workflow.config["execution"] = {"write_provenance": True, "hash_method": "content",
                                    "crashdump_dir": str(tree / "work" / "crash")}
    try:
        workflow.run(plugin="Linear")
    finally:
        config.set("execution", "write_provenance", "false")
    provenance = list((tree / "work").glob("workflow_provenance_*.provn"))
    assert provenance and "nipype_maskers" in provenance[0].read_text()


def test_demo_runs_and_reruns_nothing(tmp_path, capsys):
    assert main(["demo", str(tmp_path), "--n-volumes", "40"]) == 0
    printed = capsys.readouterr().out
    # six subjects' volume runs, and a CIFTI run for two of them
    assert "8 of 8 runs finished." in printed
    out = tmp_path / "nipype_maskers"
    for subject in ("01", "02", "03", "04", "05", "06"):
        func = out / f"sub-{subject}" / "func"
        if subject in ("01", "02"):
            for atlas, columns in (("DemoCiftiParcels", 99), ("DemoCiftiMaps", 8)):
                table = next(func.glob(f"*_space-fsLR_*atlas-{atlas}_*timeseries.tsv"))
                lines = table.read_text().splitlines()
                assert len(lines) > 20 and len(lines[0].split("\t")) == columns
            assert next(func.glob("*_space-fsLR_den-91k_report.html")).stat().st_size > 0
        for atlas in ("DemoParcels", "DemoMaps", "DemoSeeds"):
            table = next(func.glob(f"*_atlas-{atlas}_timeseries.tsv")).read_text().splitlines()
            assert len(table) > 20 and "n/a" not in table[1]
        assert next(func.glob("*_desc-denoised_bold.nii.gz")).stat().st_size > 0
    # the group level over the volume atlases: matrices, QC-FC, flagged runs, report
    group = out / "group"
    for atlas in ("DemoParcels", "DemoMaps", "DemoSeeds"):
        for kind in ("meas-PearsonCorrelation_desc-mean_relmat", "desc-qcfc_bold",
                     "meas-Covariance_desc-geometricmean_relmat"):
            assert len(list(group.glob(f"*_atlas-{atlas}_*{kind}.tsv"))) == 1, (atlas, kind)
        assert len(list(group.glob(f"sub-*_atlas-{atlas}_meas-Tangent_relmat.tsv"))) == 6
    assert "6 run(s)" in (group / "group_report.html").read_text()
    # distance dependence from the parcels' centroids and the seeds, none for maps
    for atlas, distances in (("DemoParcels", True), ("DemoSeeds", True), ("DemoMaps", False)):
        edges = next(group.glob(f"*_atlas-{atlas}_*desc-qcfcedges_bold.tsv")).read_text()
        column = [line.split("\t")[-1] for line in edges.splitlines()[1:]]
        assert all((value != "n/a") == distances for value in column), atlas
    assert (group / "desc-flagged_subjects.tsv").read_text().startswith("participant_id\t")
    header = next((out / "sub-01" / "func").glob("*DemoMaps_timeseries.tsv")).read_text()
    assert header.startswith("L_map_01\t")
    cached = _results(tmp_path / "work")
    assert main(["demo", str(tmp_path), "--n-volumes", "40"]) == 0
    assert _results(tmp_path / "work") == cached
    # last: it skips (saying why) when the validator binary cannot run
    errors, warnings = validate(out)  # the official BIDS validator accepts the demo's output
    assert (brief(errors), brief(warnings)) == ([], [])
