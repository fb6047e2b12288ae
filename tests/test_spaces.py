"""Spaces: an atlas is applied only to runs in its own space, said before any work.

A 2009c atlas resampled by its affine onto a T1w, a native (boldref) or an MNI152NLin6Asym run
gives wrong signals without a word; here such runs are skipped (listed in the summary) or,
when chosen with --space or given to extract, refused in one line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from synthetic import write_fmriprep_tree

from nipype_maskers.bids import find_fmriprep_runs
from nipype_maskers.cli import main
from nipype_maskers.spaces import atlas_space, run_space, select_runs, sidecar_space

MNI = "MNI152NLin2009cAsym"


@pytest.fixture
def tree(tmp_path):
    """sub-01 in MNI 2009c, T1w, MNI 6th gen and native (no space-); sub-02 in MNI 2009c.

    The atlases: ``tpl-MNI152NLin2009cAsym_atlas-Toy_dseg.nii.gz`` (space in its name) and
    ``atlas-Toy_dseg.nii.gz`` (no space), seeds ``atlas-Balls_seeds.tsv`` (no space).
    """
    write_fmriprep_tree(tmp_path / "fmriprep", n_volumes=12)
    func = tmp_path / "fmriprep" / "sub-01" / "func"
    for suffix in ("desc-preproc_bold.nii.gz", "desc-brain_mask.nii.gz"):
        source = func / f"sub-01_task-rest_space-{MNI}_{suffix}"
        for space in ("space-T1w_", "space-MNI152NLin6Asym_", ""):
            shutil.copy(source, func / f"sub-01_task-rest_{space}{suffix}")
    shutil.copy(tmp_path / "atlas-Toy_dseg.nii.gz", tmp_path / f"tpl-{MNI}_atlas-Toy_dseg.nii.gz")
    return tmp_path


def _run(tree: Path, capsys, *extra, atlas: str = f"tpl-{MNI}_atlas-Toy_dseg.nii.gz"):
    code = main([str(tree / "fmriprep"), str(tree / "out"), "participant",
                 "--atlas", str(tree / atlas), "--denoise", "simple", "--no-reports",
                 "--no-denoised-bold", "--work-dir", str(tree / "work"), "--plugin", "Linear",
                 *[str(e) for e in extra]])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def _written(tree: Path) -> list[str]:
    return sorted(p.name for p in (tree / "out").glob("sub-*/func/*_atlas-*_timeseries.tsv"))


def _refused_before_any_work(tree: Path, code: int, err: list[str], *parts: str) -> None:
    assert code == 2
    assert len(err) == 1, err
    for part in parts:
        assert part in err[0], err[0]
    assert not (tree / "out").exists() and not (tree / "work").exists()


def test_without_space_only_the_atlas_space_runs_are_selected(tree, capsys):
    code, out, _ = _run(tree, capsys)
    assert code == 0
    assert _written(tree) == [f"sub-01_task-rest_space-{MNI}_atlas-Toy_timeseries.tsv",
                              f"sub-02_task-rest_space-{MNI}_atlas-Toy_timeseries.tsv"]
    summary = next(line for line in out.splitlines() if line.startswith("Skipped"))
    assert summary.startswith("Skipped 3 run(s) not in the atlases' space")
    for name, space in (("sub-01_task-rest_desc-preproc_bold.nii.gz", "native"),
                        ("sub-01_task-rest_space-T1w_desc-preproc_bold.nii.gz", "T1w"),
                        ("sub-01_task-rest_space-MNI152NLin6Asym_desc-preproc_bold.nii.gz",
                         "MNI152NLin6Asym")):
        assert f"{name} (space {space}, not the atlases' {MNI})" in summary
    # the summary comes before the run starts
    assert out.index("Skipped") < out.index("Processing 2 run(s)")


@pytest.mark.parametrize("space", ["T1w", "MNI152NLin6Asym", "native"])
def test_a_chosen_run_in_another_space_is_refused_in_one_line(tree, capsys, space):
    code, _, err = _run(tree, capsys, "--space", space)
    name = (f"sub-01_task-rest_space-{space}_desc-preproc_bold.nii.gz" if space != "native"
            else "sub-01_task-rest_desc-preproc_bold.nii.gz")
    _refused_before_any_work(tree, code, err, f"run '{name}' is in space {space}",
                             f"atlas 'tpl-{MNI}_atlas-Toy_dseg.nii.gz' (--atlas) in {MNI} "
                             "(its name)")


def test_native_runs_are_selected_explicitly(tree, capsys):
    code, out, _ = _run(tree, capsys, "--space", "native", "--atlas-space", "native",
                        atlas="atlas-Toy_dseg.nii.gz")
    assert code == 0, out
    assert _written(tree) == ["sub-01_task-rest_atlas-Toy_timeseries.tsv"]
    runs = find_fmriprep_runs(tree / "fmriprep", space="native")
    assert [run.bold.name for run in runs] == ["sub-01_task-rest_desc-preproc_bold.nii.gz"]
    assert run_space(runs[0].entities) == "native"


def test_atlas_space_states_the_space_of_unnamed_atlases(tree, capsys):
    # unknown space and runs in four spaces: ambiguous, refused with what to pass
    code, _, err = _run(tree, capsys, atlas="atlas-Toy_dseg.nii.gz")
    _refused_before_any_work(tree, code, err, "atlas 'atlas-Toy_dseg.nii.gz' (--atlas) states "
                             "no space", f"{MNI}, MNI152NLin6Asym, T1w, native",
                             "pass --atlas-space SPACE")
    # stated: only the T1w run is selected
    code, out, _ = _run(tree, capsys, "--atlas-space", "T1w", atlas="atlas-Toy_dseg.nii.gz")
    assert code == 0, out
    assert _written(tree) == ["sub-01_task-rest_space-T1w_atlas-Toy_timeseries.tsv"]
    assert "Skipped 4 run(s)" in out


def test_atlas_space_must_agree_with_the_atlas_name(tree, capsys):
    code, _, err = _run(tree, capsys, "--atlas-space", "T1w")
    _refused_before_any_work(tree, code, err, f"tpl-{MNI}_atlas-Toy_dseg.nii.gz",
                             f"its name says space {MNI}", "--atlas-space says T1w")


def test_an_unnamed_atlas_is_assumed_in_the_single_space_of_the_runs(tree, capsys):
    code, out, _ = _run(tree, capsys, "--space", MNI, atlas="atlas-Toy_dseg.nii.gz")
    assert code == 0
    assert len(_written(tree)) == 2
    assert (f"note: atlas 'atlas-Toy_dseg.nii.gz' (--atlas) states no space (no tpl-/space- "
            f"entity, no SpatialReference in a JSON sidecar): assumed to be {MNI}") in out


@pytest.mark.parametrize(("metadata", "selected"), [
    ({"SpatialReference": "https://templateflow.s3.amazonaws.com/tpl-MNI152NLin6Asym/"
                          "tpl-MNI152NLin6Asym_res-02_T1w.nii.gz"}, "MNI152NLin6Asym"),
    ({"Space": "T1w"}, "T1w"),
    ({"Template": MNI}, MNI),
])
def test_the_atlas_sidecar_states_its_space(tree, capsys, metadata, selected):
    (tree / "atlas-Toy_dseg.json").write_text(json.dumps(metadata))
    code, out, _ = _run(tree, capsys, "--participant-label", "01",
                        atlas="atlas-Toy_dseg.nii.gz")
    assert code == 0, out
    assert _written(tree) == [f"sub-01_task-rest_space-{selected}_atlas-Toy_timeseries.tsv"]
    code, _, err = _run(tree, capsys, "--space", "native", atlas="atlas-Toy_dseg.nii.gz")
    assert code == 2 and f"in {selected} (its sidecar 'atlas-Toy_dseg.json')" in err[0]


def test_seeds_are_in_a_space_too(tree, capsys):
    seeds = tree / "tpl-MNI152NLin6Asym_atlas-Balls_seeds.tsv"
    shutil.copy(tree / "atlas-Balls_seeds.tsv", seeds)
    code, _, err = _run(tree, capsys, "--space", MNI, "--seeds", seeds, "--radius", "5",
                        atlas="atlas-Toy_dseg.nii.gz")
    _refused_before_any_work(tree, code, err, f"space {MNI}",
                             f"atlas '{seeds.name}' (--seeds) in MNI152NLin6Asym")
    # with the 2009c labels atlas: atlases in two spaces, each run gets those of its space
    code, out, _ = _run(tree, capsys, "--seeds", seeds, "--radius", "5")
    assert code == 0, out
    assert _written(tree) == [f"sub-01_task-rest_space-{MNI}_atlas-Toy_timeseries.tsv",
                              "sub-01_task-rest_space-MNI152NLin6Asym_atlas-Balls_timeseries.tsv",
                              f"sub-02_task-rest_space-{MNI}_atlas-Toy_timeseries.tsv"]
    assert "Skipped 2 run(s)" in out
    sidecar = (tree / "out" / "sub-01" / "func" /
               "sub-01_task-rest_space-MNI152NLin6Asym_atlas-Balls_timeseries.json")
    assert json.loads(sidecar.read_text())["AtlasSpace"] == "MNI152NLin6Asym"


def test_an_atlas_in_a_subject_space_fits_one_subject(tree, capsys):
    func = tree / "fmriprep" / "sub-02" / "func"
    shutil.copy(func / f"sub-02_task-rest_space-{MNI}_desc-preproc_bold.nii.gz",
                func / "sub-02_task-rest_space-T1w_desc-preproc_bold.nii.gz")
    code, _, err = _run(tree, capsys, "--atlas-space", "T1w", atlas="atlas-Toy_dseg.nii.gz")
    _refused_before_any_work(tree, code, err, "T1w is a subject's own space",
                             "sub-01, sub-02", "--participant-label")


def test_extract_checks_the_run_space_from_its_name(tree, capsys):
    func = tree / "fmriprep" / "sub-01" / "func"
    common = ["extract", "--denoise", "none", "--no-reports", "--no-denoised-bold",
              "--plugin", "Linear", "--atlas", tree / f"tpl-{MNI}_atlas-Toy_dseg.nii.gz"]
    bold = func / "sub-01_task-rest_space-T1w_desc-preproc_bold.nii.gz"
    code = main([str(a) for a in [*common, "--bold", bold, "--out", tree / "out"]])
    err = capsys.readouterr().err.strip().splitlines()
    _refused_before_any_work(tree, code, err, f"run '{bold.name}' is in space T1w",
                             f"in {MNI} (its name)")
    bold = func / f"sub-01_task-rest_space-{MNI}_desc-preproc_bold.nii.gz"
    assert main([str(a) for a in [*common, "--bold", bold, "--out", tree / "out"]]) == 0
    assert _written(tree) == [f"sub-01_task-rest_space-{MNI}_atlas-Toy_timeseries.tsv"]


# --------------------------------------------------------------------------------------------
# The rules, without running anything
# --------------------------------------------------------------------------------------------
def test_atlas_space_sources(tmp_path):
    cohort = atlas_space("tpl-MNIPediatricAsym_cohort-2_res-1_atlas-X_dseg.nii.gz", "--atlas")
    assert cohort.space == "MNIPediatricAsym:cohort-2" and cohort.origin == "its name"
    # space- (the data's space) wins over tpl- in TemplateFlow names
    assert atlas_space("tpl-fsLR_space-fsaverage_atlas-X_dseg.nii.gz", "--atlas").space == \
        "fsaverage"
    given = atlas_space(tmp_path / "power2011.tsv", "--seeds", "MNI152NLin6Asym")
    assert (given.space, given.origin) == ("MNI152NLin6Asym", "--atlas-space")
    image = tmp_path / "atlas-X_dseg.nii.gz"
    sidecar = tmp_path / "atlas-X_dseg.json"
    sidecar.write_text(json.dumps({"SpatialReference": {
        "atlas-X_dseg.nii.gz": f"bids:templateflow:tpl-{MNI}/tpl-{MNI}_res-01_T1w.nii.gz"}}))
    assert sidecar_space(image) == (MNI, sidecar)
    sidecar.write_text(json.dumps({"SpatialReference": "a scanner somewhere"}))
    with pytest.raises(ValueError, match="SpatialReference 'a scanner somewhere' does not name"):
        sidecar_space(image)
    sidecar.write_text("{not json")
    with pytest.raises(ValueError, match="atlas-X_dseg.json': not readable JSON"):
        sidecar_space(image)


def test_select_runs_without_atlas_keeps_every_run(tree):
    runs = find_fmriprep_runs(tree / "fmriprep")
    assert select_runs(runs, [], space_selected=False).runs == runs


def test_atlas_space_without_an_atlas_is_refused(tree, capsys):
    code = main([str(tree / "fmriprep"), str(tree / "out"), "participant", "--atlas-space",
                 MNI, "--work-dir", str(tree / "work")])
    err = capsys.readouterr().err.strip().splitlines()
    _refused_before_any_work(tree, code, err,
                             "--atlas-space: only meaningful with --atlas, --maps or --seeds")


def test_extract_space_states_the_space_of_an_unnamed_run(tree, capsys):
    bold = tree / "fmriprep" / "sub-01" / "func" / "sub-01_task-rest_desc-preproc_bold.nii.gz"
    common = ["extract", "--bold", bold, "--denoise", "none", "--no-reports",
              "--no-denoised-bold", "--plugin", "Linear", "--out", tree / "out",
              "--atlas", tree / f"tpl-{MNI}_atlas-Toy_dseg.nii.gz"]
    code = main([str(a) for a in common])
    err = capsys.readouterr().err.strip().splitlines()
    _refused_before_any_work(tree, code, err, f"run '{bold.name}' is in space native")
    assert main([str(a) for a in [*common, "--space", MNI]]) == 0
    assert _written(tree) == ["sub-01_task-rest_atlas-Toy_timeseries.tsv"]
    named = str(bold).replace("_desc-preproc", "_space-T1w_desc-preproc")
    code = main([str(a) for a in [*common[:2], named, *common[3:], "--space", MNI]])
    assert code == 2 and "--space MNI152NLin2009cAsym: 'sub-01_task-rest_space-T1w_desc-" \
        "preproc_bold.nii.gz' says space T1w in its name" in capsys.readouterr().err


def test_the_sidecars_record_the_atlas_space(tree, capsys):
    # an unnamed atlas assumed to be in the chosen runs' space: the sidecars say which
    code, out, _ = _run(tree, capsys, "--space", "T1w", "--participant-label", "01",
                        atlas="atlas-Toy_dseg.nii.gz")
    assert code == 0, out
    func = tree / "out" / "sub-01" / "func"
    for suffix in ("timeseries", "regions"):
        sidecar = json.loads((func / f"sub-01_task-rest_space-T1w_atlas-Toy_{suffix}.json")
                             .read_text())
        assert sidecar["AtlasSpace"] == "T1w", suffix
