"""Surface and CIFTI runs through the command line and the workflows (M8).

Tiny fMRIPrep-like trees: a CIFTI-2 run (``space-fsLR_den-91k``: two cortex surfaces with
medial walls left out and a subcortical voxel structure, a few hundred grayordinates) and a
GIFTI pair (``hemi-L``/``hemi-R``, ``space-fsaverage5``), next to fMRIPrep's confounds and a
volume run. The command line's outputs are compared with the maskers run directly on the
same confounds, and the folder with the official BIDS validator.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.cifti2 import cifti2_axes
from nibabel.gifti import GiftiDataArray, GiftiImage, GiftiLabel, GiftiLabelTable, GiftiMetaData
from synthetic import write_fmriprep_tree
from validator import validate

from nipype_maskers.bids import CIFTI, GIFTI, find_fmriprep_runs
from nipype_maskers.cli import main
from nipype_maskers.core.io.tables import read_table
from nipype_maskers.spaces import atlas_space, select_runs, space_fits

N_VOLUMES = 40
T_R = 2.0
CIFTI_NAME = "sub-01_task-rest_space-fsLR_den-91k_bold.dtseries.nii"
GIFTI_NAMES = [f"sub-01_task-rest_hemi-{h}_space-fsaverage5_bold.func.gii" for h in "LR"]
DLABEL = "tpl-fsLR_den-91k_atlas-Parc_dseg.dlabel.nii"
DSCALAR = "tpl-fsLR_den-91k_atlas-Comp_probseg.dscalar.nii"
LABEL_PAIR = [f"space-fsaverage5_hemi-{h}_atlas-Ring_dseg.label.gii" for h in "LR"]
MAPS_PAIR = [f"space-fsaverage5_hemi-{h}_atlas-Blobs_probseg.func.gii" for h in "LR"]
#: Surface vertices of each hemisphere's mesh, and those in the CIFTI file (medial wall out).
N_MESH, N_CORTEX = {"L": 150, "R": 140}, {"L": 120, "R": 110}
N_GIFTI = {"L": 90, "R": 80}


# --------------------------------------------------------------------------------------------
# Fixtures: files built with nibabel
# --------------------------------------------------------------------------------------------
def _brain_models() -> cifti2_axes.BrainModelAxis:
    axis = None
    for hemi, structure in (("L", "CortexLeft"), ("R", "CortexRight")):
        vertices = np.arange(N_MESH[hemi])[N_MESH[hemi] - N_CORTEX[hemi]:]  # a medial wall
        part = cifti2_axes.BrainModelAxis.from_surface(vertices, N_MESH[hemi], name=structure)
        axis = part if axis is None else axis + part
    mask = np.zeros((6, 5, 4), bool)
    mask[1:5, 1:4, 1:3] = True  # 24 voxels
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    return axis + cifti2_axes.BrainModelAxis.from_mask(mask, name="thalamus_left",
                                                       affine=affine)


def _series(n_points: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(N_VOLUMES)
    return (100 + rng.normal(size=(N_VOLUMES, n_points)) * 5
            + np.outer(np.sin(t / 3.0), rng.normal(size=n_points)) * 3).astype(np.float32)


def write_cifti_run(func: Path, atlases: Path) -> None:
    """The CIFTI run (TR in its SeriesAxis), a 4-parcel dlabel and a 3-map dscalar."""
    axis = _brain_models()
    n_gray = len(axis)
    series = cifti2_axes.SeriesAxis(start=0, step=T_R, size=N_VOLUMES, unit="SECOND")
    nib.save(nib.Cifti2Image(_series(n_gray, 1), (series, axis)), func / CIFTI_NAME)
    keys = (np.arange(n_gray) % 5).astype(np.float32)  # 0 is the background
    table = {0: ("???", (0.0, 0.0, 0.0, 0.0))}
    table.update({k: (f"parcel{k}", (k / 5, 0.5, 0.5, 1.0)) for k in range(1, 5)})
    labels = cifti2_axes.LabelAxis(["parcels"], [table])
    nib.save(nib.Cifti2Image(keys[None], (labels, axis)), atlases / DLABEL)
    rng = np.random.default_rng(3)
    maps = np.abs(rng.normal(size=(3, n_gray))).astype(np.float32)
    names = cifti2_axes.ScalarAxis(["compA", "compB", "compC"])
    nib.save(nib.Cifti2Image(maps, (names, axis)), atlases / DSCALAR)


def _gifti(columns: np.ndarray, hemi: str, *, intent: str, time_step: float | None = None,
           table: dict[int, str] | None = None) -> GiftiImage:
    structure = {"L": "CortexLeft", "R": "CortexRight"}[hemi]
    image = GiftiImage(meta=GiftiMetaData({"AnatomicalStructurePrimary": structure}))
    if table is not None:
        image.labeltable = GiftiLabelTable()
        for key, name in table.items():
            label = GiftiLabel(key=key)
            label.label = name
            image.labeltable.labels.append(label)
    meta = {} if time_step is None else {"TimeStep": f"{time_step * 1000:.6f}"}
    for column in columns.T:
        image.add_gifti_data_array(GiftiDataArray(np.ascontiguousarray(column), intent=intent,
                                                  datatype=column.dtype,
                                                  meta=GiftiMetaData(meta)))
    return image


def write_gifti_run(func: Path, atlases: Path) -> None:
    """The GIFTI pair (TimeStep in ms), a 3-label .label.gii pair and a 2-map pair."""
    for index, hemi in enumerate("LR"):
        n_vertices = N_GIFTI[hemi]
        data = _series(n_vertices, 10 + index).T  # vertices x volumes
        nib.save(_gifti(data, hemi, intent="NIFTI_INTENT_TIME_SERIES", time_step=T_R),
                 func / GIFTI_NAMES[index])
        keys = (np.arange(n_vertices) % 4).astype(np.int32)[:, None]  # 0: background
        nib.save(_gifti(keys, hemi, intent="NIFTI_INTENT_LABEL",
                        table={0: "???", 1: "ringA", 2: "ringB", 3: "ringC"}),
                 atlases / LABEL_PAIR[index])
        rng = np.random.default_rng(20 + index)
        maps = np.abs(rng.normal(size=(n_vertices, 2))).astype(np.float32)
        nib.save(_gifti(maps, hemi, intent="NIFTI_INTENT_NONE"), atlases / MAPS_PAIR[index])


@pytest.fixture
def tree(tmp_path) -> Path:
    """sub-01: a volume run (MNI 2009c), a CIFTI run, a GIFTI pair, one confounds file."""
    write_fmriprep_tree(tmp_path / "fmriprep", subjects=("01",), n_volumes=N_VOLUMES)
    func = tmp_path / "fmriprep" / "sub-01" / "func"
    atlases = tmp_path / "atlases"
    atlases.mkdir()
    write_cifti_run(func, atlases)
    write_gifti_run(func, atlases)
    shutil.copy(tmp_path / "atlas-Toy_dseg.nii.gz",
                atlases / "tpl-MNI152NLin2009cAsym_atlas-Toy_dseg.nii.gz")
    return tmp_path


def _run(tree: Path, capsys, *options, reports: bool = False) -> tuple[int, str, list[str]]:
    code = main([str(tree / "fmriprep"), str(tree / "out"), "participant",
                 "--denoise", "simple", *([] if reports else ["--no-reports"]),
                 "--no-denoised-bold",
                 "--work-dir", str(tree / "work"), "--plugin", "Linear",
                 *[str(option) for option in options]])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def _atlas(tree: Path, *names: str) -> str:
    return ",".join(str(tree / "atlases" / name) for name in names)


def _written(tree: Path) -> list[str]:
    return sorted(p.name for p in (tree / "out").glob("sub-*/func/*_atlas-*.tsv"))


def _refused_before_any_work(tree: Path, code: int, err: list[str], *parts: str) -> None:
    assert code == 2
    assert len(err) == 1, err
    for part in parts:
        assert part in err[0], err[0]
    assert not (tree / "out").exists() and not (tree / "work").exists()


def _direct(interface, tmp_path: Path, confounds: Path) -> tuple[np.ndarray, list[str]]:
    """The masker run directly with the regressors and kept volumes LoadConfounds selects."""
    from nipype_maskers.interfaces.cleaning import LoadConfounds

    folder = tmp_path / "direct"
    folder.mkdir(exist_ok=True)
    loaded = LoadConfounds(confounds_file=str(confounds), denoise_strategy="simple")
    loaded = loaded.run(cwd=str(folder)).outputs
    interface.inputs.confounds_file = loaded.out_file
    interface.inputs.sample_mask_file = loaded.sample_mask_file
    interface.inputs.standardize = "zscore_sample"
    result = interface.run(cwd=str(folder)).outputs
    table = read_table(result.out_file, name="out_file", header=True, delimiter="\t")
    return np.asarray(table.values, dtype=float), list(table.columns)


def _table(path: Path) -> tuple[np.ndarray, list[str]]:
    table = read_table(path, name="table", header=True, delimiter="\t")
    return np.asarray(table.values, dtype=float), list(table.columns)


# --------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------
def test_discovery_finds_cifti_runs_and_gifti_pairs(tree):
    runs = {run.kind: run for run in find_fmriprep_runs(tree / "fmriprep")}
    assert set(runs) == {"volume", CIFTI, GIFTI}
    assert runs[CIFTI].bold.name == CIFTI_NAME and runs[CIFTI].mask is None
    assert [p.name for p in runs[GIFTI].in_files] == GIFTI_NAMES
    confounds = "sub-01_task-rest_desc-confounds_timeseries.tsv"
    assert runs[CIFTI].confounds.name == confounds == runs[GIFTI].confounds.name
    # --space fsLR --den 91k, --space fsaverage5
    chosen = find_fmriprep_runs(tree / "fmriprep", space="fsLR:den-91k")
    assert [run.bold.name for run in chosen] == [CIFTI_NAME]
    chosen = find_fmriprep_runs(tree / "fmriprep", space="fsaverage5")
    assert [run.kind for run in chosen] == [GIFTI]


def test_a_lone_hemisphere_is_skipped_with_the_reason(tree, capsys):
    (tree / "fmriprep" / "sub-01" / "func" / GIFTI_NAMES[1]).unlink()
    runs = find_fmriprep_runs(tree / "fmriprep", space="fsaverage5")
    assert [run.files for run in runs] == [(runs[0].bold,)]
    # with the volume run: skipped with the reason, the volume run processed
    runs = find_fmriprep_runs(tree / "fmriprep")
    atlases = [atlas_space(tree / "atlases" / "tpl-MNI152NLin2009cAsym_atlas-Toy_dseg.nii.gz",
                           "--atlas")]
    selection = select_runs(runs, atlases, space_selected=False)
    assert [run.kind for run in selection.runs] == ["volume"]
    reasons = dict((run.bold.name, why) for run, why in selection.skipped)
    assert reasons[GIFTI_NAMES[0]].startswith("hemi-L alone: no hemi-R file beside it")
    # the command line: no run left for the GIFTI atlas: refused in one line saying why
    code, _, err = _run(tree, capsys, "--space", "fsaverage5",
                        "--atlas", _atlas(tree, *LABEL_PAIR))
    _refused_before_any_work(tree, code, err, "no run in fsaverage5",
                             f"atlas '{LABEL_PAIR[0]}' (--atlas)",
                             f"skipped: {GIFTI_NAMES[0]} (hemi-L alone: no hemi-R file")


# --------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------
def test_cifti_run_end_to_end(tree, capsys):
    from nipype_maskers.interfaces.cifti import CiftiLabelsMasker, CiftiMapsMasker

    code, out, err = _run(tree, capsys, "--space", "fsLR", "--den", "91k",
                          "--atlas", _atlas(tree, DLABEL), "--maps", _atlas(tree, DSCALAR))
    assert code == 0, (out, err)
    # BIDS 1.11's entity order puts atlas before den (as XCP-D's seg-X_den-91k)
    stem = "sub-01_task-rest_space-fsLR"
    assert _written(tree) == [f"{stem}_atlas-{name}_den-91k_{suffix}.tsv"
                              for name in ("Comp", "Parc") for suffix in ("regions", "timeseries")]
    func = tree / "out" / "sub-01" / "func"
    source = tree / "fmriprep" / "sub-01" / "func"
    confounds = source / "sub-01_task-rest_desc-confounds_timeseries.tsv"
    bold = source / CIFTI_NAME
    for interface, name, columns in (
            (CiftiLabelsMasker(in_file=str(bold), labels_file=str(tree / "atlases" / DLABEL)),
             "Parc", [f"parcel{k}" for k in range(1, 5)]),
            (CiftiMapsMasker(in_file=str(bold), maps_file=str(tree / "atlases" / DSCALAR)),
             "Comp", ["compA", "compB", "compC"])):
        expected, expected_columns = _direct(interface, tree, confounds)
        got, got_columns = _table(func / f"{stem}_atlas-{name}_den-91k_timeseries.tsv")
        assert got_columns == expected_columns == columns
        assert got.shape == (N_VOLUMES, len(columns))
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
        sidecar = json.loads((func / f"{stem}_atlas-{name}_den-91k_timeseries.json")
                             .read_text())
        assert sidecar["SamplingFrequency"] == pytest.approx(1 / T_R)
        assert sidecar["RepetitionTimeSource"] == "CIFTI SeriesAxis"
        assert sidecar["AtlasSpace"] == "fsLR:den-91k"
        assert sidecar["Parameters"]["DenoiseStrategy"] == "simple"
        assert {CIFTI_NAME, confounds.name} <= set(sidecar["InputSHA256"])
    errors, _ = validate(tree / "out")
    assert errors == [], errors


def test_gifti_run_end_to_end(tree, capsys):
    from nipype_maskers.interfaces.surface import SurfaceLabelsMasker, SurfaceMapsMasker

    code, out, err = _run(tree, capsys, "--space", "fsaverage5",
                          "--atlas", _atlas(tree, *LABEL_PAIR),
                          "--maps", _atlas(tree, *MAPS_PAIR))
    assert code == 0, (out, err)
    stem = "sub-01_task-rest_space-fsaverage5"  # no hemi: the outputs hold both
    assert _written(tree) == [f"{stem}_atlas-{name}_{suffix}.tsv" for name in ("Blobs", "Ring")
                              for suffix in ("regions", "timeseries")]
    func = tree / "out" / "sub-01" / "func"
    source = tree / "fmriprep" / "sub-01" / "func"
    confounds = source / "sub-01_task-rest_desc-confounds_timeseries.tsv"
    pair = [str(source / name) for name in GIFTI_NAMES]
    for interface, name, n_columns in (
            (SurfaceLabelsMasker(in_file=pair, labels_file=[
                str(tree / "atlases" / n) for n in LABEL_PAIR]), "Ring", 3),
            (SurfaceMapsMasker(in_file=pair, maps_file=[
                str(tree / "atlases" / n) for n in MAPS_PAIR]), "Blobs", 2)):
        expected, expected_columns = _direct(interface, tree, confounds)
        got, got_columns = _table(func / f"{stem}_atlas-{name}_timeseries.tsv")
        assert got_columns == expected_columns and got.shape == (N_VOLUMES, n_columns)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
        sidecar = json.loads((func / f"{stem}_atlas-{name}_timeseries.json").read_text())
        assert sidecar["SamplingFrequency"] == pytest.approx(1 / T_R)
        assert sidecar["RepetitionTimeSource"] == "GIFTI TimeStep"
        assert sidecar["AtlasSpace"] == "fsaverage5"
        assert set(GIFTI_NAMES) <= set(sidecar["InputSHA256"])
        for bold in pair:  # the pair's digests, both from the masker's own read
            digest = hashlib.sha256(Path(bold).read_bytes()).hexdigest()
            assert sidecar["InputSHA256"][Path(bold).name] == digest
        assert sidecar["SourceSHA256"] == hashlib.sha256(
            Path(pair[0]).read_bytes()).hexdigest()
    assert _table(func / f"{stem}_atlas-Ring_timeseries.tsv")[1] == ["ringA", "ringB", "ringC"]
    errors, _ = validate(tree / "out")
    assert errors == [], errors


def test_surface_runs_get_their_report(tree, capsys):
    pytest.importorskip("matplotlib")
    code, out, err = _run(tree, capsys, "--space", "fsaverage5",
                          "--atlas", _atlas(tree, *LABEL_PAIR), reports=True)
    assert code == 0, (out, err)
    report = tree / "out" / "sub-01" / "func" / "sub-01_task-rest_space-fsaverage5_report.html"
    assert report.stat().st_size > 1000
    errors, _ = validate(tree / "out")
    assert errors == [], errors


def test_atlases_in_several_spaces_in_one_invocation(tree, capsys):
    code, out, err = _run(tree, capsys,
                          "--atlas", _atlas(tree, "tpl-MNI152NLin2009cAsym_atlas-Toy_dseg.nii.gz"),
                          "--atlas", _atlas(tree, DLABEL), "--atlas", _atlas(tree, *LABEL_PAIR))
    assert code == 0, (out, err)
    assert [n for n in _written(tree) if n.endswith("_timeseries.tsv")] == [
        "sub-01_task-rest_space-MNI152NLin2009cAsym_atlas-Toy_timeseries.tsv",
        "sub-01_task-rest_space-fsLR_atlas-Parc_den-91k_timeseries.tsv",
        "sub-01_task-rest_space-fsaverage5_atlas-Ring_timeseries.tsv"]
    assert "Processing 3 run(s)" in out
    func = tree / "out" / "sub-01" / "func"
    spaces = {json.loads(p.read_text())["AtlasSpace"]
              for p in func.glob("*_atlas-*_timeseries.json")}
    assert spaces == {"MNI152NLin2009cAsym", "fsLR:den-91k", "fsaverage5"}


# --------------------------------------------------------------------------------------------
# Selection and refusals
# --------------------------------------------------------------------------------------------
def test_a_volume_atlas_with_a_cifti_run_is_refused(tree, capsys):
    code, _, err = _run(tree, capsys, "--space", "fsLR", "--den", "91k",
                        "--atlas", _atlas(tree, "tpl-MNI152NLin2009cAsym_atlas-Toy_dseg.nii.gz"))
    _refused_before_any_work(tree, code, err, f"run '{CIFTI_NAME}' is CIFTI-2 grayordinates",
                             "is a volume (NIfTI): an atlas is applied only to runs of its kind")


def test_without_space_surface_runs_are_skipped_for_a_volume_atlas(tree, capsys):
    code, out, _ = _run(tree, capsys,
                        "--atlas", _atlas(tree, "tpl-MNI152NLin2009cAsym_atlas-Toy_dseg.nii.gz"))
    assert code == 0, out
    assert _written(tree) == [
        "sub-01_task-rest_space-MNI152NLin2009cAsym_atlas-Toy_regions.tsv",
        "sub-01_task-rest_space-MNI152NLin2009cAsym_atlas-Toy_timeseries.tsv"]
    summary = next(line for line in out.splitlines() if line.startswith("Skipped"))
    assert summary.startswith("Skipped 2 run(s)")
    assert f"{CIFTI_NAME} (CIFTI-2 grayordinates, the atlases are a volume (NIfTI)" in summary


def test_a_dlabel_of_another_space_is_refused(tree, capsys):
    other = tree / "atlases" / "tpl-fsLR_den-170k_atlas-Big_dseg.dlabel.nii"
    shutil.copy(tree / "atlases" / DLABEL, other)
    code, _, err = _run(tree, capsys, "--space", "fsLR", "--den", "91k", "--atlas", other)
    _refused_before_any_work(tree, code, err, f"run '{CIFTI_NAME}' is in space fsLR:den-91k",
                             f"atlas '{other.name}' (--atlas) in fsLR:den-170k (its name)")
    # without --space: no run in its space
    code, _, err = _run(tree, capsys, "--atlas", other)
    _refused_before_any_work(tree, code, err, "no run in fsLR:den-170k",
                             "the cifti runs found are in fsLR:den-91k")


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--atlas", [LABEL_PAIR[0]], "is one hemisphere; a GIFTI atlas is a pair"),
    ("--atlas", LABEL_PAIR[::-1], "gives hemi-R first; expected the left hemisphere first"),
    ("--atlas", [DSCALAR], "is not a labels image"),
    ("--maps", [DLABEL], "is not maps"),
    ("--atlas", [DLABEL, DLABEL], "only GIFTI atlases come in pairs"),
])
def test_bad_surface_atlas_options_are_one_line(tree, capsys, option, value, message):
    code, _, err = _run(tree, capsys, option, _atlas(tree, *value))
    _refused_before_any_work(tree, code, err, option, message)


def test_a_lut_with_a_cifti_atlas_is_refused(tree, capsys):
    lut = tree / "atlases" / "parc.tsv"
    lut.write_text("index\tname\n1\ta\n")
    code, _, err = _run(tree, capsys, "--atlas", f"{_atlas(tree, DLABEL)}:{lut}")
    _refused_before_any_work(tree, code, err, f"'{DLABEL}' names its regions itself")


def test_space_fits_and_the_atlas_kind():
    assert space_fits("fsLR:den-91k", "fsLR:den-32k") and space_fits("fsLR:den-91k", "fsLR")
    assert not space_fits("fsLR:den-91k", "fsLR:den-170k")
    assert not space_fits("fsaverage5", "fsaverage6")
    assert atlas_space(DLABEL, "--atlas") .space == "fsLR:den-91k"
    assert atlas_space(DLABEL, "--atlas").kind == CIFTI
    assert atlas_space(LABEL_PAIR[0], "--atlas")[2:] == ("fsaverage5", "its name", GIFTI)


def _collect(out_files, entities, metadata):
    return out_files, entities, metadata


def test_surface_workflow_hands_its_outputs_to_a_parent(tree):
    """write_derivatives=False: files, entities and metadata on the outputnode, the same
    files our writer writes (write_derivatives=True)."""
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe
    from nipype_maskers.workflows.resources import estimate_surface_mem_gb
    from nipype_maskers.workflows.surface import init_surface_maskers_wf
    from nipype_maskers.workflows.timeseries import LabelsAtlas

    source = tree / "fmriprep" / "sub-01" / "func"
    pair = [str(source / name) for name in GIFTI_NAMES]
    atlas = LabelsAtlas("Ring", tuple(tree / "atlases" / name for name in LABEL_PAIR))
    options = {"kind": "gifti", "bold_file": pair, "labels": [atlas],
               "clean_args": {"standardize": "zscore_sample"}, "atlas_space": "fsaverage5"}
    unwritten = init_surface_maskers_wf(write_derivatives=False, **options)
    assert unwritten.get_node("outputnode").inputs.entities == [
        {"desc": "confounds", "suffix": "timeseries", "extension": ".tsv"},
        {"atlas": "Ring", "suffix": "timeseries", "extension": ".tsv"},
        {"atlas": "Ring", "suffix": "regions", "extension": ".tsv"}]
    node = unwritten.get_node("surface_timeseries_wf").get_node("labels_Ring")
    assert node.mem_gb == pytest.approx(estimate_surface_mem_gb(
        "labels", (N_VOLUMES, sum(N_GIFTI.values()))))
    parent = pe.Workflow(name="parent", base_dir=str(tree / "work_parent"))
    collect = pe.Node(niu.Function(function=_collect, input_names=[
        "out_files", "entities", "metadata"], output_names=["out"]), name="collect")
    parent.connect([(unwritten, collect, [(f"outputnode.{field}", field) for field in (
        "out_files", "entities", "metadata")])])
    inputs = unwritten.get_node("inputnode").inputs
    inputs.bold_file, inputs.confounds_file = pair, str(
        source / "sub-01_task-rest_desc-confounds_timeseries.tsv")
    graph = parent.run(plugin="Linear")
    out_files, entities, metadata = next(
        n for n in graph.nodes() if n.name == "collect").result.outputs.out
    assert [e["suffix"] for e in entities] == ["timeseries", "timeseries", "regions"]
    assert metadata[1]["SamplingFrequency"] == pytest.approx(1 / T_R)
    assert metadata[1]["AtlasSpace"] == "fsaverage5"
    assert set(metadata[1]["ringA"]) == {"Description"}  # columns described for the sink

    written = init_surface_maskers_wf(output_dir=tree / "out", name="written_wf", **options)
    written.base_dir = str(tree / "work_written")
    inputs = written.get_node("inputnode").inputs
    inputs.bold_file, inputs.confounds_file = pair, str(
        source / "sub-01_task-rest_desc-confounds_timeseries.tsv")
    written.run(plugin="Linear")
    target = (tree / "out" / "sub-01" / "func" /
              "sub-01_task-rest_space-fsaverage5_atlas-Ring_timeseries.tsv")
    assert target.read_bytes() == Path(out_files[1]).read_bytes()


def test_extract_takes_a_cifti_run_or_a_gifti_pair(tree, capsys):
    source = tree / "fmriprep" / "sub-01" / "func"
    common = ["extract", "--confounds", source / "sub-01_task-rest_desc-confounds_timeseries.tsv",
              "--no-reports", "--plugin", "Linear", "--out", tree / "out"]
    code = main([str(a) for a in [*common, "--bold", source / CIFTI_NAME,
                                  "--atlas", _atlas(tree, DLABEL)]])
    assert code == 0, capsys.readouterr()
    pair = ",".join(str(source / name) for name in GIFTI_NAMES)
    code = main([str(a) for a in [*common, "--bold", pair,
                                  "--atlas", _atlas(tree, *LABEL_PAIR)]])
    assert code == 0, capsys.readouterr()
    assert [n for n in _written(tree) if n.endswith("_timeseries.tsv")] == [
        "sub-01_task-rest_space-fsLR_atlas-Parc_den-91k_timeseries.tsv",
        "sub-01_task-rest_space-fsaverage5_atlas-Ring_timeseries.tsv"]
    code = main([str(a) for a in [*common, "--bold", source / GIFTI_NAMES[0],
                                  "--atlas", _atlas(tree, *LABEL_PAIR)]])
    assert code == 2 and "a GIFTI run is a pair" in capsys.readouterr().err


def test_den_needs_a_space(tree, capsys):
    code, _, err = _run(tree, capsys, "--den", "91k", "--atlas", _atlas(tree, DLABEL))
    _refused_before_any_work(tree, code, err, "--den 91k: only with --space")


def test_the_tr_of_a_gifti_run_without_time_step(tree, capsys):
    func = tree / "fmriprep" / "sub-01" / "func"
    for index, hemi in enumerate("LR"):  # the same pair, with no TimeStep
        data = _series(N_GIFTI[hemi], 10 + index).T
        nib.save(_gifti(data, hemi, intent="NIFTI_INTENT_TIME_SERIES"), func / GIFTI_NAMES[index])
    options = ["--space", "fsaverage5", "--atlas", _atlas(tree, *LABEL_PAIR), "--low-pass", "0.1"]
    code, _, err = _run(tree, capsys, *options)
    _refused_before_any_work(tree, code, err, f"{GIFTI_NAMES[0]}: no repetition time",
                             "no TimeStep (ms) in its GIFTI data arrays", "--t-r")
    # fMRIPrep's BIDS sidecar gives it
    sidecar = func / GIFTI_NAMES[0].replace(".func.gii", ".json")
    sidecar.write_text(json.dumps({"RepetitionTime": 2.5}))
    code, out, err = _run(tree, capsys, *options)
    assert code == 0, (out, err)
    written = json.loads((tree / "out" / "sub-01" / "func" /
                          "sub-01_task-rest_space-fsaverage5_atlas-Ring_timeseries.json")
                         .read_text())
    assert written["SamplingFrequency"] == pytest.approx(0.4)
    assert written["RepetitionTimeSource"] == f"BIDS sidecar '{sidecar.name}'"


def test_discovery_with_sessions_and_runs(tmp_path):
    """Names only (nothing is read): sessions, runs, a lone right hemisphere, the older
    ``desc-confounds_regressors.tsv``, and fMRIPrep's surface files that are not BOLD."""
    func = tmp_path / "sub-02" / "ses-a" / "func"
    func.mkdir(parents=True)
    stem = "sub-02_ses-a_task-nback"
    names = [f"{stem}_run-1_hemi-L_space-fsaverage6_bold.func.gii",
             f"{stem}_run-1_hemi-R_space-fsaverage6_bold.func.gii",
             f"{stem}_run-2_hemi-R_space-fsaverage6_bold.func.gii",
             f"{stem}_run-1_space-fsLR_den-91k_bold.dtseries.nii",
             f"{stem}_run-1_desc-confounds_regressors.tsv",
             f"{stem}_run-2_desc-confounds_timeseries.tsv",
             "sub-02_ses-a_hemi-L_midthickness.surf.gii"]
    for name in names:
        (func / name).touch()
    runs = find_fmriprep_runs(tmp_path, run=1)
    assert [(r.kind, [p.name for p in r.in_files], r.confounds.name) for r in runs] == [
        (GIFTI, names[:2], names[4]), (CIFTI, [names[3]], names[4])]
    lone = find_fmriprep_runs(tmp_path, run=2, space="fsaverage6")
    assert [(r.bold.name, r.files, r.confounds.name) for r in lone] == [
        (names[2], (func / names[2],), names[5])]
    atlas = atlas_space("space-fsaverage6_hemi-L_atlas-X_dseg.label.gii", "--atlas")
    with pytest.raises(ValueError, match=r"no run in fsaverage6, .*; skipped: "
                       rf"{names[2]} \(hemi-R alone: no hemi-L file beside it"):
        select_runs(lone, [atlas], space_selected=False)
